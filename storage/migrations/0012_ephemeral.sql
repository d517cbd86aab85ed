-- Receipts, profiles, and what this server knows of remote users' devices: the per-user data
-- that travels as EDUs and federation queries.

-- receipts: the latest receipt of each (room, user, receipt type, thread), local and remote,
-- with its position on the "receipts" stream. thread_id is '' for an unthreaded receipt.
-- m.read.private receipts are stored here too and never leave the server nor reach another user.
-- Personal data: how far a user has read in a room, and when. Deleted: with the account
-- (local users); a newer receipt of the same kind replaces the row.
CREATE TABLE receipts (
	room_id TEXT NOT NULL,
	user_id TEXT NOT NULL,
	receipt_type TEXT NOT NULL,
	thread_id TEXT NOT NULL,
	event_id TEXT NOT NULL,
	ts BIGINT NOT NULL,
	stream_pos BIGINT NOT NULL,
	PRIMARY KEY (room_id, user_id, receipt_type, thread_id)
);
CREATE INDEX receipts_stream ON receipts (stream_pos);

-- profiles: the display name and avatar of local users. Shown to users who share a room
-- with them (or to anyone, if the operator turns privacy.profile_lookup_requires_shared_room
-- off), and copied into their membership events.
-- Personal data: a name and a picture the user chose. Deleted: with the account.
CREATE TABLE profiles (
	localpart TEXT PRIMARY KEY,
	displayname TEXT,
	avatar_url TEXT
);

-- e2e_device_list_outbound: per local user, what the m.device_list_update and
-- m.signing_key_update EDUs sent so far announced: one row per device (a digest of the keys
-- and the stream_id of the EDU that announced them), and a row with device_id '' whose
-- stream_id is the user's latest EDU and whose digest covers the cross-signing keys. The next
-- change is announced as the difference from these rows, chained by prev_id.
-- Personal data: device ids and digests of public keys. Deleted: with the account's devices
-- (a deleted device's row goes when its deletion is announced).
CREATE TABLE e2e_device_list_outbound (
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	digest TEXT NOT NULL,
	stream_id BIGINT NOT NULL,
	PRIMARY KEY (user_id, device_id)
);

-- e2e_remote_device_lists: the cached device list of a remote user who shares a room with a
-- user of this server: the stream_id of the last m.device_list_update applied (-1 when the
-- list came from /user/keys/query, which has none), the cross-signing keys, and when it was
-- fetched. A gap in prev_id, or an entry older than the cache lifetime, makes the server
-- fetch the list again.
-- Personal data: a remote user's public keys. Deleted: replaced when refetched; dropped after
-- the cache lifetime when read.
CREATE TABLE e2e_remote_device_lists (
	user_id TEXT PRIMARY KEY,
	stream_id BIGINT NOT NULL,
	master_key TEXT,
	self_signing_key TEXT,
	fetched_ts BIGINT NOT NULL
);

-- e2e_remote_devices: the devices of the cached lists above, as their server published them.
-- Personal data: device ids and public keys. Deleted: with the list's row being replaced, and
-- when an update announces the device's deletion.
CREATE TABLE e2e_remote_devices (
	user_id TEXT NOT NULL,
	device_id TEXT NOT NULL,
	key_json TEXT NOT NULL,
	PRIMARY KEY (user_id, device_id)
);
