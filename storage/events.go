package storage

import (
	"context"
	"database/sql"
	"fmt"
)

// EventRecord is an event as stored: its body and the columns that queries select on.
type EventRecord struct {
	NID            EventNID
	Room           RoomNID
	EventID        string
	Type           string
	StateKey       *string // nil for non-state events
	TypeNID        TypeNID // 0 for non-state events
	StateKeyNID    StateKeyNID
	Sender         string
	Depth          int64
	StreamPos      int64 // 0 when the event is not on the timeline
	OriginServerTS int64
	StateBefore    SnapshotNID
	StateAfter     SnapshotNID
	Rejected       bool
	SoftFailed     bool
	Outlier        bool
	// JSON is the canonical JSON of the event; nil once the body has been pruned.
	JSON []byte
}

// InsertEvent stores an event and returns its short id; NID is ignored. ErrConflict if the
// event id is stored already.
func (tx *Tx) InsertEvent(ctx context.Context, e EventRecord) (EventNID, error) {
	body, err := encodeEventJSON(e.JSON)
	if err != nil {
		return 0, fmt.Errorf("storage: encoding event %s: %w", e.EventID, err)
	}
	args := []any{e.Room, e.EventID, e.Type, e.StateKey, e.TypeNID, e.StateKeyNID,
		e.Sender, e.Depth, sql.NullInt64{Int64: e.StreamPos, Valid: e.StreamPos != 0}, e.OriginServerTS,
		e.StateBefore, e.StateAfter, e.Rejected, e.SoftFailed, e.Outlier, body}
	if tx.dialect == SQLite {
		// event_nid is the rowid: an Exec reports it without the result set (and, inside a
		// transaction, the goroutine database/sql starts for each one) that RETURNING costs.
		res, err := tx.Exec(ctx, insertEvent, args...)
		if err != nil {
			return 0, fmt.Errorf("storage: inserting event %s: %w", e.EventID, err)
		}
		nid, err := res.LastInsertId()
		if err != nil {
			return 0, fmt.Errorf("storage: inserting event %s: %w", e.EventID, err)
		}
		return EventNID(nid), nil
	}
	var nid EventNID
	if err := tx.QueryRow(ctx, insertEvent+` RETURNING event_nid`, args...).Scan(&nid); err != nil {
		return 0, fmt.Errorf("storage: inserting event %s: %w", e.EventID, err)
	}
	return nid, nil
}

const insertEvent = `INSERT INTO events (room_nid, event_id, event_type, state_key, type_nid, state_key_nid,
			sender, depth, stream_pos, origin_server_ts, state_before_nid, state_after_nid,
			rejected, soft_failed, outlier, event_json)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`

const eventColumns = `event_nid, room_nid, event_id, event_type, state_key, type_nid, state_key_nid, sender, depth,
	stream_pos, origin_server_ts, state_before_nid, state_after_nid, rejected, soft_failed, outlier, event_json`

func scanEvent(rows *Rows) (EventRecord, error) {
	var (
		e        EventRecord
		stateKey sql.NullString
		pos      sql.NullInt64
		body     []byte
	)
	err := rows.Scan(&e.NID, &e.Room, &e.EventID, &e.Type, &stateKey, &e.TypeNID, &e.StateKeyNID, &e.Sender, &e.Depth,
		&pos, &e.OriginServerTS, &e.StateBefore, &e.StateAfter, &e.Rejected, &e.SoftFailed, &e.Outlier, &body)
	if err != nil {
		return EventRecord{}, err
	}
	if stateKey.Valid {
		e.StateKey = &stateKey.String
	}
	e.StreamPos = pos.Int64
	if body != nil {
		if e.JSON, err = decodeEventJSON(body); err != nil {
			return EventRecord{}, fmt.Errorf("storage: decoding event %s: %w", e.EventID, err)
		}
	}
	return e, nil
}

func queryEvents(ctx context.Context, r Reader, query string, args ...any) ([]EventRecord, error) {
	rows, err := r.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("storage: reading events: %w", err)
	}
	defer rows.Close()
	var out []EventRecord
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// maxInArgs bounds the arguments of one IN (...) list; SQLite allows 32766 and PostgreSQL 65535.
const maxInArgs = 1000

