-- event_push_actions keyed by (user_id, stream_pos) instead of (user_id, event_id)
-- (performance, issue 9): see 0022_push_actions_by_position.sqlite.sql. Here the table keeps
-- its heap; the primary key takes the place of the (user_id, stream_pos) index, so each row
-- costs one index fewer, and a member's entries are appended rather than scattered by event id;
-- the actions of a redacted event are found by stream position instead of by event id.
ALTER TABLE event_push_actions DROP CONSTRAINT event_push_actions_pkey;
DROP INDEX event_push_actions_user_pos;
ALTER TABLE event_push_actions ADD PRIMARY KEY (user_id, stream_pos);
DROP INDEX event_push_actions_event;
CREATE INDEX event_push_actions_pos ON event_push_actions (stream_pos);
