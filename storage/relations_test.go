package storage_test

import (
	"context"
	"fmt"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// The relations index: pages in topological order with recursion, counts, edits in the order
// the spec gives them, and thread roots that follow their latest reply through redactions.
func TestRelationsIndex(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		var room, other storage.RoomNID
		nids := map[string]storage.EventNID{}
		// id, parent, rel_type, sender, depth, stream, ts
		rels := []struct {
			id, parent, relType, sender string
			depth, stream, ts           int64
		}{
			{"$edit1", "$root", "m.replace", "@a:x", 2, 2, 100},
			{"$t1", "$root", "m.thread", "@b:x", 3, 3, 90},
			{"$edit2", "$root", "m.replace", "@a:x", 4, 4, 100},
			{"$t2", "$root", "m.thread", "@a:x", 5, 5, 95},
			{"$react", "$t1", "m.annotation", "@c:x", 6, 6, 96},
			{"$elsewhere", "$root", "m.reference", "@a:x", 7, 7, 97}, // in another room
			{"$outlier", "$root", "m.thread", "@c:x", 8, 0, 98},
		}
		err := db.WithTx(ctx, func(tx *storage.Tx) error {
			var err error
			if room, err = tx.InsertRoom(ctx, "!r:x", "12"); err != nil {
				return err
			}
			if other, err = tx.InsertRoom(ctx, "!o:x", "12"); err != nil {
				return err
			}
			insert := func(r storage.RoomNID, id string, depth, stream int64) (storage.EventNID, error) {
				return tx.InsertEvent(ctx, storage.EventRecord{Room: r, EventID: id, Type: "m.room.message", Sender: "@a:x",
					Depth: depth, StreamPos: stream, Outlier: stream == 0, JSON: []byte("{}")})
			}
			if nids["$root"], err = insert(room, "$root", 1, 1); err != nil {
				return err
			}
			for _, r := range rels {
				inRoom := room
				if r.id == "$elsewhere" {
					inRoom = other
				}
				nid, err := insert(inRoom, r.id, r.depth, r.stream)
				if err != nil {
					return err
				}
				nids[r.id] = nid
				rel := storage.Relation{ChildNID: nid, ChildID: r.id, Room: inRoom, ParentID: r.parent, RelType: r.relType,
					ChildType: "m.room.message", Sender: r.sender, Depth: r.depth, StreamPos: r.stream, OriginServerTS: r.ts}
				if r.relType == "m.annotation" {
					rel.Key, rel.ChildType = "👍", "m.reaction"
				}
				if err := tx.IndexRelation(ctx, rel); err != nil {
					return err
				}
				// Indexing twice changes nothing.
				if err := tx.IndexRelation(ctx, rel); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		ids := func(rs []storage.Relation) string {
			var out []string
			for _, r := range rs {
				out = append(out, r.ChildID)
			}
			return fmt.Sprint(out)
		}
		page := func(q storage.RelationQuery) string {
			t.Helper()
			if q.Limit == 0 {
				q.Limit = 100
			}
			if q.Depth == 0 {
				q.Depth = 1
			}
			q.Room, q.Parent, q.To, q.MaxStream = room, "$root", storage.TopoEnd, 100
			got, err := storage.RelationPage(ctx, db, q)
			if err != nil {
				t.Fatal(err)
			}
			return ids(got)
		}
		for _, tc := range []struct {
			name string
			q    storage.RelationQuery
			want string
		}{
			{"all, newest first", storage.RelationQuery{Backwards: true}, "[$t2 $edit2 $t1 $edit1]"},
			{"forwards", storage.RelationQuery{}, "[$edit1 $t1 $edit2 $t2]"},
			{"limit", storage.RelationQuery{Backwards: true, Limit: 1}, "[$t2]"},
			{"after a place", storage.RelationQuery{From: storage.TopoPos{Topological: true, Depth: 3, Stream: 3}}, "[$edit2 $t2]"},
			{"rel_type", storage.RelationQuery{RelType: "m.thread"}, "[$t1 $t2]"},
			{"child type", storage.RelationQuery{ChildType: "m.reaction"}, "[]"},
			{"recursive", storage.RelationQuery{Depth: 3}, "[$edit1 $t1 $edit2 $t2 $react]"},
			{"recursive through threads only", storage.RelationQuery{Depth: 3, RelType: "m.thread"}, "[$t1 $t2]"},
		} {
			if got := page(tc.q); got != tc.want {
				t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
			}
		}

		counts, err := storage.CountRelations(ctx, db, []string{"$root", "$t1", "$none"}, []string{"m.replace", "m.thread", "m.reference"}, "@a:x")
		if err != nil {
			t.Fatal(err)
		}
		if c := counts["$root"]; c["m.replace"].Count != 2 || c["m.thread"] != (storage.RelationCount{Count: 2, BySender: 1}) || c["m.reference"].Count != 0 || len(counts) != 1 {
			t.Errorf("counts: %+v", counts)
		}
		edits, err := storage.RelationsOfType(ctx, db, []string{"$root"}, "m.replace")
		if err != nil {
			t.Fatal(err)
		}
		// Equal timestamps: the larger event id is the more recent.
		if got := ids(edits); got != "[$edit2 $edit1]" {
			t.Errorf("edits: %s", got)
		}
		if dup, err := storage.HasAnnotation(ctx, db, room, "$t1", "m.reaction", "@c:x", "👍"); err != nil || !dup {
			t.Errorf("HasAnnotation: %v %v", dup, err)
		}
		if dup, _ := storage.HasAnnotation(ctx, db, room, "$t1", "m.reaction", "@c:x", "👎"); dup {
			t.Errorf("HasAnnotation with another key")
		}
		related, err := storage.ParentsRelatedBy(ctx, db, []string{"$root", "$t1"}, []string{"m.thread"}, []string{"@b:x"})
		if err != nil || !related["$root"] || related["$t1"] {
			t.Errorf("ParentsRelatedBy: %v %v", related, err)
		}

		threads := func(participant string) string {
			t.Helper()
			got, err := storage.ThreadRoots(ctx, db, room, participant, storage.TopoEnd, 10)
			if err != nil {
				t.Fatal(err)
			}
			return fmt.Sprint(got)
		}
		if got := threads(""); got != "[{$root 5 5}]" {
			t.Errorf("threads: %s", got)
		}
		if got := threads("@c:x"); got != "[]" {
			t.Errorf("threads of @c:x (whose reply is an outlier): %s", got)
		}
		if got := threads("@b:x"); got != "[{$root 5 5}]" {
			t.Errorf("threads of @b:x: %s", got)
		}
		latest, err := storage.LatestThreadReplies(ctx, db, []string{"$root"})
		if err != nil || latest["$root"] != nids["$t2"] {
			t.Errorf("latest reply: %v %v", latest, err)
		}

		// Redactions: the latest reply goes, the thread falls back; the last goes, no thread.
		unindex := func(id string) {
			t.Helper()
			if err := db.WithTx(ctx, func(tx *storage.Tx) error { return tx.UnindexRelation(ctx, nids[id]) }); err != nil {
				t.Fatal(err)
			}
		}
		unindex("$t2")
		unindex("$t2") // again: nothing left to forget
		if got := threads(""); got != "[{$root 3 3}]" {
			t.Errorf("threads after redacting the latest reply: %s", got)
		}
		unindex("$t1")
		if got := threads(""); got != "[]" {
			t.Errorf("threads after redacting every reply: %s", got)
		}
		if got := page(storage.RelationQuery{}); got != "[$edit1 $edit2]" {
			t.Errorf("relations after the redactions: %s", got)
		}
	})
}
