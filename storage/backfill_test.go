package storage_test

import (
	"context"
	"fmt"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// Backfilled events take negative stream positions: topological pagination from the start
// reaches them, before live events of the same depth, and /sync's stream windows (positions
// above a token) never do.
func TestBackfillPositionsAndTopology(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		var room storage.RoomNID
		var outlier storage.EventNID
		err := db.WithTx(ctx, func(tx *storage.Tx) error {
			var err error
			if room, err = tx.InsertRoom(ctx, "!r:example.org", "12"); err != nil {
				return err
			}
			insert := func(id string, depth, pos int64) (storage.EventNID, error) {
				return tx.InsertEvent(ctx, storage.EventRecord{Room: room, EventID: id, Type: "t", Sender: "@a:example.org",
					Depth: depth, StreamPos: pos, Outlier: pos == 0, JSON: []byte("{}")})
			}
			// The join at depth 5 is live; history before it arrives later.
			if _, err := insert("$join", 5, 1); err != nil {
				return err
			}
			if _, err := insert("$live4", 4, 2); err != nil { // a live event at a backfilled depth
				return err
			}
			if outlier, err = insert("$state", 2, 0); err != nil {
				return err
			}
			lowest, err := tx.ReserveBackfillPositions(ctx, 3)
			if err != nil {
				return err
			}
			if lowest != -3 {
				return fmt.Errorf("first reservation of 3: lowest %d, want -3", lowest)
			}
			for i, e := range []struct {
				id    string
				depth int64
			}{{"$h1", 1}, {"$h3", 3}, {"$h4", 4}} {
				if _, err := insert(e.id, e.depth, lowest+int64(i)); err != nil {
					return err
				}
			}
			// The next batch goes below the first.
			if lowest, err = tx.ReserveBackfillPositions(ctx, 2); err != nil || lowest != -5 {
				return fmt.Errorf("second reservation of 2: lowest %d (%v), want -5", lowest, err)
			}
			// An outlier the join brought takes its place in history.
			return tx.PlaceOnTimeline(ctx, outlier, lowest, 0, 0)
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
		recs, err := storage.RoomEventsByTopology(ctx, db, room, storage.TopoStart, storage.TopoEnd, 100, 100, false)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ids(recs), "[$h1 $state $h3 $h4 $live4 $join]"; got != want {
			t.Errorf("topological order: %s, want %s", got, want)
		}
		// Backwards from a /sync token (stream only) reaches the history too.
		recs, err = storage.RoomEventsByTopology(ctx, db, room, storage.TopoStart, storage.TopoPos{Stream: 2}, 100, 100, true)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ids(recs), "[$join $live4 $h4 $h3 $state $h1]"; got != want {
			t.Errorf("backwards from a stream token: %s, want %s", got, want)
		}
		// A stream window above position 0 (what /sync reads) holds only live events.
		recs, err = storage.RoomEventsByStream(ctx, db, room, 0, 100, 100, false)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ids(recs), "[$join $live4]"; got != want {
			t.Errorf("stream window: %s, want %s", got, want)
		}
		on, err := storage.TimelineAmong(ctx, db, []string{"$state", "$h1", "$nowhere"})
		if err != nil {
			t.Fatal(err)
		}
		if !on["$state"] || !on["$h1"] || on["$nowhere"] {
			t.Errorf("TimelineAmong: %v", on)
		}
	})
}

func TestBackfillExtremities(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		var room storage.RoomNID
		err := db.WithTx(ctx, func(tx *storage.Tx) error {
			var err error
			if room, err = tx.InsertRoom(ctx, "!r:example.org", "12"); err != nil {
				return err
			}
			if err := tx.AddBackfillExtremities(ctx, room, []storage.BackfillExtremity{
				{EventID: "$a", Depth: 10}, {EventID: "$b", Depth: 20}, {EventID: "$c", Depth: 30},
			}); err != nil {
				return err
			}
			// Recorded again from another citing event: it keeps its depth.
			if err := tx.AddBackfillExtremities(ctx, room, []storage.BackfillExtremity{{EventID: "$a", Depth: 99}}); err != nil {
				return err
			}
			if err := tx.MarkBackfillFailed(ctx, room, []string{"$c"}, 1000); err != nil {
				return err
			}
			return tx.SetRoomJoinedVia(ctx, room, "first.example")
		})
		if err != nil {
			t.Fatal(err)
		}
		list := func(minDepth, maxDepth, failedBefore int64, limit int) string {
			t.Helper()
			exts, err := storage.BackfillExtremities(ctx, db, room, minDepth, maxDepth, failedBefore, limit)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, e := range exts {
				out = append(out, fmt.Sprintf("%s@%d", e.EventID, e.Depth))
			}
			return fmt.Sprint(out)
		}
		for _, tc := range []struct {
			name                       string
			minDepth, maxDepth, failed int64
			limit                      int
			want                       string
		}{
			{"all, deepest first", 0, 100, 2000, 10, "[$c@30 $b@20 $a@10]"},
			{"a failure is left alone until later", 0, 100, 500, 10, "[$b@20 $a@10]"},
			{"depth window", 15, 25, 2000, 10, "[$b@20]"},
			{"limit", 0, 100, 2000, 1, "[$c@30]"},
		} {
			if got := list(tc.minDepth, tc.maxDepth, tc.failed, tc.limit); got != tc.want {
				t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
			}
		}
		if err := db.WithTx(ctx, func(tx *storage.Tx) error {
			if err := tx.RemoveBackfillExtremities(ctx, room, []string{"$a", "$c"}); err != nil {
				return err
			}
			return tx.SetRoomJoinedVia(ctx, room, "second.example")
		}); err != nil {
			t.Fatal(err)
		}
		if got := list(0, 100, 2000, 10); got != "[$b@20]" {
			t.Errorf("after removing: %s", got)
		}
		via, err := storage.RoomJoinedVia(ctx, db, room)
		if err != nil || via != "second.example" {
			t.Errorf("joined via: %q, %v", via, err)
		}
		if via, err := storage.RoomJoinedVia(ctx, db, room+1); err != nil || via != "" {
			t.Errorf("joined via of an unknown room: %q, %v", via, err)
		}
	})
}
