-- client_txns without a rowid (performance, issue 9): every message a client sends writes one
-- row, and as a rowid table it took three B-trees (the table, its primary key, the event_id
-- index), each a page of the write-ahead log per send. Now the rows live in the primary key.
-- Columns, meaning, personal data and deletion are those of 0007_rooms_client.sql.
CREATE TABLE client_txns_new (
	localpart TEXT NOT NULL,
	device_id TEXT NOT NULL,
	endpoint TEXT NOT NULL,
	txn_id TEXT NOT NULL,
	event_id TEXT NOT NULL,
	created_ts BIGINT NOT NULL,
	PRIMARY KEY (localpart, device_id, endpoint, txn_id),
	FOREIGN KEY (localpart, device_id) REFERENCES devices (localpart, device_id) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO client_txns_new (localpart, device_id, endpoint, txn_id, event_id, created_ts)
	SELECT localpart, device_id, endpoint, txn_id, event_id, created_ts FROM client_txns;
DROP TABLE client_txns;
ALTER TABLE client_txns_new RENAME TO client_txns;
CREATE INDEX client_txns_event ON client_txns (event_id);
