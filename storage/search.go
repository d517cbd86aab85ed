package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"unicode"
)

// The full-text index of server-side search (migration 0019). SQLite keeps the text in an FTS4
// table and search ranks with BM25 computed here from matchinfo(); PostgreSQL keeps a tsvector
// and ranks with ts_rank, normalised by the log of the text's length as BM25 does in its own
// way. Both match every word of the query as a prefix of a word of the text,
// and both see the text as SearchWords splits it, so that they find the same events.

// SearchEntry is the searchable text of one event.
type SearchEntry struct {
	Event     EventNID
	Room      RoomNID
	Key       string // content.body, content.name or content.topic
	StreamPos int64
	Value     string
}

// IndexSearch adds a newly stored event's text to the search index.
func (tx *Tx) IndexSearch(ctx context.Context, e SearchEntry) error {
	words := strings.Join(SearchWords(e.Value), " ")
	// No UnindexSearch first: the room server indexes an event once, in the transaction that
	// stores it under a new nid (roomserver/index.go), so there is nothing to replace, and
	// deleting by docid from the FTS4 table cost a tenth of a message's input time. A second
	// call for the same event fails on event_search's primary key rather than index it twice.
	if words == "" {
		return nil
	}
	_, err := tx.Exec(ctx, tx.dialect.Pick(
		`INSERT INTO event_search (event_nid, room_nid, search_key, stream_pos) VALUES ($1, $2, $3, $4)`,
		`INSERT INTO event_search (event_nid, room_nid, search_key, stream_pos, vector)
			VALUES ($1, $2, $3, $4, to_tsvector('simple', $5))`),
		pgArgs(tx.dialect, []any{e.Event, e.Room, e.Key, e.StreamPos}, words)...)
	if err != nil {
		return fmt.Errorf("storage: indexing event %d for search: %w", e.Event, err)
	}
	if tx.dialect == SQLite {
		if _, err := tx.Exec(ctx, `INSERT INTO event_search_fts (docid, value) VALUES ($1, $2)`, e.Event, words); err != nil {
			return fmt.Errorf("storage: indexing event %d for search: %w", e.Event, err)
		}
	}
	return nil
}

func pgArgs(d Dialect, args []any, extra ...any) []any {
	if d == Postgres {
		return append(args, extra...)
	}
	return args
}

// UnindexSearch removes an event from the search index and the user directory's names, for a
// redaction: nothing of the pruned content stays behind.
func (tx *Tx) UnindexSearch(ctx context.Context, ev EventNID) error {
	stmts := []string{`DELETE FROM event_search WHERE event_nid = $1`, `DELETE FROM member_names WHERE event_nid = $1`}
	if tx.dialect == SQLite {
		stmts = append(stmts, `DELETE FROM event_search_fts WHERE docid = $1`)
	}
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q, ev); err != nil {
			return fmt.Errorf("storage: removing event %d from the search index: %w", ev, err)
		}
	}
	return nil
}

// SearchWords splits text into the words the index holds: runs of letters and digits (with
// their combining marks), folded to lower case.
func SearchWords(text string) []string {
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.Is(unicode.Mn, r)
	})
	out := words[:0]
	for _, w := range words {
		// A run of combining marks alone is no word (and an empty token to FTS).
		if strings.IndexFunc(w, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) >= 0 {
			out = append(out, w)
		}
	}
	return out
}

// SearchRoom is a room the searcher may search, up to stream position Until (0: no bound), as
// for a user who left it.
type SearchRoom struct {
	Room  RoomNID
	Until int64
}

// SearchQuery selects events of the index.
type SearchQuery struct {
	Words []string // each must be a prefix of a word of the text
	Keys  []string // nil: all
	Rooms []SearchRoom
	// Before, when not 0, keeps events at stream positions below it.
	Before int64
	Limit  int
}

// SearchHit is an event that matched, with its rank (higher is closer; 0 when not ranked).
type SearchHit struct {
	Event     EventNID
	Room      RoomNID
	StreamPos int64
	Rank      float64
}

// where builds the conditions on event_search s shared by the queries, with arguments from $from.
func (q SearchQuery) where(from int) (string, []any) {
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", from+len(args)-1)
	}
	var rooms []string
	var open []string
	for _, r := range q.Rooms {
		if r.Until == 0 {
			open = append(open, arg(r.Room))
		} else {
			rooms = append(rooms, "(s.room_nid = "+arg(r.Room)+" AND s.stream_pos <= "+arg(r.Until)+")")
		}
	}
	if len(open) > 0 {
		rooms = append(rooms, "s.room_nid IN ("+strings.Join(open, ", ")+")")
	}
	conds := []string{"(" + strings.Join(rooms, " OR ") + ")"}
	if q.Keys != nil {
		keys := make([]string, len(q.Keys))
		for i, k := range q.Keys {
			keys[i] = arg(k)
		}
		conds = append(conds, "s.search_key IN ("+strings.Join(keys, ", ")+")")
	}
	if q.Before != 0 {
		conds = append(conds, "s.stream_pos < "+arg(q.Before))
	}
	return strings.Join(conds, " AND "), args
}

