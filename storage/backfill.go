package storage

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// Backfilled history: events fetched from other servers that precede what this server had of
// a room. They are stored on the timeline with negative stream positions (as Synapse does),
// from the "backfill" stream: the first backfilled event gets -1, and each batch goes further
// below the one before, oldest event lowest. So topological order (depth, then stream
// position) puts them before every live event at the same depth, and /sync, which reads
// positions above its token, never announces history as new.

// TopoStart is before every event of a room, backfilled ones included.
var TopoStart = TopoPos{Topological: true, Depth: math.MinInt64, Stream: math.MinInt64}

// BackfillExtremity is an event of a room's history that the room's timeline cites but does
// not hold; Depth is the depth of the citing event.
type BackfillExtremity struct {
	EventID  string
	Depth    int64
	FailedTS int64
}

// AddBackfillExtremities records events cited by the timeline of room that it does not hold.
// Ids recorded already keep their depth.
func (tx *Tx) AddBackfillExtremities(ctx context.Context, room RoomNID, exts []BackfillExtremity) error {
	for _, e := range exts {
		if _, err := tx.Exec(ctx, `INSERT INTO backfill_extremities (room_nid, event_id, depth) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING`, room, e.EventID, e.Depth); err != nil {
			return fmt.Errorf("storage: recording backfill extremity: %w", err)
		}
	}
	return nil
}

// RemoveBackfillExtremities forgets extremities: fetched, or given up on.
func (tx *Tx) RemoveBackfillExtremities(ctx context.Context, room RoomNID, ids []string) error {
	for chunk := range chunks(ids, maxInArgs) {
		if _, err := tx.Exec(ctx, `DELETE FROM backfill_extremities WHERE room_nid = $1 AND event_id IN (`+placeholders(2, len(chunk))+`)`,
			append([]any{room}, anys(chunk)...)...); err != nil {
			return fmt.Errorf("storage: removing backfill extremities: %w", err)
		}
	}
	return nil
}

// MarkBackfillFailed records that fetching the extremities failed at ts (unix ms).
func (tx *Tx) MarkBackfillFailed(ctx context.Context, room RoomNID, ids []string, ts int64) error {
	for chunk := range chunks(ids, maxInArgs) {
		if _, err := tx.Exec(ctx, `UPDATE backfill_extremities SET failed_ts = $1 WHERE room_nid = $2 AND event_id IN (`+placeholders(3, len(chunk))+`)`,
			append([]any{ts, room}, anys(chunk)...)...); err != nil {
			return fmt.Errorf("storage: marking backfill failure: %w", err)
		}
	}
	return nil
}

// BackfillExtremities returns the extremities of a room cited at a depth in [minDepth,
// maxDepth] whose last failure (if any) is before failedBefore, deepest first, at most limit.
func BackfillExtremities(ctx context.Context, r Reader, room RoomNID, minDepth, maxDepth, failedBefore int64, limit int) ([]BackfillExtremity, error) {
	rows, err := r.Query(ctx, `SELECT event_id, depth, failed_ts FROM backfill_extremities
		WHERE room_nid = $1 AND depth >= $2 AND depth <= $3 AND failed_ts < $4
		ORDER BY depth DESC, event_id LIMIT $5`, room, minDepth, maxDepth, failedBefore, limit)
	if err != nil {
		return nil, fmt.Errorf("storage: reading backfill extremities: %w", err)
	}
	defer rows.Close()
	var out []BackfillExtremity
	for rows.Next() {
		var e BackfillExtremity
		if err := rows.Scan(&e.EventID, &e.Depth, &e.FailedTS); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// TimelineAmong returns which of ids are stored on a timeline (with a stream position).
func TimelineAmong(ctx context.Context, r Reader, ids []string) (map[string]bool, error) {
	return idsAmong(ctx, r, `SELECT event_id FROM events WHERE stream_pos IS NOT NULL AND event_id IN (`, ids)
}

// ReserveBackfillPositions allocates n positions for backfilled events and returns the lowest
// (most negative) of them; the others follow it: lowest+1, ..., lowest+n-1. Give the oldest
// event the lowest.
func (tx *Tx) ReserveBackfillPositions(ctx context.Context, n int) (int64, error) {
	if n <= 0 {
		return 0, errors.New("storage: reserving no backfill positions")
	}
	var hi int64
	err := tx.QueryRow(ctx, `INSERT INTO stream_positions (stream, pos) VALUES ('backfill', $1)
		ON CONFLICT (stream) DO UPDATE SET pos = stream_positions.pos + $1
		RETURNING pos`, int64(n)).Scan(&hi)
	if err != nil {
		return 0, fmt.Errorf("storage: reserving backfill positions: %w", err)
	}
	return -hi, nil
}

// PlaceOnTimeline puts an event stored as an outlier on the timeline, as backfill does with
// the state events a remote join stored before their place in history was known.
func (tx *Tx) PlaceOnTimeline(ctx context.Context, ev EventNID, streamPos int64, before, after SnapshotNID) error {
	_, err := tx.Exec(ctx, `UPDATE events SET outlier = FALSE, stream_pos = $1, state_before_nid = $2, state_after_nid = $3
		WHERE event_nid = $4`, streamPos, before, after, ev)
	if err != nil {
		return fmt.Errorf("storage: placing event %d on the timeline: %w", ev, err)
	}
	return nil
}

// SetRoomJoinedVia records the server this server joined room through.
func (tx *Tx) SetRoomJoinedVia(ctx context.Context, room RoomNID, server string) error {
	_, err := tx.Exec(ctx, `INSERT INTO room_joined_via (room_nid, server) VALUES ($1, $2)
		ON CONFLICT (room_nid) DO UPDATE SET server = $2`, room, server)
	if err != nil {
		return fmt.Errorf("storage: recording the server a room was joined through: %w", err)
	}
	return nil
}

// RoomJoinedVia returns the server this server joined room through; "" if none is recorded.
func RoomJoinedVia(ctx context.Context, r Reader, room RoomNID) (string, error) {
	var server string
	err := r.QueryRow(ctx, `SELECT server FROM room_joined_via WHERE room_nid = $1`, room).Scan(&server)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("storage: reading the server a room was joined through: %w", err)
	}
	return server, nil
}
