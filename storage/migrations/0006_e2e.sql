-- End-to-end encryption key store. The server stores and forwards these keys, signatures and
-- ciphertexts exactly as uploaded and never reads them. User ids are full Matrix ids, so that
-- the same tables can later cache the keys of remote users fetched over federation.

-- e2e_device_keys: the identity keys (curve25519, ed25519) a device published, as uploaded.
-- Personal data: public keys that identify the device across rooms. Deleted: with the device
-- (logout, device deletion) and with the account on deactivation.
CREATE TABLE e2e_device_keys (
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	key_json TEXT NOT NULL,
	PRIMARY KEY (user_id, device_id)
);

-- e2e_one_time_keys: unclaimed one-time keys of a device, as uploaded. upload_pos orders them by
-- upload call, so that the oldest are handed out first, as the spec asks.
-- Personal data: public keys. Deleted: when claimed (each is handed out once), with the device,
-- and with the account.
CREATE TABLE e2e_one_time_keys (
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	algorithm TEXT NOT NULL,
	key_id TEXT NOT NULL,
	key_json TEXT NOT NULL,
	upload_pos BIGINT NOT NULL,
	PRIMARY KEY (user_id, device_id, algorithm, key_id)
);
CREATE INDEX e2e_one_time_keys_claim ON e2e_one_time_keys (user_id, device_id, algorithm, upload_pos);

-- e2e_fallback_keys: the one fallback key per device and algorithm, as uploaded; used records
-- whether it has been handed out since it was uploaded.
-- Personal data: public keys. Deleted: replaced by the next upload, with the device, and with
-- the account.
CREATE TABLE e2e_fallback_keys (
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	algorithm TEXT NOT NULL,
	key_id TEXT NOT NULL,
	key_json TEXT NOT NULL,
	used BOOLEAN NOT NULL DEFAULT FALSE,
	PRIMARY KEY (user_id, device_id, algorithm)
);

-- e2e_cross_signing_keys: a user's current master, self-signing and user-signing public keys,
-- as uploaded; key_type is "master", "self_signing" or "user_signing".
-- Personal data: public keys that identify the user. Deleted: replaced by a new upload, and
-- with the account.
CREATE TABLE e2e_cross_signing_keys (
	user_id TEXT NOT NULL,
	key_type TEXT NOT NULL,
	key_json TEXT NOT NULL,
	PRIMARY KEY (user_id, key_type)
);

-- e2e_signatures: signatures uploaded with /keys/signatures/upload, kept apart from the keys they
-- sign so that the signed object stays exactly as its owner uploaded it. target_key_id is a
-- device id or a cross-signing public key; signer_key_id is "ed25519:<key>".
-- Personal data: who verified whom (a signature by one user's user-signing key on another's
-- master key is only shown to the signer). Deleted: when the signed key or the signer's key is
-- replaced or deleted, and with either account.
CREATE TABLE e2e_signatures (
	target_user_id TEXT NOT NULL,
	target_key_id TEXT NOT NULL,
	signer_user_id TEXT NOT NULL,
	signer_key_id TEXT NOT NULL,
	signature TEXT NOT NULL,
	PRIMARY KEY (target_user_id, target_key_id, signer_user_id, signer_key_id)
);
CREATE INDEX e2e_signatures_signer ON e2e_signatures (signer_user_id);

-- e2e_device_list_changes: the last position on the "device_lists" stream at which a user's
-- devices or cross-signing keys changed; only the latest change per user is kept, which is all
-- /sync and /keys/changes need to tell clients to query again.
-- Personal data: when a user last changed devices. Deleted: never while the account exists;
-- kept after deactivation so that other users learn the devices went away.
CREATE TABLE e2e_device_list_changes (
	user_id TEXT PRIMARY KEY,
	stream_pos BIGINT NOT NULL
);
CREATE INDEX e2e_device_list_changes_pos ON e2e_device_list_changes (stream_pos);

-- e2e_to_device: send-to-device messages waiting for a local device, in order of stream_pos on
-- the "to_device" stream. content is stored as sent (usually Olm ciphertext).
-- Personal data: who sent what to whom, and the content. Deleted: as soon as the device
-- acknowledges delivery (its next /sync), with the recipient device, and with the account.
CREATE TABLE e2e_to_device (
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	stream_pos BIGINT NOT NULL,
	sender TEXT NOT NULL,
	event_type TEXT NOT NULL,
	content TEXT NOT NULL,
	PRIMARY KEY (user_id, device_id, stream_pos)
);

-- e2e_to_device_txns: transaction ids of /sendToDevice requests already performed, so that a
-- retried request is not delivered twice.
-- Personal data: none beyond linking a transaction id to a device. Deleted: with the sending
-- device, with the account, and after a day (purged as new ones arrive).
CREATE TABLE e2e_to_device_txns (
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	txn_id TEXT NOT NULL,
	created_ts BIGINT NOT NULL,
	PRIMARY KEY (user_id, device_id, txn_id)
);
CREATE INDEX e2e_to_device_txns_created ON e2e_to_device_txns (created_ts);

-- e2e_backup_versions: a user's server-side key backups. auth_data is stored as uploaded. A
-- deleted backup keeps a row without its auth_data (deleted TRUE) so that version numbers are
-- never reused and deleting it again succeeds, as the spec asks. etag grows with every change
-- to the backup's keys.
-- Personal data: the backup's public key and its signatures. Deleted: auth_data and keys when the
-- backup is deleted; everything with the account.
CREATE TABLE e2e_backup_versions (
	user_id TEXT NOT NULL,
	version BIGINT NOT NULL,
	algorithm TEXT NOT NULL,
	auth_data TEXT NOT NULL,
	etag BIGINT NOT NULL DEFAULT 0,
	deleted BOOLEAN NOT NULL DEFAULT FALSE,
	PRIMARY KEY (user_id, version)
);

-- e2e_backup_keys: room keys in a backup; session_data is ciphertext the server cannot read.
-- Personal data: which rooms and sessions a user holds keys for, and the encrypted keys.
-- Deleted: by the user (per session, room or backup), with the backup, and with the account.
CREATE TABLE e2e_backup_keys (
	user_id TEXT NOT NULL,
	version BIGINT NOT NULL,
	room_id TEXT NOT NULL,
	session_id TEXT NOT NULL,
	first_message_index BIGINT NOT NULL,
	forwarded_count BIGINT NOT NULL,
	is_verified BOOLEAN NOT NULL,
	session_data TEXT NOT NULL,
	PRIMARY KEY (user_id, version, room_id, session_id)
);
