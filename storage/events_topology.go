package storage

import (
	"context"
	"math"
)

// TopoPos is a place in a room's topological order: after the event at (Depth, Stream). A
// stream-only place (Topological false) compares by stream position alone, which is how a
// /sync token, that knows no depth, bounds a page that is then read in topological order.
type TopoPos struct {
	Topological bool
	Depth       int64
	Stream      int64
}

// TopoEnd is past every event of a room.
var TopoEnd = TopoPos{Topological: true, Depth: math.MaxInt64, Stream: math.MaxInt64}

// topoAfter is the condition "the event is after p", with its arguments numbered from n.
func topoAfter(p TopoPos, n int) (string, []any) {
	if !p.Topological {
		return `stream_pos > ` + placeholders(n, 1), []any{p.Stream}
	}
	return `(depth, stream_pos) > (` + placeholders(n, 2) + `)`, []any{p.Depth, p.Stream}
}

// RoomEventsByTopology returns the timeline events of a room that are after from and not after
// to, and not past stream position maxStream (what a reader who left may still see), in
// topological order: by depth, then by stream position. Backfilled events, whose stream
// positions are negative (backfill.go), are timeline events too. At most limit of them: the first ones,
// or the last ones (newest first) when backwards. The index events_room_topological serves it.
func RoomEventsByTopology(ctx context.Context, r Reader, room RoomNID, from, to TopoPos, maxStream int64, limit int, backwards bool) ([]EventRecord, error) {
	order := "ASC"
	if backwards {
		order = "DESC"
	}
	after, args := topoAfter(from, 4)
	notAfter, toArgs := topoAfter(to, 4+len(args))
	args = append([]any{room, maxStream, limit}, append(args, toArgs...)...)
	return queryEvents(ctx, r, `SELECT `+eventColumns+` FROM events
		WHERE room_nid = $1 AND stream_pos IS NOT NULL AND stream_pos <= $2 AND `+after+` AND NOT (`+notAfter+`)
		ORDER BY depth `+order+`, stream_pos `+order+` LIMIT $3`, args...)
}
