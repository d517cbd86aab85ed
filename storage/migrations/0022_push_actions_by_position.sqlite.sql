-- event_push_actions keyed by (user_id, stream_pos) instead of (user_id, event_id), without a
-- rowid (performance, issue 9). The notification worker writes one row per local member for
-- nearly every message, and each B-tree keyed by user takes one page per member per
-- transaction: with event ids (random hashes) in the key, each row landed on a page of its own
-- in every such tree, and the rowid table plus the separate (user_id, stream_pos) index made
-- six trees in all. Keyed by stream position, each member's rows are appended, so one page per
-- member takes a whole batch of events; the primary key is the (user_id, stream_pos) index the
-- reads need, and the rows live in it. A timeline event has a stream position of its own, so
-- the key still identifies a user's action on one event. For the same reason the index that
-- finds the actions of a redacted event is on stream_pos, appended to, instead of on event_id,
-- where each event's entries landed on a page of their own. Columns, meaning, personal data
-- and deletion are those of 0016_notifications.sql.
CREATE TABLE event_push_actions_by_pos (
	user_id TEXT NOT NULL,
	room_id TEXT NOT NULL,
	event_id TEXT NOT NULL,
	stream_pos BIGINT NOT NULL,
	thread_id TEXT NOT NULL,
	notify BOOLEAN NOT NULL,
	highlight BOOLEAN NOT NULL,
	actions TEXT NOT NULL,
	ts BIGINT NOT NULL,
	PRIMARY KEY (user_id, stream_pos)
) WITHOUT ROWID;
INSERT OR IGNORE INTO event_push_actions_by_pos
	(user_id, room_id, event_id, stream_pos, thread_id, notify, highlight, actions, ts)
	SELECT user_id, room_id, event_id, stream_pos, thread_id, notify, highlight, actions, ts FROM event_push_actions;
DROP TABLE event_push_actions;
ALTER TABLE event_push_actions_by_pos RENAME TO event_push_actions;
CREATE INDEX event_push_actions_room ON event_push_actions (user_id, room_id, stream_pos);
CREATE INDEX event_push_actions_pos ON event_push_actions (stream_pos);
CREATE INDEX event_push_actions_ts ON event_push_actions (ts);
