-- redactions: which m.room.redaction redacts which event. A redaction is recorded when it is
-- stored, whether or not the event it redacts is known yet; it is validated (redacted_ts set)
-- once both events are stored and the room version's rules let it take effect, and in that same
-- transaction the redacted event's body in events is replaced by its redacted form, so that the
-- content is gone from the database, not merely hidden.
-- Personal data: none beyond event ids and when a redaction took effect. Deleted: with the
-- events; a pending row whose target never arrives costs a few bytes.
CREATE TABLE redactions (
	redaction_event_id TEXT PRIMARY KEY,
	redacts_event_id TEXT NOT NULL,
	validated BOOLEAN NOT NULL DEFAULT FALSE,
	redacted_ts BIGINT
);
CREATE INDEX redactions_redacts ON redactions (redacts_event_id);
