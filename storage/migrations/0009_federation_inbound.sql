-- What the inbound side of federation keeps: the answers to transactions, so that a retried
-- transaction gets the same answer instead of being processed twice, and the invites other
-- servers sent to our users for rooms this server is not in.

-- federation_inbound_txns: the response to each PUT /send/{txnId} per origin. A transaction id
-- is only meaningful between two servers, hence the key.
-- Personal data: none beyond event ids (the PDU results). Deleted: after a day, by
-- PruneInboundTxns; a sender retries within minutes.
CREATE TABLE federation_inbound_txns (
	origin TEXT NOT NULL,
	txn_id TEXT NOT NULL,
	response_json TEXT NOT NULL,
	received_ts BIGINT NOT NULL,
	PRIMARY KEY (origin, txn_id)
);
CREATE INDEX federation_inbound_txns_received ON federation_inbound_txns (received_ts);

-- remote_invites: invites of our users to rooms this server is not in (PUT /invite), with the
-- invite event as we counter-signed it and the stripped state the inviting server sent, so
-- that the client API can show the invite. stream_pos is a position on the "events" stream.
-- Personal data: who invited whom to which room, and the room's name/avatar/topic as stripped
-- state. Deleted: when the user joins, rejects or the inviter retracts (DeleteRemoteInvite),
-- and with the account.
CREATE TABLE remote_invites (
	user_id TEXT NOT NULL,
	room_id TEXT NOT NULL,
	room_version TEXT NOT NULL,
	event_id TEXT NOT NULL,
	event_json TEXT NOT NULL,
	invite_state TEXT NOT NULL,
	stream_pos BIGINT NOT NULL,
	PRIMARY KEY (user_id, room_id)
);
CREATE INDEX remote_invites_stream ON remote_invites (user_id, stream_pos);
