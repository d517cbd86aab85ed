-- worker_positions: how far a background worker that follows the "events" stream has got, one
-- row per worker. 'search' is the search indexer (roomserver/search_indexer.go), which adds the
-- text of timeline events to event_search after they are stored instead of in the transaction
-- that stores them (performance, issue 9). Everything stored before this migration was indexed
-- when it was stored, so the indexer starts at the current end of the stream.
-- Personal data: none. Deleted: never; each row is overwritten.
CREATE TABLE worker_positions (
	worker TEXT PRIMARY KEY,
	stream_pos BIGINT NOT NULL
);
INSERT INTO worker_positions (worker, stream_pos)
	SELECT 'search', COALESCE((SELECT pos FROM stream_positions WHERE stream = 'events'), 0);
