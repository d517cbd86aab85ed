-- Rooms, events and state. The SQLite and PostgreSQL forms of this migration differ only in how
-- short ids are generated (INTEGER PRIMARY KEY against identity columns), in the byte type, and
-- in SQLite's WITHOUT ROWID on tables keyed by their primary key; keep the two files in step.

-- rooms: one row per room this server knows, with its short id.
-- Personal data: none by itself (a room id is random). Deleted: when the room is purged.
CREATE TABLE rooms (
	room_nid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	room_id TEXT NOT NULL UNIQUE,
	room_version TEXT NOT NULL,
	-- the state after the forward extremities, resolved; 0 until the create event is stored
	current_snapshot_nid BIGINT NOT NULL DEFAULT 0
);

-- event_types and event_state_keys: short ids for the strings of state tuples, so that state
-- snapshots are rows of three integers.
-- Personal data: state keys of m.room.member events are user ids. Deleted: never while an event
-- refers to them; an erased user's id stays as the key of their (redacted) membership events,
-- which the DAG needs.
CREATE TABLE event_types (
	type_nid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	event_type TEXT NOT NULL UNIQUE
);
CREATE TABLE event_state_keys (
	state_key_nid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	state_key TEXT NOT NULL UNIQUE
);

-- events: every event this server stores, once, with the columns queries select on. The body is
-- written and read only through storage's event codec (eventcodec.go).
-- Personal data: the sender's user id and the event body (messages, profile data in membership
-- events). Deleted: bodies are pruned by redaction and retention, leaving a stub (ids, depth,
-- references and state columns) that the DAG and state resolution still need; rows go when the
-- room is purged.
CREATE TABLE events (
	event_nid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	room_nid BIGINT NOT NULL REFERENCES rooms (room_nid),
	event_id TEXT NOT NULL UNIQUE,
	event_type TEXT NOT NULL,
	state_key TEXT,
	type_nid BIGINT NOT NULL DEFAULT 0,
	state_key_nid BIGINT NOT NULL DEFAULT 0,
	sender TEXT NOT NULL,
	depth BIGINT NOT NULL,
	-- position on the "events" stream; NULL for events that never reach timelines
	-- (rejected, soft-failed, outliers)
	stream_pos BIGINT,
	origin_server_ts BIGINT NOT NULL,
	-- snapshots of the room state before and after the event; 0 for outliers, whose state is
	-- unknown. After equals before for non-state and rejected events.
	state_before_nid BIGINT NOT NULL DEFAULT 0,
	state_after_nid BIGINT NOT NULL DEFAULT 0,
	rejected BOOLEAN NOT NULL DEFAULT FALSE,
	soft_failed BOOLEAN NOT NULL DEFAULT FALSE,
	outlier BOOLEAN NOT NULL DEFAULT FALSE,
	event_json BYTEA
);
CREATE INDEX events_room_stream ON events (room_nid, stream_pos);
CREATE INDEX events_room_topological ON events (room_nid, depth, stream_pos);
CREATE INDEX events_stream ON events (stream_pos);

-- event_auth_edges and event_prev_edges: the DAG. Auth edges point at stored events (an event is
-- only stored once its auth events are); prev edges may name events not fetched yet.
-- Personal data: none beyond event ids. Deleted: with the events, never when a body is pruned.
-- Edges are only looked up by the citing event, so prev_event_id has no index of its own: every
-- index on these tables is one more page written per message.
CREATE TABLE event_auth_edges (
	event_nid BIGINT NOT NULL REFERENCES events (event_nid),
	auth_event_nid BIGINT NOT NULL REFERENCES events (event_nid),
	PRIMARY KEY (event_nid, auth_event_nid)
);
CREATE TABLE event_prev_edges (
	event_nid BIGINT NOT NULL REFERENCES events (event_nid),
	prev_event_id TEXT NOT NULL,
	PRIMARY KEY (event_nid, prev_event_id)
);

-- state_snapshots: a room state shared by every event that has it. A snapshot is either full
-- (parent_nid 0, chain_len 0) or a delta over its parent; chains are flattened into a full
-- snapshot when they grow past a bound, so that reading a state costs a bounded number of rows.
-- state_snapshot_entries holds the (type, state_key) -> event rows of each snapshot; event_nid 0
-- in a delta removes the tuple.
-- Personal data: none beyond references to events. Deleted: with the room.
CREATE TABLE state_snapshots (
	snapshot_nid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	room_nid BIGINT NOT NULL REFERENCES rooms (room_nid),
	parent_nid BIGINT NOT NULL DEFAULT 0,
	chain_len BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE state_snapshot_entries (
	snapshot_nid BIGINT NOT NULL REFERENCES state_snapshots (snapshot_nid),
	type_nid BIGINT NOT NULL,
	state_key_nid BIGINT NOT NULL,
	event_nid BIGINT NOT NULL,
	PRIMARY KEY (snapshot_nid, type_nid, state_key_nid)
);

-- current_state: the state of each room now, one row per (type, state_key).
-- Personal data: none beyond references to events. Deleted: with the room.
CREATE TABLE current_state (
	room_nid BIGINT NOT NULL REFERENCES rooms (room_nid),
	type_nid BIGINT NOT NULL,
	state_key_nid BIGINT NOT NULL,
	event_nid BIGINT NOT NULL REFERENCES events (event_nid),
	PRIMARY KEY (room_nid, type_nid, state_key_nid)
);

-- memberships: each user's current membership of each room, derived from current_state.
-- join_pos is the stream position of the user's latest join, which history visibility needs.
-- Personal data: who is in which room. Deleted: a user who leaves keeps a "leave" row (their
-- membership event stays in the DAG); rows go when the room is purged.
CREATE TABLE memberships (
	room_nid BIGINT NOT NULL REFERENCES rooms (room_nid),
	user_id TEXT NOT NULL,
	membership TEXT NOT NULL,
	event_nid BIGINT NOT NULL REFERENCES events (event_nid),
	stream_pos BIGINT NOT NULL,
	join_pos BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (room_nid, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id, membership);

-- forward_extremities: the events of each room that no other event cites yet, which the next
-- event of this server will cite as prev_events.
-- Personal data: none. Deleted: as later events cite them, and with the room.
CREATE TABLE forward_extremities (
	room_nid BIGINT NOT NULL REFERENCES rooms (room_nid),
	event_nid BIGINT NOT NULL REFERENCES events (event_nid),
	PRIMARY KEY (room_nid, event_nid)
);
