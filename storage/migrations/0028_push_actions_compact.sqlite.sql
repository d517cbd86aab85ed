-- event_push_actions in less than half the space (performance and data minimisation, issue 9). The
-- notification worker writes one row per local member for nearly every message, and each row
-- repeated what the events and rooms tables already hold: the event id (derived from the
-- event's stream position), the room id (now the room's short id) and the matching rule's
-- actions as JSON, the same few lists over and over (now a short id into push_action_sets). A
-- send benchmark of 16,000 messages among ten members left 47 MB of push actions; it now
-- leaves 21 MB, and each batch the worker writes shrinks alike.
--
-- push_action_sets: the distinct action lists of push rules that matched (which sound to play,
-- whether to highlight), each stored once. They name no user and are configuration, not
-- messages; they are not deleted (an action list is a few dozen bytes, and the rules a server's
-- users configure have few distinct ones).
--
-- Columns, meaning, personal data and deletion of event_push_actions are otherwise those of
-- 0016_notifications.sql and 0022_push_actions_by_position.sqlite.sql. An action whose room is
-- not in rooms (which the worker never writes) is not carried over.
CREATE TABLE push_action_sets (
	set_id INTEGER PRIMARY KEY,
	actions TEXT NOT NULL UNIQUE
);
INSERT INTO push_action_sets (actions) SELECT DISTINCT actions FROM event_push_actions;
CREATE TABLE event_push_actions_compact (
	user_id TEXT NOT NULL,
	stream_pos BIGINT NOT NULL,
	room_nid BIGINT NOT NULL,
	thread_id TEXT NOT NULL,
	notify BOOLEAN NOT NULL,
	highlight BOOLEAN NOT NULL,
	set_id BIGINT NOT NULL,
	ts BIGINT NOT NULL,
	PRIMARY KEY (user_id, stream_pos)
) WITHOUT ROWID;
INSERT INTO event_push_actions_compact (user_id, stream_pos, room_nid, thread_id, notify, highlight, set_id, ts)
	SELECT a.user_id, a.stream_pos, r.room_nid, a.thread_id, a.notify, a.highlight, s.set_id, a.ts
	FROM event_push_actions a
	JOIN rooms r ON r.room_id = a.room_id
	JOIN push_action_sets s ON s.actions = a.actions;
DROP TABLE event_push_actions;
ALTER TABLE event_push_actions_compact RENAME TO event_push_actions;
CREATE INDEX event_push_actions_room ON event_push_actions (user_id, room_nid, stream_pos);
CREATE INDEX event_push_actions_pos ON event_push_actions (stream_pos);
