-- push_rules: what a user changed of their push rules (client-server API, "Push Rules: API").
-- A row whose rule_id starts with '.' changes a server-default rule: enabled and actions are
-- NULL where the default stands, and conditions and pattern are always NULL (defaults come
-- from the code, so a newer spec's defaults reach every user). Any other row is a rule of the
-- user's own: enabled and actions are set, conditions is the JSON array of an override or
-- underride rule, pattern the glob of a content rule. position orders the user's own rules
-- within a kind, 0 the most important; it is 0 and unused for changes to default rules.
-- Personal data: the words, rooms and people a user wants to hear about or silence. Deleted:
-- with the account when it is erased; a row goes when the user deletes the rule.
CREATE TABLE push_rules (
	user_id TEXT NOT NULL,
	kind TEXT NOT NULL,
	rule_id TEXT NOT NULL,
	position BIGINT NOT NULL DEFAULT 0,
	enabled BOOLEAN,
	actions TEXT,
	conditions TEXT,
	pattern TEXT,
	PRIMARY KEY (user_id, kind, rule_id)
);
