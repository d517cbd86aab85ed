package storage

import (
	"context"
	"fmt"
	"slices"
)

// MaxSnapshotChain is how many deltas may stack over a full snapshot before a new snapshot is
// written in full. Reading a state walks at most this many snapshots; a room whose state has
// n entries pays n rows once per MaxSnapshotChain state changes.
const MaxSnapshotChain = 64

// StateKey is a (type, state_key) pair by short ids.
type StateKey struct {
	Type     TypeNID
	StateKey StateKeyNID
}

// StateEntry is one entry of a state: which event sets the (type, state_key). In a delta an
// Event of 0 removes the entry.
type StateEntry struct {
	Key   StateKey
	Event EventNID
}

// CreateSnapshot stores the state parent+delta and returns its id. With no parent, delta is
// the whole state. When the parent's delta chain is at MaxSnapshotChain the result is written
// in full instead. Removals (Event 0) in a full snapshot are dropped.
func (tx *Tx) CreateSnapshot(ctx context.Context, room RoomNID, parent SnapshotNID, delta []StateEntry) (SnapshotNID, error) {
	chainLen := int64(0)
	if parent != 0 {
		if err := tx.QueryRow(ctx, `SELECT chain_len FROM state_snapshots WHERE snapshot_nid = $1`, parent).Scan(&chainLen); err != nil {
			return 0, fmt.Errorf("storage: parent snapshot %d: %w", parent, err)
		}
		chainLen++
		if chainLen > MaxSnapshotChain {
			full, err := SnapshotState(ctx, tx, parent)
			if err != nil {
				return 0, err
			}
			delta = ApplyDelta(full, delta)
			parent, chainLen = 0, 0
		}
	}
	if parent == 0 {
		delta = slices.DeleteFunc(slices.Clone(delta), func(e StateEntry) bool { return e.Event == 0 })
	}
	var snap SnapshotNID
	err := tx.QueryRow(ctx, `INSERT INTO state_snapshots (room_nid, parent_nid, chain_len) VALUES ($1, $2, $3) RETURNING snapshot_nid`,
		room, parent, chainLen).Scan(&snap)
	if err != nil {
		return 0, fmt.Errorf("storage: inserting snapshot: %w", err)
	}
	// Multi-row inserts keep a full snapshot of a large room to a few hundred statements.
	const perStatement = 200
	for chunk := range chunks(delta, perStatement) {
		args := make([]any, 0, 4*len(chunk))
		q := make([]byte, 0, 64+24*len(chunk))
		q = append(q, `INSERT INTO state_snapshot_entries (snapshot_nid, type_nid, state_key_nid, event_nid) VALUES `...)
		for i, e := range chunk {
			if i > 0 {
				q = append(q, ", "...)
			}
			q = fmt.Appendf(q, "($%d, $%d, $%d, $%d)", 4*i+1, 4*i+2, 4*i+3, 4*i+4)
			args = append(args, snap, e.Key.Type, e.Key.StateKey, e.Event)
		}
		if _, err := tx.Exec(ctx, string(q), args...); err != nil {
			return 0, fmt.Errorf("storage: inserting snapshot entries: %w", err)
		}
	}
	return snap, nil
}

// ApplyDelta returns full with delta applied, sorted by state key; full is not modified.
func ApplyDelta(full, delta []StateEntry) []StateEntry {
	m := make(map[StateKey]EventNID, len(full)+len(delta))
	for _, e := range full {
		m[e.Key] = e.Event
	}
	for _, e := range delta {
		if e.Event == 0 {
			delete(m, e.Key)
		} else {
			m[e.Key] = e.Event
		}
	}
	out := make([]StateEntry, 0, len(m))
	for k, v := range m {
		out = append(out, StateEntry{Key: k, Event: v})
	}
	slices.SortFunc(out, func(a, b StateEntry) int {
		if a.Key.Type != b.Key.Type {
			return int(a.Key.Type - b.Key.Type)
		}
		return int(a.Key.StateKey - b.Key.StateKey)
	})
	return out
}

