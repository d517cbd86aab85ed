-- event_relations: one row per stored event whose content has an m.relates_to with a rel_type
-- and an event_id (edits, reactions, threads, references, and relation types the spec does not
-- know yet), so that /relations, /threads and the bundled aggregations read an index instead
-- of event bodies. The parent is kept as an event id: a child may arrive before its parent.
-- m.relates_to is always in the cleartext of an event, encrypted or not, so this table holds
-- what the server can see anyway; it never holds message content, only the annotation key of
-- an m.annotation (typically an emoji).
-- Personal data: who related which event to which, and reaction keys. Deleted: when the child
-- event is redacted or purged by retention (its content, m.relates_to included, is pruned in the
-- same transaction), and with the events.
CREATE TABLE event_relations (
	child_nid BIGINT PRIMARY KEY,
	child_id TEXT NOT NULL,
	room_nid BIGINT NOT NULL,
	parent_id TEXT NOT NULL,
	rel_type TEXT NOT NULL,
	child_type TEXT NOT NULL,
	sender TEXT NOT NULL,
	-- depth and stream_pos place the child in the room's topological order (stream_pos is 0
	-- for an outlier, which no reader is served, and negative for a backfilled event);
	-- origin_server_ts orders edits, as the spec orders them.
	depth BIGINT NOT NULL,
	stream_pos BIGINT NOT NULL,
	origin_server_ts BIGINT NOT NULL,
	-- aggregation_key is the key of an m.annotation, NULL otherwise.
	aggregation_key TEXT
);
-- /relations of one parent in topological order, with or without a rel_type; the bundled
-- aggregations of a page of parents.
CREATE INDEX event_relations_parent ON event_relations (parent_id, rel_type, depth, stream_pos);
CREATE INDEX event_relations_parent_topo ON event_relations (parent_id, depth, stream_pos);

-- thread_roots: one row per thread (a root with at least one m.thread child on the timeline),
-- with the place of its latest reply, so that /threads pages threads by their latest activity
-- without aggregating every reply of the room.
-- Personal data: none beyond event ids. Deleted: when the last reply of the thread is redacted.
CREATE TABLE thread_roots (
	room_nid BIGINT NOT NULL,
	root_id TEXT NOT NULL,
	latest_child_nid BIGINT NOT NULL,
	latest_depth BIGINT NOT NULL,
	latest_stream_pos BIGINT NOT NULL,
	PRIMARY KEY (room_nid, root_id)
);
CREATE INDEX thread_roots_latest ON thread_roots (room_nid, latest_depth, latest_stream_pos);
