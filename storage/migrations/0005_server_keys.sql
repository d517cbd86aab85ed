-- server_keys: the public signing keys of other servers, fetched from them directly or through a
-- notary, with the signed key document each came from (so that this server can act as a notary
-- and repeat the origin's own signature) and the validity that decides which events it may
-- verify: valid_until_ts for a current key (already capped at 7 days after fetched_ts, as the
-- spec requires), expired_ts for an old one (NULL while the key is current).
-- Personal data: none; server names and public keys are public. Deleted: never automatically,
-- since the signatures of old events must stay checkable; rows are overwritten by newer fetches.
CREATE TABLE server_keys (
	server_name TEXT NOT NULL,
	key_id TEXT NOT NULL,
	public_key TEXT NOT NULL,
	valid_until_ts BIGINT NOT NULL,
	expired_ts BIGINT,
	fetched_ts BIGINT NOT NULL,
	key_json TEXT NOT NULL,
	PRIMARY KEY (server_name, key_id)
);
