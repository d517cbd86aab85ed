package storage_test

import (
	"context"
	"fmt"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// Events arrive out of depth order (a backfilled stretch of history lands after newer events):
// topological pagination follows depth, then stream position, whatever the arrival order.
func TestRoomEventsByTopology(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		// (id, depth, stream): $c and $d were backfilled after $e; $x is an outlier.
		events := []struct {
			id            string
			depth, stream int64
		}{{"$a", 1, 1}, {"$b", 2, 2}, {"$e", 5, 3}, {"$c", 3, 4}, {"$d", 4, 5}, {"$e2", 5, 6}, {"$f", 6, 7}, {"$x", 2, 0}}
		var room storage.RoomNID
		err := db.WithTx(ctx, func(tx *storage.Tx) error {
			var err error
			if room, err = tx.InsertRoom(ctx, "!r:example.org", "12"); err != nil {
				return err
			}
			for _, e := range events {
				_, err := tx.InsertEvent(ctx, storage.EventRecord{Room: room, EventID: e.id, Type: "t", Sender: "@a:example.org",
					Depth: e.depth, StreamPos: e.stream, Outlier: e.stream == 0, JSON: []byte("{}")})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		ids := func(recs []storage.EventRecord) string {
			var out []string
			for _, r := range recs {
				out = append(out, r.EventID)
			}
			return fmt.Sprint(out)
		}
		start := storage.TopoPos{}
		topo := func(d, s int64) storage.TopoPos { return storage.TopoPos{Topological: true, Depth: d, Stream: s} }
		stream := func(s int64) storage.TopoPos { return storage.TopoPos{Stream: s} }
		for _, tc := range []struct {
			name      string
			from, to  storage.TopoPos
			maxStream int64
			limit     int
			backwards bool
			want      []string
		}{
			{"all forwards", start, storage.TopoEnd, 100, 100, false, []string{"$a", "$b", "$c", "$d", "$e", "$e2", "$f"}},
			{"all backwards", start, storage.TopoEnd, 100, 100, true, []string{"$f", "$e2", "$e", "$d", "$c", "$b", "$a"}},
			{"newest three", start, storage.TopoEnd, 100, 3, true, []string{"$f", "$e2", "$e"}},
			// A /sync prev_batch at stream 3 bounds by stream: $c and $d, backfilled later,
			// are older than $e by depth but not in that window.
			{"stream bound", start, stream(3), 100, 100, true, []string{"$e", "$b", "$a"}},
			// From a topological token at $e (depth 5, stream 3), exclusive of it.
			{"before $e", start, topo(5, 2), 100, 100, true, []string{"$d", "$c", "$b", "$a"}},
			{"after $e", topo(5, 3), storage.TopoEnd, 100, 100, false, []string{"$e2", "$f"}},
			{"between tokens", topo(2, 2), topo(5, 3), 100, 100, false, []string{"$c", "$d", "$e"}},
			{"after stream 5", stream(5), storage.TopoEnd, 100, 100, false, []string{"$e2", "$f"}},
			// A reader whose view ends at stream 5 sees neither $e2 nor $f.
			{"reader who left", start, storage.TopoEnd, 5, 100, true, []string{"$e", "$d", "$c", "$b", "$a"}},
		} {
			recs, err := storage.RoomEventsByTopology(ctx, db, room, tc.from, tc.to, tc.maxStream, tc.limit, tc.backwards)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if got := ids(recs); got != fmt.Sprint(tc.want) {
				t.Errorf("%s: got %s, want %v", tc.name, got, tc.want)
			}
		}
		// The stream order differs, which is the point of the fixture.
		byStream, err := storage.RoomEventsByStream(ctx, db, room, 0, 100, 100, false)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(byStream); got != "[$a $b $e $c $d $e2 $f]" {
			t.Errorf("stream order: %s", got)
		}
	})
}
