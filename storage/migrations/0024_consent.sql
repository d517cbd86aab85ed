-- user_consent: which version of each policy (consent.policies: terms of service, privacy
-- policy) a local user accepted, and when: the m.login.terms stage of registration records the
-- versions it presented. A row per accepted version, so that a later version adds a row and the
-- history of what the person agreed to stays readable.
-- Personal data: the localpart and the time of acceptance. Deleted: kept through deactivation,
-- since it is the server's evidence that the data it still holds was given with consent; deleted
-- when the account is erased (deactivation with erase), when that data goes too. Listed by
-- `myelin consent` and in the user's export (account.json).
CREATE TABLE user_consent (
	localpart TEXT NOT NULL,
	policy_id TEXT NOT NULL,
	version TEXT NOT NULL,
	accepted_ts BIGINT NOT NULL,
	PRIMARY KEY (localpart, policy_id, version)
);
