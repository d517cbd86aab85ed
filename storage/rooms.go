package storage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// Short ids. Rooms, events and the strings of state tuples are stored once and referred to by
// these integers, so that a state snapshot is a set of integer triples.
type (
	RoomNID     int64
	EventNID    int64
	TypeNID     int64
	StateKeyNID int64
	SnapshotNID int64
)

// Room is a room as stored.
type Room struct {
	NID     RoomNID
	ID      string
	Version string
	// CurrentSnapshot is the snapshot of the room's current state; 0 before the create event.
	CurrentSnapshot SnapshotNID
}

// InsertRoom records a new room; ErrConflict if the room id is known already.
func (tx *Tx) InsertRoom(ctx context.Context, roomID, version string) (RoomNID, error) {
	var nid RoomNID
	err := tx.QueryRow(ctx, `INSERT INTO rooms (room_id, room_version) VALUES ($1, $2) RETURNING room_nid`,
		roomID, version).Scan(&nid)
	if err != nil {
		return 0, fmt.Errorf("storage: inserting room: %w", err)
	}
	return nid, nil
}

// GetRoom returns a room by id; ErrNotFound if it is unknown.
func GetRoom(ctx context.Context, r Reader, roomID string) (Room, error) {
	rm := Room{ID: roomID}
	err := r.QueryRow(ctx, `SELECT room_nid, room_version, current_snapshot_nid FROM rooms WHERE room_id = $1`, roomID).
		Scan(&rm.NID, &rm.Version, &rm.CurrentSnapshot)
	if err != nil {
		return Room{}, fmt.Errorf("storage: room %s: %w", roomID, err)
	}
	return rm, nil
}

// GetRoomByNID returns a room by short id; ErrNotFound if there is none.
func GetRoomByNID(ctx context.Context, r Reader, nid RoomNID) (Room, error) {
	rm := Room{NID: nid}
	err := r.QueryRow(ctx, `SELECT room_id, room_version, current_snapshot_nid FROM rooms WHERE room_nid = $1`, nid).
		Scan(&rm.ID, &rm.Version, &rm.CurrentSnapshot)
	if err != nil {
		return Room{}, fmt.Errorf("storage: room %d: %w", nid, err)
	}
	return rm, nil
}

// SetCurrentSnapshot records the snapshot of a room's current state.
func (tx *Tx) SetCurrentSnapshot(ctx context.Context, room RoomNID, snap SnapshotNID) error {
	_, err := tx.Exec(ctx, `UPDATE rooms SET current_snapshot_nid = $1 WHERE room_nid = $2`, snap, room)
	return err
}

// AssignTypeNID returns the short id of an event type, allocating it if needed. The id is only
// durable once the transaction commits.
func (tx *Tx) AssignTypeNID(ctx context.Context, typ string) (TypeNID, error) {
	nid, err := tx.assignNID(ctx, "event_types", "type_nid", "event_type", typ)
	return TypeNID(nid), err
}

// AssignStateKeyNID is AssignTypeNID for state keys.
func (tx *Tx) AssignStateKeyNID(ctx context.Context, stateKey string) (StateKeyNID, error) {
	nid, err := tx.assignNID(ctx, "event_state_keys", "state_key_nid", "state_key", stateKey)
	return StateKeyNID(nid), err
}

// assignNID inserts value into a string-interning table unless present. The table and column
// names are constants of this file, never input.
func (tx *Tx) assignNID(ctx context.Context, table, nidCol, valCol, value string) (int64, error) {
	var nid int64
	err := tx.QueryRow(ctx, `SELECT `+nidCol+` FROM `+table+` WHERE `+valCol+` = $1`, value).Scan(&nid)
	if err == nil {
		return nid, nil
	}
	if !isNotFound(err) {
		return 0, fmt.Errorf("storage: looking up %s: %w", table, err)
	}
	// Only the writer inserts (SQLite) or the row may race another process (PostgreSQL):
	// ON CONFLICT DO NOTHING returns no row then, and the SELECT after it finds the winner's.
	err = tx.QueryRow(ctx, `INSERT INTO `+table+` (`+valCol+`) VALUES ($1) ON CONFLICT DO NOTHING RETURNING `+nidCol, value).Scan(&nid)
	if isNotFound(err) {
		err = tx.QueryRow(ctx, `SELECT `+nidCol+` FROM `+table+` WHERE `+valCol+` = $1`, value).Scan(&nid)
	}
	if err != nil {
		return 0, fmt.Errorf("storage: assigning %s: %w", table, err)
	}
	return nid, nil
}

