package storage_test

import (
	"context"
	"fmt"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// A long run of deltas is flattened every MaxSnapshotChain steps and still reads back as the
// state it describes, including removals.
func TestSnapshotChainFlattening(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		want := map[storage.StateKey]storage.EventNID{}
		var snaps []storage.SnapshotNID
		var wantAt []map[storage.StateKey]storage.EventNID
		err := db.WithTx(ctx, func(tx *storage.Tx) error {
			room, err := tx.InsertRoom(ctx, "!r:example.org", "12")
			if err != nil {
				return err
			}
			var ev storage.EventNID
			for i := range 20 {
				id := fmt.Sprintf("$e%d", i)
				if ev, err = tx.InsertEvent(ctx, storage.EventRecord{Room: room, EventID: id, Type: "t", Sender: "@a:example.org", JSON: []byte("{}")}); err != nil {
					return err
				}
			}
			snap := storage.SnapshotNID(0)
			for i := range 3*storage.MaxSnapshotChain + 5 {
				k := storage.StateKey{Type: storage.TypeNID(i%3 + 1), StateKey: storage.StateKeyNID(i%7 + 1)}
				e := storage.StateEntry{Key: k, Event: ev - storage.EventNID(i%11)}
				if i%13 == 12 {
					e.Event = 0 // removal
					delete(want, k)
				} else {
					want[k] = e.Event
				}
				if snap, err = tx.CreateSnapshot(ctx, room, snap, []storage.StateEntry{e}); err != nil {
					return err
				}
				snaps = append(snaps, snap)
				cp := map[storage.StateKey]storage.EventNID{}
				for k, v := range want {
					cp[k] = v
				}
				wantAt = append(wantAt, cp)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for i, snap := range snaps {
			got, err := storage.SnapshotState(ctx, db, snap)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(wantAt[i]) {
				t.Fatalf("snapshot %d: %d entries, want %d", i, len(got), len(wantAt[i]))
			}
			for _, e := range got {
				if wantAt[i][e.Key] != e.Event {
					t.Fatalf("snapshot %d: %v -> %d, want %d", i, e.Key, e.Event, wantAt[i][e.Key])
				}
			}
		}
		var longest int64
		if err := db.QueryRow(ctx, `SELECT MAX(chain_len) FROM state_snapshots`).Scan(&longest); err != nil {
			t.Fatal(err)
		}
		if longest > storage.MaxSnapshotChain {
			t.Errorf("chain of %d deltas", longest)
		}
		last := snaps[len(snaps)-1]
		k := storage.StateKey{Type: 1, StateKey: 1}
		got, err := storage.SnapshotLookup(ctx, db, last, []storage.StateKey{k, {Type: 99, StateKey: 99}})
		if err != nil {
			t.Fatal(err)
		}
		if ev, ok := wantAt[len(snaps)-1][k]; ok != (len(got) == 1) || (ok && got[0].Event != ev) {
			t.Errorf("lookup %v, want %v %v", got, ev, ok)
		}
	})
}

// The auth chain follows auth edges transitively, and the auth difference keeps what not every
// set's chain holds.
func TestAuthChain(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		var n [6]storage.EventNID
		err := db.WithTx(ctx, func(tx *storage.Tx) error {
			room, err := tx.InsertRoom(ctx, "!r:example.org", "12")
			if err != nil {
				return err
			}
			for i := range n {
				if n[i], err = tx.InsertEvent(ctx, storage.EventRecord{Room: room, EventID: fmt.Sprint("$", i), Type: "t", Sender: "@a:b", JSON: []byte("{}")}); err != nil {
					return err
				}
			}
			// 0 <- 1 <- 2, 0 <- 3, {1,3} <- 4, 5 alone
			for _, e := range [][2]int{{1, 0}, {2, 1}, {3, 0}, {4, 1}, {4, 3}} {
				if err := tx.InsertAuthEdges(ctx, n[e[0]], []storage.EventNID{n[e[1]]}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		chain, err := storage.AuthChain(ctx, db, []storage.EventNID{n[2], n[4]})
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(sorted(chain)); got != fmt.Sprint([]storage.EventNID{n[0], n[1], n[3]}) {
			t.Errorf("auth chain %s", got)
		}
		diff, err := storage.AuthDifference(ctx, db, [][]storage.EventNID{{n[2]}, {n[3]}})
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(sorted(diff)); got != fmt.Sprint([]storage.EventNID{n[1]}) {
			t.Errorf("auth difference %s", got)
		}
	})
}

func sorted(s []storage.EventNID) []storage.EventNID {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}