// snapshotChain walks from a snapshot to its full ancestor; entries of later (longer-chain)
// snapshots override earlier ones, hence ORDER BY chain_len.
const snapshotChain = `WITH RECURSIVE chain(snapshot_nid, parent_nid, chain_len) AS (
		SELECT snapshot_nid, parent_nid, chain_len FROM state_snapshots WHERE snapshot_nid = $1
		UNION ALL
		SELECT s.snapshot_nid, s.parent_nid, s.chain_len FROM state_snapshots s JOIN chain c ON s.snapshot_nid = c.parent_nid
	)`

// SnapshotState returns the full state of a snapshot, sorted by state key. Snapshot 0 is the
// empty state.
func SnapshotState(ctx context.Context, r Reader, snap SnapshotNID) ([]StateEntry, error) {
	if snap == 0 {
		return nil, nil
	}
	rows, err := r.Query(ctx, snapshotChain+`
		SELECT e.type_nid, e.state_key_nid, e.event_nid FROM chain c
		JOIN state_snapshot_entries e ON e.snapshot_nid = c.snapshot_nid ORDER BY c.chain_len`, snap)
	return collectState(rows, err)
}

// SnapshotLookup returns the entries of a snapshot for the given state keys only; keys the
// state does not hold are left out.
func SnapshotLookup(ctx context.Context, r Reader, snap SnapshotNID, keys []StateKey) ([]StateEntry, error) {
	if snap == 0 || len(keys) == 0 {
		return nil, nil
	}
	args := []any{snap}
	cond := make([]byte, 0, 32*len(keys))
	for i, k := range keys {
		if i > 0 {
			cond = append(cond, " OR "...)
		}
		cond = fmt.Appendf(cond, "(e.type_nid = $%d AND e.state_key_nid = $%d)", 2*i+2, 2*i+3)
		args = append(args, k.Type, k.StateKey)
	}
	rows, err := r.Query(ctx, snapshotChain+`
		SELECT e.type_nid, e.state_key_nid, e.event_nid FROM chain c
		JOIN state_snapshot_entries e ON e.snapshot_nid = c.snapshot_nid
		WHERE `+string(cond)+` ORDER BY c.chain_len`, args...)
	return collectState(rows, err)
}