// LookupTypeNIDs returns the short ids of the types that have one; unknown types are left out.
func LookupTypeNIDs(ctx context.Context, r Reader, types []string) (map[string]TypeNID, error) {
	out := map[string]TypeNID{}
	err := lookupNIDs(ctx, r, "event_types", "type_nid", "event_type", types, func(s string, n int64) { out[s] = TypeNID(n) })
	return out, err
}

// LookupStateKeyNIDs is LookupTypeNIDs for state keys.
func LookupStateKeyNIDs(ctx context.Context, r Reader, keys []string) (map[string]StateKeyNID, error) {
	out := map[string]StateKeyNID{}
	err := lookupNIDs(ctx, r, "event_state_keys", "state_key_nid", "state_key", keys, func(s string, n int64) { out[s] = StateKeyNID(n) })
	return out, err
}

func lookupNIDs(ctx context.Context, r Reader, table, nidCol, valCol string, values []string, put func(string, int64)) error {
	if len(values) == 0 {
		return nil
	}
	args := make([]any, len(values))
	for i, v := range values {
		args[i] = v
	}
	rows, err := r.Query(ctx, `SELECT `+valCol+`, `+nidCol+` FROM `+table+` WHERE `+valCol+` IN (`+placeholders(1, len(values))+`)`, args...)
	if err != nil {
		return fmt.Errorf("storage: looking up %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			return err
		}
		put(s, n)
	}
	return rows.Err()
}

// ForwardExtremities returns the forward extremities of a room.
func ForwardExtremities(ctx context.Context, r Reader, room RoomNID) ([]EventNID, error) {
	return queryNIDs[EventNID](ctx, r, `SELECT event_nid FROM forward_extremities WHERE room_nid = $1 ORDER BY event_nid`, room)
}

// UpdateForwardExtremities removes the extremities an event cites and adds the event.
// add may be 0 to only remove (a soft-failed event never becomes an extremity).
func (tx *Tx) UpdateForwardExtremities(ctx context.Context, room RoomNID, add EventNID, remove []EventNID) error {
	if add != 0 && len(remove) == 1 {
		// The common case, a new event citing the one extremity, is one statement: the row
		// is moved, not deleted and inserted. When the cited event was no extremity (any
		// more), nothing moves and the event is inserted below.
		res, err := tx.Exec(ctx, `UPDATE forward_extremities SET event_nid = $1 WHERE room_nid = $2 AND event_nid = $3`, add, room, remove[0])
		if err != nil {
			return fmt.Errorf("storage: moving forward extremity: %w", err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 1 {
			return nil
		}
		remove = nil
	}
	if len(remove) > 0 {
		args := []any{room}
		for _, n := range remove {
			args = append(args, n)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM forward_extremities WHERE room_nid = $1 AND event_nid IN (`+placeholders(2, len(remove))+`)`, args...); err != nil {
			return fmt.Errorf("storage: removing forward extremities: %w", err)
		}
	}
	if add != 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO forward_extremities (room_nid, event_nid) VALUES ($1, $2)`, room, add); err != nil {
			return fmt.Errorf("storage: adding forward extremity: %w", err)
		}
	}
	return nil
}

// placeholders returns "$from, $from+1, ..." for n arguments.
func placeholders(from, n int) string {
	b := make([]byte, 0, n*6)
	for i := range n {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(from+i), 10)
	}
	return string(b)
}

// rowValues returns "($1, ..., $cols), ($cols+1, ...), ..." for rows rows of cols arguments:
// the VALUES list of a multi-row INSERT. The lists are kept: binaryChunks asks for few sizes.
func rowValues(rows, cols int) string {
	key := [2]int{rows, cols}
	if v, ok := rowValuesCache.Load(key); ok {
		return v.(string)
	}
	parts := make([]string, rows)
	for i := range parts {
		parts[i] = "(" + placeholders(1+i*cols, cols) + ")"
	}
	v := strings.Join(parts, ", ")
	rowValuesCache.Store(key, v)
	return v
}

var rowValuesCache sync.Map // [2]int{rows, cols} -> string

func queryNIDs[N ~int64](ctx context.Context, r Reader, query string, args ...any) ([]N, error) {
	rows, err := r.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []N
	for rows.Next() {
		var n N
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

func isNotFound(err error) bool { return err != nil && errors.Is(err, ErrNotFound) }
