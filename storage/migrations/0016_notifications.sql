-- Notifications: what each local user's push rules decided about the events of their rooms
-- (the source of unread counts in /sync and of GET /notifications), the pushers that forward
-- notifications to push gateways, and how far the notification worker has read the timeline.

-- event_push_actions: per local user, the events whose push rules said "notify" or gave a
-- highlight. stream_pos is the event's position on the "events" stream: counts are the rows
-- after the position of the user's latest m.read / m.read.private receipt or own event (in the
-- event's thread: thread_id is 'main' or the thread root's event id). actions is the matching rule's
-- actions as JSON; ts is when the action was recorded (milliseconds).
-- Personal data: which events concerned the user and whether they mentioned them. Deleted:
-- with the account (deactivation), with the event's content on redaction, and by age: rows
-- older than the notification retention (30 days) are pruned by the notification worker,
-- since /notifications and the counts do not need more.
CREATE TABLE event_push_actions (
	user_id TEXT NOT NULL,
	room_id TEXT NOT NULL,
	event_id TEXT NOT NULL,
	stream_pos BIGINT NOT NULL,
	thread_id TEXT NOT NULL,
	notify BOOLEAN NOT NULL,
	highlight BOOLEAN NOT NULL,
	actions TEXT NOT NULL,
	ts BIGINT NOT NULL,
	PRIMARY KEY (user_id, event_id)
);
CREATE INDEX event_push_actions_user_pos ON event_push_actions (user_id, stream_pos);
CREATE INDEX event_push_actions_room ON event_push_actions (user_id, room_id, stream_pos);
CREATE INDEX event_push_actions_event ON event_push_actions (event_id);
CREATE INDEX event_push_actions_ts ON event_push_actions (ts);

-- event_push_read: per local user, room and thread ('main' or a thread root), the stream
-- position of the latest event the user sent there. Sending an event marks what comes before it
-- as read, like a receipt would (client-server API "Marking notifications as read"), without
-- telling anyone.
-- Personal data: when the user last wrote in a room. Deleted: with the account (deactivation).
CREATE TABLE event_push_read (
	user_id TEXT NOT NULL,
	room_id TEXT NOT NULL,
	thread_id TEXT NOT NULL,
	stream_pos BIGINT NOT NULL,
	PRIMARY KEY (user_id, room_id, thread_id)
);

-- push_worker_position: the position on the "events" stream up to which the notification
-- worker has evaluated push rules (one row, id 1). It moves in the transaction that records
-- the actions of the events before it, so a restart neither loses nor repeats an event.
-- Personal data: none. Deleted: never; the row is overwritten.
CREATE TABLE push_worker_position (
	id BIGINT PRIMARY KEY,
	stream_pos BIGINT NOT NULL
);

-- pushers: the HTTP (push gateway) pushers of local users, as set through POST /pushers/set,
-- each belonging to the device that set it. data is the pusher's data object as JSON (url,
-- format and any custom keys). pushkey_ts is when the pushkey was first set (milliseconds).
-- Delivery: delivered_pos is the events stream position up to which this pusher's
-- notifications have been sent (or given up on); failures and retry_at_ts are the back-off
-- after a push gateway failed.
-- Personal data: the push gateway address and pushkey of a device (which routes notifications
-- to a phone), the device and app names the client chose, and the language. Deleted: with the
-- device (logout, device deletion, deactivation: foreign key), by the user (kind null), when a
-- push gateway rejects the pushkey, and when another user sets the same app id and pushkey
-- without append.
CREATE TABLE pushers (
	user_id TEXT NOT NULL,
	app_id TEXT NOT NULL,
	pushkey TEXT NOT NULL,
	localpart TEXT NOT NULL,
	device_id TEXT NOT NULL,
	kind TEXT NOT NULL,
	app_display_name TEXT NOT NULL,
	device_display_name TEXT NOT NULL,
	profile_tag TEXT NOT NULL,
	lang TEXT NOT NULL,
	data TEXT NOT NULL,
	pushkey_ts BIGINT NOT NULL,
	delivered_pos BIGINT NOT NULL,
	failures BIGINT NOT NULL DEFAULT 0,
	retry_at_ts BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, app_id, pushkey),
	FOREIGN KEY (localpart, device_id) REFERENCES devices (localpart, device_id) ON DELETE CASCADE
);
CREATE INDEX pushers_app_pushkey ON pushers (app_id, pushkey);
CREATE INDEX pushers_device ON pushers (localpart, device_id);