// match returns the FROM clause with the full-text condition, whose argument is $1.
func (q SearchQuery) match(d Dialect) (string, any) {
	if d == Postgres {
		terms := make([]string, len(q.Words))
		for i, w := range q.Words {
			terms[i] = w + ":*"
		}
		return `event_search s WHERE s.vector @@ to_tsquery('simple', $1)`, strings.Join(terms, " & ")
	}
	terms := make([]string, len(q.Words))
	for i, w := range q.Words {
		// Words hold only letters and digits, and lower-case "and"/"or"/"not" are no operators.
		terms[i] = w + "*"
	}
	return `event_search_fts JOIN event_search s ON s.event_nid = event_search_fts.docid WHERE event_search_fts MATCH $1`, strings.Join(terms, " ")
}

// Search returns matching events with their rank. Recent: up to q.Limit of them, newest first
// (below q.Before). Otherwise best first, newest first among equals; only the newest q.Limit
// matches are ranked, which bounds the cost of a search for a common word.
func Search(ctx context.Context, r Reader, q SearchQuery, recent bool) ([]SearchHit, error) {
	if len(q.Words) == 0 || len(q.Rooms) == 0 {
		return nil, nil
	}
	from, m := q.match(r.Dialect())
	where, args := q.where(2)
	args = append([]any{m}, args...)
	args = append(args, q.Limit)
	tail := fmt.Sprintf(` ORDER BY s.stream_pos DESC LIMIT $%d`, len(args))
	var hits []SearchHit
	var err error
	if r.Dialect() == Postgres {
		hits, err = scanHits(ctx, r, `SELECT s.event_nid, s.room_nid, s.stream_pos, ts_rank(s.vector, to_tsquery('simple', $1), 1)
			FROM `+from+` AND `+where+tail, args, func(h *SearchHit, rank any) error {
			switch f := rank.(type) {
			case float32:
				h.Rank = float64(f)
			case float64:
				h.Rank = f
			default:
				return fmt.Errorf("ts_rank returned %T", rank)
			}
			return nil
		})
	} else {
		hits, err = scanHits(ctx, r, `SELECT s.event_nid, s.room_nid, s.stream_pos, matchinfo(event_search_fts, 'pcnalx')
			FROM `+from+` AND `+where+tail, args, func(h *SearchHit, info any) error {
			blob, ok := info.([]byte)
			if !ok {
				return fmt.Errorf("matchinfo returned %T", info)
			}
			var err error
			h.Rank, err = bm25(blob)
			return err
		})
	}
	if err != nil || recent {
		return hits, err
	}
	sort.SliceStable(hits, func(i, j int) bool {
		if hits[i].Rank != hits[j].Rank {
			return hits[i].Rank > hits[j].Rank
		}
		return hits[i].StreamPos > hits[j].StreamPos
	})
	return hits, nil
}

// SearchCount counts the matching events, for the approximate count of a search.
func SearchCount(ctx context.Context, r Reader, q SearchQuery) (int, error) {
	if len(q.Words) == 0 || len(q.Rooms) == 0 {
		return 0, nil
	}
	from, m := q.match(r.Dialect())
	q.Before = 0
	where, args := q.where(2)
	var n int
	if err := r.QueryRow(ctx, `SELECT COUNT(*) FROM `+from+` AND `+where, append([]any{m}, args...)...).Scan(&n); err != nil {
		return 0, fmt.Errorf("storage: counting search results: %w", err)
	}
	return n, nil
}

