-- What /sync keeps besides the rooms: filters, account data, and which room members a device
-- has been sent when it lazy-loads members.

-- filters: the filters a user uploaded (POST /user/{userId}/filter), as uploaded. filter_id
-- counts per user; identical uploads share one row.
-- Personal data: what a user's client asks to see (room ids, user ids it excludes). Deleted:
-- with the account.
CREATE TABLE filters (
	user_id TEXT NOT NULL,
	filter_id BIGINT NOT NULL,
	filter_json TEXT NOT NULL,
	PRIMARY KEY (user_id, filter_id)
);

-- account_data: a user's account data, global (room_id '') and per room, with the position of
-- its last change on the "account_data" stream. The server stores the content as given and
-- never reads it (clients keep direct chats, ignored users, key backup secrets here, some
-- encrypted).
-- Personal data: all of it is the user's. Deleted: with the account; a client may empty a
-- value by writing {}.
CREATE TABLE account_data (
	user_id TEXT NOT NULL,
	room_id TEXT NOT NULL,
	data_type TEXT NOT NULL,
	content TEXT NOT NULL,
	stream_pos BIGINT NOT NULL,
	PRIMARY KEY (user_id, room_id, data_type)
);
CREATE INDEX account_data_stream ON account_data (user_id, stream_pos);

-- sync_lazy_members: with lazy-loading, the membership events each device has been sent per
-- room, so that they are not sent again while unchanged.
-- Personal data: who is in which room, as already told to the device. Deleted: with the
-- device (foreign key), and for a device that starts over with an initial sync.
CREATE TABLE sync_lazy_members (
	localpart TEXT NOT NULL,
	device_id TEXT NOT NULL,
	room_id TEXT NOT NULL,
	member TEXT NOT NULL,
	event_id TEXT NOT NULL,
	PRIMARY KEY (localpart, device_id, room_id, member),
	FOREIGN KEY (localpart, device_id) REFERENCES devices (localpart, device_id) ON DELETE CASCADE
);
