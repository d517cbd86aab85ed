-- The outbound federation queues: what this server still has to send to each other server, so
-- that a restart or an unreachable destination loses nothing.

-- federation_queue_pdus: events waiting to be sent to a destination, by short id (the body stays
-- in events). queue_pos comes from the "federation_queue" stream and orders the queue.
-- Personal data: none beyond which events go where. Deleted: as soon as the destination
-- acknowledges the transaction that carried the event, or with the destination's queue.
CREATE TABLE federation_queue_pdus (
	destination TEXT NOT NULL,
	queue_pos BIGINT NOT NULL,
	event_nid BIGINT NOT NULL REFERENCES events (event_nid),
	PRIMARY KEY (destination, queue_pos)
);

-- federation_queue_edus: EDUs (typing, receipts, device lists, to-device messages) waiting to
-- be sent, as the JSON object that goes into the transaction.
-- Personal data: what the EDU carries: who is typing, read receipts, device ids and keys, and
-- end-to-end encrypted to-device payloads. Deleted: once the destination acknowledges them.
CREATE TABLE federation_queue_edus (
	destination TEXT NOT NULL,
	queue_pos BIGINT NOT NULL,
	edu_json TEXT NOT NULL,
	PRIMARY KEY (destination, queue_pos)
);

-- federation_destinations: per destination, the transaction being attempted (so that a retry
-- carries the same transaction id and the same PDUs and EDUs) and the back-off after failures.
-- txn_id is '' when no transaction is pending; txn_pdu_pos and txn_edu_pos are the last queue
-- positions the pending transaction covers.
-- Personal data: none; server names and timings. Deleted: rows are overwritten in place.
CREATE TABLE federation_destinations (
	destination TEXT PRIMARY KEY,
	txn_id TEXT NOT NULL DEFAULT '',
	txn_pdu_pos BIGINT NOT NULL DEFAULT 0,
	txn_edu_pos BIGINT NOT NULL DEFAULT 0,
	failures BIGINT NOT NULL DEFAULT 0,
	retry_at_ts BIGINT NOT NULL DEFAULT 0
);

-- federation_sender_position: the position on the "events" stream up to which this server's
-- own events have been put in the queues (one row, id 1). The sender reads the stream from
-- here at start-up, so an event committed just before a crash is still queued.
-- Personal data: none. Deleted: never; the row is overwritten.
CREATE TABLE federation_sender_position (
	id BIGINT PRIMARY KEY,
	stream_pos BIGINT NOT NULL
);