// EventsByID returns the stored events among ids, in no particular order.
func EventsByID(ctx context.Context, r Reader, ids []string) ([]EventRecord, error) {
	var out []EventRecord
	for chunk := range chunks(ids, maxInArgs) {
		got, err := queryEvents(ctx, r, `SELECT `+eventColumns+` FROM events WHERE event_id IN (`+placeholders(1, len(chunk))+`)`, anys(chunk)...)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// EventsByNID returns the stored events among nids, in no particular order.
func EventsByNID(ctx context.Context, r Reader, nids []EventNID) ([]EventRecord, error) {
	var out []EventRecord
	for chunk := range chunks(nids, maxInArgs) {
		got, err := queryEvents(ctx, r, `SELECT `+eventColumns+` FROM events WHERE event_nid IN (`+placeholders(1, len(chunk))+`)`, anys(chunk)...)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// EventByID returns one event; ErrNotFound if it is not stored.
func EventByID(ctx context.Context, r Reader, id string) (EventRecord, error) {
	got, err := EventsByID(ctx, r, []string{id})
	if err != nil {
		return EventRecord{}, err
	}
	if len(got) == 0 {
		return EventRecord{}, fmt.Errorf("storage: event %s: %w", id, ErrNotFound)
	}
	return got[0], nil
}

// RoomEventsByStream returns the timeline events of a room with from < stream_pos <= to, in
// stream order, at most limit of them (the first ones, or the last ones when backwards).
func RoomEventsByStream(ctx context.Context, r Reader, room RoomNID, from, to int64, limit int, backwards bool) ([]EventRecord, error) {
	order := "ASC"
	if backwards {
		order = "DESC"
	}
	return queryEvents(ctx, r, `SELECT `+eventColumns+` FROM events
		WHERE room_nid = $1 AND stream_pos > $2 AND stream_pos <= $3 ORDER BY stream_pos `+order+` LIMIT $4`,
		room, from, to, limit)
}

// InsertAuthEdges records the auth events of an event.
func (tx *Tx) InsertAuthEdges(ctx context.Context, ev EventNID, auth []EventNID) error {
	if err := insertEdges(ctx, tx, `event_auth_edges`, `auth_event_nid`, ev, auth); err != nil {
		return fmt.Errorf("storage: inserting auth edges: %w", err)
	}
	return nil
}

// InsertPrevEdges records the prev events of an event, which need not be stored.
func (tx *Tx) InsertPrevEdges(ctx context.Context, ev EventNID, prev []string) error {
	if err := insertEdges(ctx, tx, `event_prev_edges`, `prev_event_id`, ev, prev); err != nil {
		return fmt.Errorf("storage: inserting prev edges: %w", err)
	}
	return nil
}

// insertEdges records edges from ev to the given events in an edge table whose columns are
// event_nid and column.
func insertEdges[T any](ctx context.Context, tx *Tx, table, column string, ev EventNID, to []T) error {
	if len(to) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(to))
	q := `INSERT INTO ` + table + ` (event_nid, ` + column + `) VALUES `
	for i, t := range to {
		if i > 0 {
			q += ", "
		}
		q += fmt.Sprintf("($%d, $%d)", 2*i+1, 2*i+2)
		args = append(args, ev, t)
	}
	_, err := tx.Exec(ctx, q+` ON CONFLICT DO NOTHING`, args...)
	return err
}

// AuthChain returns the union of the auth chains of events: every event reachable from them
// through auth edges. The given events are only included if one is in another's chain.
func AuthChain(ctx context.Context, r Reader, events []EventNID) ([]EventNID, error) {
	if len(events) == 0 {
		return nil, nil
	}
	// UNION (not UNION ALL) stops at events already reached, so shared ancestry is walked once.
	return queryNIDs[EventNID](ctx, r, `WITH RECURSIVE chain(event_nid) AS (
			SELECT auth_event_nid FROM event_auth_edges WHERE event_nid IN (`+placeholders(1, len(events))+`)
			UNION
			SELECT e.auth_event_nid FROM event_auth_edges e JOIN chain c ON e.event_nid = c.event_nid
		) SELECT event_nid FROM chain`, anys(events)...)
}

// AuthDifference returns the auth difference of state sets, as state resolution v2 defines
// it: the events in the auth chain of some set but not of every set. Each set is given as the
// events it holds; their own chains are what is compared.
func AuthDifference(ctx context.Context, r Reader, sets [][]EventNID) ([]EventNID, error) {
	if len(sets) == 0 {
		return nil, nil
	}
	count := map[EventNID]int{}
	for _, set := range sets {
		chain, err := AuthChain(ctx, r, set)
		if err != nil {
			return nil, err
		}
		for _, n := range chain {
			count[n]++
		}
	}
	var out []EventNID
	for n, c := range count {
		if c < len(sets) {
			out = append(out, n)
		}
	}
	return out, nil
}

// RejectedAmong returns which of the given events are stored as rejected.
func RejectedAmong(ctx context.Context, r Reader, ids []string) (map[string]bool, error) {
	return idsAmong(ctx, r, `SELECT event_id FROM events WHERE rejected AND event_id IN (`, ids)
}

// idsAmong returns which of ids a query selects. The query selects one string column and ends
// in "IN (", which the ids complete, as many at a time as a statement takes.
func idsAmong(ctx context.Context, r Reader, query string, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	for chunk := range chunks(ids, maxInArgs) {
		rows, err := r.Query(ctx, query+placeholders(1, len(chunk))+`)`, anys(chunk)...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			out[id] = true
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// EventIDsByNID maps short ids back to event ids.
func EventIDsByNID(ctx context.Context, r Reader, nids []EventNID) (map[EventNID]string, error) {
	out := make(map[EventNID]string, len(nids))
	for chunk := range chunks(nids, maxInArgs) {
		rows, err := r.Query(ctx, `SELECT event_nid, event_id FROM events WHERE event_nid IN (`+placeholders(1, len(chunk))+`)`, anys(chunk)...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var n EventNID
			var id string
			if err := rows.Scan(&n, &id); err != nil {
				rows.Close()
				return nil, err
			}
			out[n] = id
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func chunks[T any](s []T, n int) func(func([]T) bool) {
	return func(yield func([]T) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

// maxRowsPerInsert bounds the rows of one multi-row INSERT (binaryChunks).
const maxRowsPerInsert = 64

// binaryChunks is chunks for multi-row statements: it yields chunks of max rows (a power of two),
// then the rest in chunks of decreasing powers of two. Every statement text is one of a few, so
// each is prepared once and kept in the connection's statement cache, where chunks of every
// size would compile a new statement for almost every call.
func binaryChunks[T any](s []T, max int) func(func([]T) bool) {
	return func(yield func([]T) bool) {
		for n := max; len(s) > 0; n /= 2 {
			for len(s) >= n {
				if !yield(s[:n]) {
					return
				}
				s = s[n:]
			}
		}
	}
}

func anys[T any](s []T) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// SetStateAfter records the snapshot of the state after a state event, which is written once
// the event has its short id.
func (tx *Tx) SetStateAfter(ctx context.Context, ev EventNID, snap SnapshotNID) error {
	_, err := tx.Exec(ctx, `UPDATE events SET state_after_nid = $1 WHERE event_nid = $2`, snap, ev)
	return err
}