func collectState(rows *Rows, err error) ([]StateEntry, error) {
	if err != nil {
		return nil, fmt.Errorf("storage: reading snapshot: %w", err)
	}
	defer rows.Close()
	var delta []StateEntry
	for rows.Next() {
		var e StateEntry
		if err := rows.Scan(&e.Key.Type, &e.Key.StateKey, &e.Event); err != nil {
			return nil, err
		}
		delta = append(delta, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return ApplyDelta(nil, delta), nil
}

// CurrentStateEntry is an entry of a room's current state with its strings resolved.
type CurrentStateEntry struct {
	StateEntry
	EventType string
	StateKey  string
	EventID   string
}

// CurrentState returns a room's current state, or only the entries of the given event types
// when types is not empty.
func CurrentState(ctx context.Context, r Reader, room RoomNID, types ...string) ([]CurrentStateEntry, error) {
	q := `SELECT c.type_nid, c.state_key_nid, c.event_nid, t.event_type, k.state_key, e.event_id
		FROM current_state c
		JOIN event_types t ON t.type_nid = c.type_nid
		JOIN event_state_keys k ON k.state_key_nid = c.state_key_nid
		JOIN events e ON e.event_nid = c.event_nid
		WHERE c.room_nid = $1`
	args := []any{room}
	if len(types) > 0 {
		q += ` AND t.event_type IN (` + placeholders(2, len(types)) + `)`
		args = append(args, anys(types)...)
	}
	rows, err := r.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("storage: reading current state: %w", err)
	}
	defer rows.Close()
	var out []CurrentStateEntry
	for rows.Next() {
		var e CurrentStateEntry
		if err := rows.Scan(&e.Key.Type, &e.Key.StateKey, &e.Event, &e.EventType, &e.StateKey, &e.EventID); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// CurrentStateEvent returns the event of one entry of a room's current state; ErrNotFound if
// the state has no such entry.
func CurrentStateEvent(ctx context.Context, r Reader, room RoomNID, typ, stateKey string) (EventRecord, error) {
	got, err := queryEvents(ctx, r, `SELECT `+prefixed("e.", eventColumns)+` FROM current_state c
		JOIN event_types t ON t.type_nid = c.type_nid
		JOIN event_state_keys k ON k.state_key_nid = c.state_key_nid
		JOIN events e ON e.event_nid = c.event_nid
		WHERE c.room_nid = $1 AND t.event_type = $2 AND k.state_key = $3`, room, typ, stateKey)
	if err != nil {
		return EventRecord{}, err
	}
	if len(got) == 0 {
		return EventRecord{}, fmt.Errorf("storage: state %s %q: %w", typ, stateKey, ErrNotFound)
	}
	return got[0], nil
}

// UpdateCurrentState applies a delta to a room's current state (Event 0 removes an entry).
func (tx *Tx) UpdateCurrentState(ctx context.Context, room RoomNID, delta []StateEntry) error {
	for _, e := range delta {
		var err error
		if e.Event == 0 {
			_, err = tx.Exec(ctx, `DELETE FROM current_state WHERE room_nid = $1 AND type_nid = $2 AND state_key_nid = $3`,
				room, e.Key.Type, e.Key.StateKey)
		} else {
			_, err = tx.Exec(ctx, `INSERT INTO current_state (room_nid, type_nid, state_key_nid, event_nid) VALUES ($1, $2, $3, $4)
				ON CONFLICT (room_nid, type_nid, state_key_nid) DO UPDATE SET event_nid = excluded.event_nid`,
				room, e.Key.Type, e.Key.StateKey, e.Event)
		}
		if err != nil {
			return fmt.Errorf("storage: updating current state: %w", err)
		}
	}
	return nil
}

func prefixed(p, cols string) string {
	out := make([]byte, 0, len(cols)+64)
	out = append(out, p...)
	for i := 0; i < len(cols); i++ {
		out = append(out, cols[i])
		if cols[i] == ',' {
			j := i + 1
			for j < len(cols) && (cols[j] == ' ' || cols[j] == '\n' || cols[j] == '\t') {
				out = append(out, cols[j])
				j++
			}
			out = append(out, p...)
			i = j - 1
		}
	}
	return string(out)
}

// StateKeyStrings resolves short ids of types and state keys back to their strings.
func StateKeyStrings(ctx context.Context, r Reader, types []TypeNID, stateKeys []StateKeyNID) (map[TypeNID]string, map[StateKeyNID]string, error) {
	ts := make(map[TypeNID]string, len(types))
	for chunk := range chunks(types, maxInArgs) {
		if err := scanPairs(ctx, r, `SELECT type_nid, event_type FROM event_types WHERE type_nid IN (`+placeholders(1, len(chunk))+`)`,
			anys(chunk), func(n int64, s string) { ts[TypeNID(n)] = s }); err != nil {
			return nil, nil, err
		}
	}
	ks := make(map[StateKeyNID]string, len(stateKeys))
	for chunk := range chunks(stateKeys, maxInArgs) {
		if err := scanPairs(ctx, r, `SELECT state_key_nid, state_key FROM event_state_keys WHERE state_key_nid IN (`+placeholders(1, len(chunk))+`)`,
			anys(chunk), func(n int64, s string) { ks[StateKeyNID(n)] = s }); err != nil {
			return nil, nil, err
		}
	}
	return ts, ks, nil
}

func scanPairs(ctx context.Context, r Reader, query string, args []any, put func(int64, string)) error {
	rows, err := r.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var n int64
		var s string
		if err := rows.Scan(&n, &s); err != nil {
			return err
		}
		put(n, s)
	}
	return rows.Err()
}
