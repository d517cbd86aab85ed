-- server_meta: small facts about the database itself, keyed by name (for example the server
-- name it was created for).
-- Personal data: none. Deleted: rows are overwritten in place and go with the database.
CREATE TABLE server_meta (
	key TEXT PRIMARY KEY,
	value TEXT NOT NULL
);

-- stream_positions: the last position handed out on each stream (timeline, receipts, ...).
-- Positions come from here rather than from memory so that several processes can share one
-- PostgreSQL database.
-- Personal data: none. Deleted: never; a stream's position must only ever grow.
CREATE TABLE stream_positions (
	stream TEXT PRIMARY KEY,
	pos BIGINT NOT NULL
);
