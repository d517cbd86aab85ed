-- What the Client-Server API keeps about rooms beyond the events themselves.

-- client_txns: the transaction ids of the client requests that sent events (send, redact), so
-- that a retried request gets the first answer instead of a second event. endpoint names the
-- request kind and room, since a transaction id is only unique per device and endpoint.
-- Personal data: links an event to the device that sent it. Deleted: with the device.
CREATE TABLE client_txns (
	localpart TEXT NOT NULL,
	device_id TEXT NOT NULL,
	endpoint TEXT NOT NULL,
	txn_id TEXT NOT NULL,
	event_id TEXT NOT NULL,
	created_ts BIGINT NOT NULL,
	PRIMARY KEY (localpart, device_id, endpoint, txn_id),
	FOREIGN KEY (localpart, device_id) REFERENCES devices (localpart, device_id) ON DELETE CASCADE
);
CREATE INDEX client_txns_event ON client_txns (event_id);

-- room_aliases: the aliases of this server's namespace and the room each points to. room_id is
-- empty while /createRoom holds the alias for a room it is still creating.
-- Personal data: who created the alias (their right to delete it). Deleted: by DELETE
-- /directory/room, by the room's power users, or when the creator's account is erased.
CREATE TABLE room_aliases (
	alias TEXT PRIMARY KEY,
	room_id TEXT NOT NULL,
	creator TEXT NOT NULL,
	created_ts BIGINT NOT NULL
);
CREATE INDEX room_aliases_room ON room_aliases (room_id);

-- room_directory: the rooms published in this server's room directory.
-- Personal data: none (a room, not a person). Deleted: when unpublished.
CREATE TABLE room_directory (
	room_id TEXT PRIMARY KEY,
	published_ts BIGINT NOT NULL
);

-- forgotten_rooms: rooms a user left and asked to forget; /sync and the room lists hide them.
-- membership_pos is the stream position of the membership event that was forgotten: a later
-- membership of the room (an invite, a join) has a higher one and ends the forgetting.
-- Personal data: which rooms a user was in and forgot. Deleted: with the account.
CREATE TABLE forgotten_rooms (
	user_id TEXT NOT NULL,
	room_id TEXT NOT NULL,
	membership_pos BIGINT NOT NULL,
	forgotten_ts BIGINT NOT NULL,
	PRIMARY KEY (user_id, room_id)
);
