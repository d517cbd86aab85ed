-- History this server has not fetched yet, for rooms it joined over federation (or whose
-- timeline has a gap it bridged with /state_ids): where backfill resumes.

-- backfill_extremities: the "backward extremities" of a room, events cited as prev_events by
-- events of its timeline that this server does not have on its timeline (not stored, or stored
-- only as outliers). depth is the depth of the citing event, so that /messages can tell which
-- gaps a page of history crosses. failed_ts is when the last attempt to fetch it failed (0:
-- never), so that a dead server does not stall every page; an extremity that no server could
-- give is dropped, which bounds the work on bogus or cyclic chains.
-- Personal data: none beyond event ids. Deleted: when the event is fetched, when no server has
-- it, and with the room.
CREATE TABLE backfill_extremities (
	room_nid BIGINT NOT NULL,
	event_id TEXT NOT NULL,
	depth BIGINT NOT NULL,
	failed_ts BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (room_nid, event_id)
);
CREATE INDEX backfill_extremities_depth ON backfill_extremities (room_nid, depth);

-- room_joined_via: the server this server joined each room through, asked first for history.
-- Personal data: none; server names. Deleted: overwritten by the next remote join, and with
-- the room.
CREATE TABLE room_joined_via (
	room_nid BIGINT PRIMARY KEY,
	server TEXT NOT NULL
);
