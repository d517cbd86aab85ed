-- devices: one row per logged-in client of a local user.
-- Personal data: the display name the client chose, when it was last seen (coarse: updated at most
-- every few minutes) and, only when the operator enabled it, the IP address it was last seen from.
-- Deleted: on logout, device deletion and account deactivation; tokens and keys go with it.
CREATE TABLE devices (
	localpart TEXT NOT NULL REFERENCES accounts (localpart),
	device_id TEXT NOT NULL,
	display_name TEXT,
	created_ts BIGINT NOT NULL,
	last_seen_ts BIGINT NOT NULL,
	last_seen_ip TEXT,
	PRIMARY KEY (localpart, device_id)
);

-- refresh_tokens: the refresh tokens of devices, by SHA-256 hash; the tokens themselves are never
-- stored. prev_hash is the token this one replaced, kept valid until the new pair is first used.
-- Personal data: none beyond linking a token to a device. Deleted: with the device, or when
-- rotated and the replacement has been used.
CREATE TABLE refresh_tokens (
	token_hash TEXT PRIMARY KEY,
	localpart TEXT NOT NULL,
	device_id TEXT NOT NULL,
	prev_hash TEXT,
	created_ts BIGINT NOT NULL,
	FOREIGN KEY (localpart, device_id) REFERENCES devices (localpart, device_id) ON DELETE CASCADE
);
CREATE INDEX refresh_tokens_device ON refresh_tokens (localpart, device_id);
CREATE INDEX refresh_tokens_prev ON refresh_tokens (prev_hash);

-- access_tokens: the access tokens of devices, by SHA-256 hash. expires_ts is 0 for tokens that
-- do not expire (clients that did not ask for a refresh token). An expired token keeps its row
-- until it is refreshed or its device is deleted, so that it can be answered with soft_logout.
-- Personal data: none beyond linking a token to a device. Deleted: with the device, on logout,
-- or when its refresh token is used.
CREATE TABLE access_tokens (
	token_hash TEXT PRIMARY KEY,
	localpart TEXT NOT NULL,
	device_id TEXT NOT NULL,
	refresh_hash TEXT,
	created_ts BIGINT NOT NULL,
	expires_ts BIGINT NOT NULL,
	FOREIGN KEY (localpart, device_id) REFERENCES devices (localpart, device_id) ON DELETE CASCADE
);
CREATE INDEX access_tokens_device ON access_tokens (localpart, device_id);
CREATE INDEX access_tokens_refresh ON access_tokens (refresh_hash);

-- uia_sessions: User-Interactive Authentication sessions in progress, so that they survive a
-- restart. completed is a JSON array of stage types; data is a JSON object of what stages
-- established (for example which registration token was presented, by hash).
-- Personal data: the localpart the session authenticates, when bound to a user. Deleted: when the
-- operation succeeds, or once expired (purged whenever a new session starts).
CREATE TABLE uia_sessions (
	session_id TEXT PRIMARY KEY,
	operation TEXT NOT NULL,
	localpart TEXT NOT NULL,
	completed TEXT NOT NULL,
	data TEXT NOT NULL,
	created_ts BIGINT NOT NULL,
	expires_ts BIGINT NOT NULL
);
CREATE INDEX uia_sessions_expiry ON uia_sessions (expires_ts);

-- registration_tokens: tokens an administrator hands out to let people register when
-- registration.require_token is set, by SHA-256 hash. uses_allowed NULL means unlimited,
-- expiry_ts NULL means no expiry.
-- Personal data: none. Deleted: by the administrator.
CREATE TABLE registration_tokens (
	token_hash TEXT PRIMARY KEY,
	uses_allowed BIGINT,
	completed BIGINT NOT NULL DEFAULT 0,
	expiry_ts BIGINT,
	created_ts BIGINT NOT NULL
);