func scanHits(ctx context.Context, r Reader, query string, args []any, rank func(*SearchHit, any) error) ([]SearchHit, error) {
	rows, err := r.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("storage: searching events: %w", err)
	}
	defer rows.Close()
	var out []SearchHit
	for rows.Next() {
		var h SearchHit
		dest := []any{&h.Event, &h.Room, &h.StreamPos}
		var extra any
		if rank != nil {
			dest = append(dest, &extra)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("storage: searching events: %w", err)
		}
		if rank != nil {
			if err := rank(&h, extra); err != nil {
				return nil, fmt.Errorf("storage: ranking a search result: %w", err)
			}
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// bm25 scores one row from FTS4's matchinfo(event_search_fts, 'pcnalx') with Okapi BM25
// (k1 = 1.2, b = 0.75, the non-negative idf of Lucene), which weighs rare words above common
// ones and a word in a short message above the same word in a long one. The blob is 32-bit
// unsigned integers in native byte order: phrases p, columns c, rows n, average tokens a[c],
// tokens in this row l[c], then for each phrase and column the hits in this row, in all rows,
// and the rows with a hit.
func bm25(info []byte) (float64, error) {
	if len(info)%4 != 0 || len(info) < 12 {
		return 0, fmt.Errorf("matchinfo of %d bytes", len(info))
	}
	v := make([]float64, len(info)/4)
	for i := range v {
		v[i] = float64(binary.NativeEndian.Uint32(info[4*i:]))
	}
	p, c, n := int(v[0]), int(v[1]), v[2]
	if len(v) != 3+2*c+3*p*c {
		return 0, fmt.Errorf("matchinfo of %d values for %d phrases and %d columns", len(v), p, c)
	}
	const k1, b = 1.2, 0.75
	score := 0.0
	for col := range c {
		avg, length := max(v[3+col], 1), v[3+c+col]
		for ph := range p {
			x := v[3+2*c+3*(ph*c+col):]
			tf, df := x[0], x[2]
			if tf == 0 {
				continue
			}
			idf := math.Log(1 + (n-df+0.5)/(df+0.5))
			score += idf * tf * (k1 + 1) / (tf + k1*(1-b+b*length/avg))
		}
	}
	return score, nil
}

// SearchableRoom is a room a user has been in that server-side search may look into: joined
// now, or left or banned (searched up to their departure, MembershipPos).
type SearchableRoom struct {
	Room          RoomNID
	RoomID        string
	Version       string
	Membership    string
	MembershipPos int64
}

// SearchableRooms returns the rooms where userID is joined, or was and left or was banned.
func SearchableRooms(ctx context.Context, r Reader, userID string) ([]SearchableRoom, error) {
	rows, err := r.Query(ctx, `SELECT m.room_nid, r.room_id, r.room_version, m.membership, m.stream_pos
		FROM memberships m JOIN rooms r ON r.room_nid = m.room_nid
		WHERE m.user_id = $1 AND (m.membership = 'join' OR (m.membership IN ('leave', 'ban') AND m.join_pos > 0))
		ORDER BY m.room_nid`, userID)
	if err != nil {
		return nil, fmt.Errorf("storage: rooms to search: %w", err)
	}
	defer rows.Close()
	var out []SearchableRoom
	for rows.Next() {
		var sr SearchableRoom
		if err := rows.Scan(&sr.Room, &sr.RoomID, &sr.Version, &sr.Membership, &sr.MembershipPos); err != nil {
			return nil, fmt.Errorf("storage: rooms to search: %w", err)
		}
		out = append(out, sr)
	}
	return out, rows.Err()
}

// RoomsWithState returns which of the rooms have a current state event of type typ.
func RoomsWithState(ctx context.Context, r Reader, rooms []RoomNID, typ string) (map[RoomNID]bool, error) {
	out := map[RoomNID]bool{}
	for chunk := range chunks(rooms, maxInArgs) {
		got, err := queryNIDs[RoomNID](ctx, r, `SELECT DISTINCT cs.room_nid FROM current_state cs
			JOIN event_types t ON t.type_nid = cs.type_nid
			WHERE t.event_type = $1 AND cs.room_nid IN (`+placeholders(2, len(chunk))+`)`, append([]any{typ}, anys(chunk)...)...)
		if err != nil {
			return nil, fmt.Errorf("storage: rooms with %s: %w", typ, err)
		}
		for _, n := range got {
			out[n] = true
		}
	}
	return out, nil
}

// WorkerPosition returns the position on the events stream a background worker has reached
// (migration 0025), 0 if it has none yet. On PostgreSQL the row stays locked until the
// transaction ends, so two processes never run the same worker's batch at once.
func (tx *Tx) WorkerPosition(ctx context.Context, worker string) (int64, error) {
	var pos int64
	err := tx.QueryRow(ctx, `SELECT stream_pos FROM worker_positions WHERE worker = $1`+
		tx.dialect.Pick("", " FOR UPDATE"), worker).Scan(&pos)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return 0, fmt.Errorf("storage: position of worker %q: %w", worker, err)
	}
	return pos, nil
}

// SetWorkerPosition records the position a background worker has reached.
func (tx *Tx) SetWorkerPosition(ctx context.Context, worker string, pos int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO worker_positions (worker, stream_pos) VALUES ($1, $2)
		ON CONFLICT (worker) DO UPDATE SET stream_pos = excluded.stream_pos`, worker, pos)
	if err != nil {
		return fmt.Errorf("storage: storing the position of worker %q: %w", worker, err)
	}
	return nil
}

// TimelineEventsToIndex returns the timeline events after a stream position, in stream order,
// as the transaction sees them. On PostgreSQL the rows are locked (FOR SHARE) until it ends,
// so that a redaction pruning one of them waits for the indexer or is seen by it; with SQLite
// the single writer gives the same.
func (tx *Tx) TimelineEventsToIndex(ctx context.Context, from int64, limit int) ([]EventRecord, error) {
	return queryEvents(ctx, tx, `SELECT `+eventColumns+` FROM events WHERE stream_pos > $1 ORDER BY stream_pos LIMIT $2`+
		tx.dialect.Pick("", " FOR SHARE"), from, limit)
}
