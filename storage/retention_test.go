package storage_test

import (
	"context"
	"slices"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// Which events retention may purge, and what purging one leaves: no body, a stub, the DAG edges.
func TestRetentionStorage(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		nids := map[string]storage.EventNID{}
		var room, other storage.RoomNID
		err := db.WithTx(ctx, func(tx *storage.Tx) error {
			var err error
			if room, err = tx.InsertRoom(ctx, "!r:x", "12"); err != nil {
				return err
			}
			if other, err = tx.InsertRoom(ctx, "!o:x", "12"); err != nil {
				return err
			}
			empty := ""
			typeNID, err := tx.AssignTypeNID(ctx, "m.room.retention")
			if err != nil {
				return err
			}
			keyNID, err := tx.AssignStateKeyNID(ctx, empty)
			if err != nil {
				return err
			}
			for i, e := range []struct {
				id                       string
				state                    bool
				stream, ts               int64
				outlier, rejected, extrm bool
			}{
				{id: "$policy", state: true, stream: 1, ts: 10},
				{id: "$old1", stream: 2, ts: 20},
				{id: "$old2", stream: 3, ts: 30},
				{id: "$outlier", ts: 31, outlier: true},
				{id: "$rejected", ts: 32, rejected: true},
				{id: "$backfilled", stream: -5, ts: 33},
				{id: "$extremity", stream: 4, ts: 40, extrm: true},
				{id: "$new", stream: 5, ts: 1000, extrm: true},
			} {
				rec := storage.EventRecord{Room: room, EventID: e.id, Type: "m.room.message", Sender: "@a:x", Depth: int64(i + 1),
					StreamPos: e.stream, OriginServerTS: e.ts, Outlier: e.outlier, Rejected: e.rejected,
					JSON: []byte(`{"content":{"body":"secret ` + e.id + `"}}`)}
				if e.state {
					rec.Type, rec.StateKey, rec.TypeNID, rec.StateKeyNID = "m.room.retention", &empty, typeNID, keyNID
				}
				nid, err := tx.InsertEvent(ctx, rec)
				if err != nil {
					return err
				}
				nids[e.id] = nid
				if i > 0 {
					if err := tx.InsertAuthEdges(ctx, nid, []storage.EventNID{nids["$policy"]}); err != nil {
						return err
					}
					if err := tx.InsertPrevEdges(ctx, nid, []string{"$prev-of" + e.id}); err != nil {
						return err
					}
				}
				if e.extrm {
					if err := tx.UpdateForwardExtremities(ctx, room, nid, nil); err != nil {
						return err
					}
				}
			}
			if err := tx.UpdateCurrentState(ctx, room, []storage.StateEntry{
				{Key: storage.StateKey{Type: typeNID, StateKey: keyNID}, Event: nids["$policy"]}}); err != nil {
				return err
			}
			_, err = tx.InsertEvent(ctx, storage.EventRecord{Room: other, EventID: "$elsewhere", Type: "m.room.message",
				Sender: "@a:x", Depth: 1, StreamPos: 6, OriginServerTS: 1, JSON: []byte(`{}`)})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}

		// Rooms: with a policy only, or all.
		withPolicy, err := storage.RetentionRooms(ctx, db, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(withPolicy) != 1 || withPolicy[0].NID != room || withPolicy[0].Policy != nids["$policy"] || withPolicy[0].Version != "12" {
			t.Errorf("rooms with a policy: %+v", withPolicy)
		}
		all, err := storage.RetentionRooms(ctx, db, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 2 || all[1].NID != other || all[1].Policy != 0 {
			t.Errorf("all rooms: %+v", all)
		}

		// Candidates: timeline non-state events sent before the cutoff, not extremities.
		ids := func(recs []storage.EventRecord) []string {
			var out []string
			for _, r := range recs {
				out = append(out, r.EventID)
			}
			return out
		}
		got, err := storage.ExpiredEvents(ctx, db, room, 500, 10)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"$old1", "$old2", "$backfilled"}; !slices.Equal(ids(got), want) {
			t.Fatalf("expired events = %v, want %v", ids(got), want)
		}
		if got, _ := storage.ExpiredEvents(ctx, db, room, 500, 2); len(got) != 2 {
			t.Errorf("limit not applied: %v", ids(got))
		}
		if got, _ := storage.ExpiredEvents(ctx, db, room, 25, 10); !slices.Equal(ids(got), []string{"$old1"}) {
			t.Errorf("cutoff 25: %v", ids(got))
		}

		err = db.WithTx(ctx, func(tx *storage.Tx) error {
			for _, id := range []string{"$old1", "$old2"} {
				if err := tx.PurgeEvent(ctx, room, nids[id], []byte(`{"content":{},"stub":"`+id+`"}`), 99); err != nil {
					return err
				}
			}
			// Again: changes nothing.
			return tx.PurgeEvent(ctx, room, nids["$old1"], []byte(`{"other":1}`), 100)
		})
		if err != nil {
			t.Fatal(err)
		}
		// Purged events: no body to read, no longer candidates, their stub for federation.
		recs, err := storage.EventsByID(ctx, db, []string{"$old1", "$old2", "$new"})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			var raw []byte
			if err := db.QueryRow(ctx, `SELECT event_json FROM events WHERE event_nid = $1`, r.NID).Scan(&raw); err != nil {
				t.Fatal(err)
			}
			if purged := r.EventID != "$new"; purged != (r.JSON == nil) || purged != (raw == nil) {
				t.Errorf("%s: body %s, raw %s", r.EventID, r.JSON, raw)
			}
		}
		if got, _ := storage.ExpiredEvents(ctx, db, room, 500, 10); !slices.Equal(ids(got), []string{"$backfilled"}) {
			t.Errorf("after purge, expired = %v", ids(got))
		}
		stubbed, err := storage.WithPurgedStubs(ctx, db, recs)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range stubbed {
			want := `{"content":{},"stub":"` + r.EventID + `"}`
			if r.EventID == "$new" {
				want = `{"content":{"body":"secret $new"}}`
			}
			if string(r.JSON) != want {
				t.Errorf("%s served to federation as %s, want %s", r.EventID, r.JSON, want)
			}
		}
		// The DAG is intact: edges of purged events, and the auth chain through them.
		prevs, err := storage.PrevEventIDs(ctx, db, []storage.EventNID{nids["$old1"]})
		if err != nil || !slices.Equal(prevs[nids["$old1"]], []string{"$prev-of$old1"}) {
			t.Errorf("prev edges of a purged event: %v %v", prevs, err)
		}
		chain, err := storage.AuthChain(ctx, db, []storage.EventNID{nids["$old2"]})
		if err != nil || !slices.Equal(chain, []storage.EventNID{nids["$policy"]}) {
			t.Errorf("auth chain of a purged event: %v %v", chain, err)
		}
		// Current state untouched.
		policy, err := storage.CurrentStateEvent(ctx, db, room, "m.room.retention", "")
		if err != nil || policy.JSON == nil {
			t.Errorf("current state lost its policy: %v", err)
		}
	})
}
