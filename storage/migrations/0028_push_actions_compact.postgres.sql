-- event_push_actions without the event id, with the room's short id and the rule's actions
-- as a short id into push_action_sets (performance and data minimisation, issue 9): see
-- 0028_push_actions_compact.sqlite.sql, whose comments hold for both databases.
CREATE TABLE push_action_sets (
	set_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
);
INSERT INTO event_push_actions_compact (user_id, stream_pos, room_nid, thread_id, notify, highlight, set_id, ts)
	SELECT a.user_id, a.stream_pos, r.room_nid, a.thread_id, a.notify, a.highlight, s.set_id, a.ts
	FROM event_push_actions a
	JOIN rooms r ON r.room_id = a.room_id
	JOIN push_action_sets s ON s.actions = a.actions;
DROP TABLE event_push_actions;
ALTER TABLE event_push_actions_compact RENAME TO event_push_actions;
CREATE INDEX event_push_actions_room ON event_push_actions (user_id, room_nid, stream_pos);
CREATE INDEX event_push_actions_pos ON event_push_actions (stream_pos);
