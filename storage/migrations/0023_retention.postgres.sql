-- Message retention (config retention, m.room.retention): the bodies of non-state timeline events
-- older than their room's lifetime are purged. The SQLite and PostgreSQL forms differ only in the
-- byte type. Keep the two files in step.

-- purged_events: what is left of the body of each event that retention purged, whose
-- events.event_json is NULL from then on. The stub is the event redacted by its room version's
-- algorithm: what other servers' walks of the DAG need (federation /event, /backfill,
-- /get_missing_events), still verifiable since hashes and signatures cover the redacted form.
-- It is never served to clients. Written through storage's event codec like any body.
-- Personal data: the sender's user id, the event type and its timestamp; no content. Deleted:
-- with the room.
CREATE TABLE purged_events (
	event_nid BIGINT PRIMARY KEY REFERENCES events (event_nid),
	room_nid BIGINT NOT NULL,
	stub_json BYTEA NOT NULL,
	purged_ts BIGINT NOT NULL
);

-- The events retention may purge, oldest first per room: non-state events on a timeline whose
-- body is still stored. Purged events leave the index, so each pass starts at the first event
-- still to purge.
CREATE INDEX events_retention ON events (room_nid, origin_server_ts)
	WHERE state_key IS NULL AND stream_pos IS NOT NULL AND event_json IS NOT NULL;
