-- Server-side search and the user directory. The SQLite and PostgreSQL forms differ only in the
-- full-text index: an FTS4 virtual table here (FTS4 is compiled into mattn/go-sqlite3 by
-- default, FTS5 only with a build tag), a tsvector column with a GIN index there. Keep the two
-- files in step.

-- event_search: the searchable text of the events clients may come to see: content.body of
-- m.room.message, content.name of m.room.name, content.topic (and the text/plain m.topic) of
-- m.room.topic. Never m.room.encrypted, which has no plaintext. event_search_fts holds the text,
-- its docid is the event_nid; event_search the columns the search selects on.
-- Personal data: a copy of message text. Deleted: in the transaction that redacts the event or
-- purges it by retention, and with the room.
CREATE TABLE event_search (
	event_nid INTEGER PRIMARY KEY,
	room_nid BIGINT NOT NULL,
	search_key TEXT NOT NULL,
	stream_pos BIGINT NOT NULL
);
CREATE INDEX event_search_room_stream ON event_search (room_nid, stream_pos);
-- unicode61 folds case and strips diacritics without stemming, like PostgreSQL's 'simple'
-- configuration, so that both backends find the same words.
CREATE VIRTUAL TABLE event_search_fts USING fts4 (value, tokenize=unicode61);

-- member_names: the display name and avatar of each m.room.member event, so that the user
-- directory can match names in SQL (event bodies go through the event codec and cannot be read
-- by SQL). search_name is the display name folded to lower case by Go. Joined to memberships by
-- event_nid, so only the current membership event of each member counts.
-- Personal data: display names and avatars. Deleted: when the membership event is redacted (its
-- display name is pruned with it), and with the room.
CREATE TABLE member_names (
	event_nid INTEGER PRIMARY KEY,
	display_name TEXT NOT NULL,
	search_name TEXT NOT NULL,
	avatar_url TEXT NOT NULL
);

-- public_room_state: the state events that make a room's members visible to anyone, as the user
-- directory counts them: m.room.join_rules with join_rule public, m.room.history_visibility
-- with world_readable. The rooms whose members anyone may find are those with such an event in
-- their current state (current_state joined to this table). A redaction keeps both fields, so
-- rows stay until the room goes.
-- Personal data: none. Deleted: with the room.
CREATE TABLE public_room_state (
	event_nid INTEGER PRIMARY KEY
);
