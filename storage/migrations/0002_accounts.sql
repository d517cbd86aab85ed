-- accounts: one row per local user.
-- Personal data: the localpart (the user's chosen name) and an argon2id hash of the password.
-- Deleted: on deactivation the password hash is erased and deactivated_ts set; the row itself
-- stays as a tombstone so that the user id can never be registered again by someone else, as
-- the spec requires.
CREATE TABLE accounts (
	localpart TEXT PRIMARY KEY,
	password_hash TEXT,
	is_admin BOOLEAN NOT NULL DEFAULT FALSE,
	created_ts BIGINT NOT NULL,
	deactivated_ts BIGINT
);
