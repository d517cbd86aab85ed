-- Moderation and identity data of issue #7: content reports, OpenID tokens, account locks and
-- suspensions, and custom profile fields.

-- content_reports: what users reported to the server's administrators (POST /report). kind is
-- 'event', 'room' or 'user'; the ids that do not apply to a kind are ''.
-- Personal data: the reporter's user id, the reported user, room or event, and the reason the
-- reporter gave. Deleted: by retention (reports.retention), listed only by `myelin reports`.
CREATE TABLE content_reports (
	report_id TEXT PRIMARY KEY,
	kind TEXT NOT NULL,
	reporter TEXT NOT NULL,
	room_id TEXT NOT NULL DEFAULT '',
	event_id TEXT NOT NULL DEFAULT '',
	target_user_id TEXT NOT NULL DEFAULT '',
	reason TEXT NOT NULL DEFAULT '',
	score BIGINT,
	received_ts BIGINT NOT NULL
);
CREATE INDEX content_reports_received ON content_reports (received_ts);

-- openid_tokens: tokens a user asked for to prove their identity to a third party, which that
-- party checks through /_matrix/federation/v1/openid/userinfo. Stored as hashes only.
-- Personal data: the user id. Deleted: once expired (an hour after issue).
CREATE TABLE openid_tokens (
	token_hash TEXT PRIMARY KEY,
	user_id TEXT NOT NULL,
	expires_ts BIGINT NOT NULL
);
CREATE INDEX openid_tokens_expiry ON openid_tokens (expires_ts);

-- Account locks and suspensions by an administrator (PUT /admin/lock, /admin/suspend): when
-- they were applied, NULL when not. They go with the account row.
ALTER TABLE accounts ADD COLUMN locked_ts BIGINT;
ALTER TABLE accounts ADD COLUMN suspended_ts BIGINT;

-- profile_fields: profile fields other than displayname and avatar_url (m.tz and custom keys of
-- spec v1.16), each value as JSON text.
-- Personal data: whatever the user puts there; shown like the rest of the profile. Deleted:
-- with the profile (erasure), or by the user with DELETE /profile/{userId}/{keyName}.
CREATE TABLE profile_fields (
	localpart TEXT NOT NULL,
	field TEXT NOT NULL,
	value TEXT NOT NULL,
	PRIMARY KEY (localpart, field)
);
