package storage_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// searchFixture stores events with text in two rooms and indexes them.
type searchFixture struct {
	rooms [2]storage.RoomNID
	nids  map[string]storage.EventNID // by text label
}

func newSearchFixture(t *testing.T, db *storage.DB) searchFixture {
	t.Helper()
	ctx := context.Background()
	f := searchFixture{nids: map[string]storage.EventNID{}}
	texts := []struct {
		label, key, text string
		room             int
	}{
		{"hello", "content.body", "hello world", 0},
		{"long", "content.body", "a long message that mentions hello once among many other words here", 0},
		{"twice", "content.body", "Hello hello", 0},
		{"name", "content.name", "Hello Room", 0},
		{"other", "content.body", "hello from elsewhere", 1},
		{"unrelated", "content.body", "nothing to see", 0},
		{"accents", "content.body", "Grüße aus Zürich", 0},
	}
	err := db.WithTx(ctx, func(tx *storage.Tx) error {
		for i := range f.rooms {
			var err error
			if f.rooms[i], err = tx.InsertRoom(ctx, fmt.Sprintf("!search%d:example.org", i), "12"); err != nil {
				return err
			}
		}
		for i, x := range texts {
			room := f.rooms[x.room]
			nid, err := tx.InsertEvent(ctx, storage.EventRecord{Room: room, EventID: "$" + x.label, Type: "m.room.message",
				Sender: "@a:example.org", StreamPos: int64(i + 1), JSON: []byte("{}")})
			if err != nil {
				return err
			}
			f.nids[x.label] = nid
			if err := tx.IndexSearch(ctx, storage.SearchEntry{Event: nid, Room: room, Key: x.key, StreamPos: int64(i + 1), Value: x.text}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func hitLabels(f searchFixture, hits []storage.SearchHit) []string {
	byNID := map[storage.EventNID]string{}
	for l, n := range f.nids {
		byNID[n] = l
	}
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = byNID[h.Event]
	}
	return out
}

func TestSearchIndex(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		f := newSearchFixture(t, db)
		both := []storage.SearchRoom{{Room: f.rooms[0]}, {Room: f.rooms[1]}}
		q := storage.SearchQuery{Words: storage.SearchWords("HEL"), Rooms: both, Limit: 100}

		recent, err := storage.Search(ctx, db, q, true)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(hitLabels(f, recent)); got != "[other name twice long hello]" {
			t.Errorf("recent order = %s", got)
		}
		ranked, err := storage.Search(ctx, db, q, false)
		if err != nil {
			t.Fatal(err)
		}
		labels := hitLabels(f, ranked)
		if len(labels) != 5 || labels[0] != "twice" || labels[len(labels)-1] != "long" {
			t.Errorf("ranked order = %v (ranks %v): want the short message with the word twice first and the long one last", labels, ranked)
		}
		for i := 1; i < len(ranked); i++ {
			if ranked[i].Rank > ranked[i-1].Rank {
				t.Errorf("ranks not descending: %v", ranked)
			}
		}
		if n, err := storage.SearchCount(ctx, db, q); err != nil || n != 5 {
			t.Errorf("count = %d, %v; want 5", n, err)
		}

		// Pagination below a stream position, a room bound, keys, and several words.
		page := q
		page.Before = 3
		if got, _ := storage.Search(ctx, db, page, true); fmt.Sprint(hitLabels(f, got)) != "[long hello]" {
			t.Errorf("page before 3 = %v", hitLabels(f, got))
		}
		bounded := q
		bounded.Rooms = []storage.SearchRoom{{Room: f.rooms[0], Until: 2}}
		if got, _ := storage.Search(ctx, db, bounded, true); fmt.Sprint(hitLabels(f, got)) != "[long hello]" {
			t.Errorf("room bounded at 2 = %v", hitLabels(f, got))
		}
		names := q
		names.Keys = []string{"content.name"}
		if got, _ := storage.Search(ctx, db, names, true); fmt.Sprint(hitLabels(f, got)) != "[name]" {
			t.Errorf("content.name only = %v", hitLabels(f, got))
		}
		words := q
		words.Words = storage.SearchWords("hello wor")
		if got, _ := storage.Search(ctx, db, words, true); fmt.Sprint(hitLabels(f, got)) != "[long hello]" {
			t.Errorf("two words = %v", hitLabels(f, got))
		}
		// "AND"/"OR" are words, not operators, and a quote does not break the query.
		odd := q
		odd.Words = storage.SearchWords("and OR \"not near \u0301 *")
		if len(odd.Words) != 4 {
			t.Errorf("words of an odd query: %q", odd.Words)
		}
		if _, err := storage.Search(ctx, db, odd, true); err != nil {
			t.Errorf("query of operator words: %v", err)
		}

		// Unindexing (a redaction) removes the event.
		err = db.WithTx(ctx, func(tx *storage.Tx) error { return tx.UnindexSearch(ctx, f.nids["hello"]) })
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := storage.Search(ctx, db, q, true); fmt.Sprint(hitLabels(f, got)) != "[other name twice long]" {
			t.Errorf("after unindexing = %v", hitLabels(f, got))
		}
	})
}

// The user directory reads memberships joined to member_names; this measures it in a public
// room of a few thousand members, the case that decided against a separate directory table.
func TestDirectoryCandidates(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		const members = 3000
		var big, private storage.RoomNID
		err := db.WithTx(ctx, func(tx *storage.Tx) error {
			var err error
			if big, err = tx.InsertRoom(ctx, "!big:example.org", "12"); err != nil {
				return err
			}
			if private, err = tx.InsertRoom(ctx, "!private:example.org", "12"); err != nil {
				return err
			}
			member, err := tx.AssignTypeNID(ctx, "m.room.member")
			if err != nil {
				return err
			}
			join := func(room storage.RoomNID, user, name string, pos int64) error {
				sk, err := tx.AssignStateKeyNID(ctx, user)
				if err != nil {
					return err
				}
				nid, err := tx.InsertEvent(ctx, storage.EventRecord{Room: room, EventID: fmt.Sprintf("$m%d", pos), Type: "m.room.member",
					StateKey: &user, TypeNID: member, StateKeyNID: sk, Sender: user, StreamPos: pos, JSON: []byte("{}")})
				if err != nil {
					return err
				}
				if err := tx.IndexMemberName(ctx, nid, name, ""); err != nil {
					return err
				}
				return tx.SetMembership(ctx, storage.Membership{Room: room, UserID: user, Membership: "join", Event: nid, StreamPos: pos})
			}
			for i := range members {
				if err := join(big, fmt.Sprintf("@user%d:example.org", i), fmt.Sprintf("Person Number%d", i), int64(i+1)); err != nil {
					return err
				}
			}
			if err := join(private, "@hidden:example.org", "Zed Hidden", members+1); err != nil {
				return err
			}
			if err := join(private, "@user0:example.org", "Person Number0", members+2); err != nil {
				return err
			}
			// The big room is public by its current join rules.
			jr, err := tx.AssignTypeNID(ctx, "m.room.join_rules")
			if err != nil {
				return err
			}
			empty := ""
			sk, err := tx.AssignStateKeyNID(ctx, "")
			if err != nil {
				return err
			}
			nid, err := tx.InsertEvent(ctx, storage.EventRecord{Room: big, EventID: "$jr", Type: "m.room.join_rules", StateKey: &empty,
				TypeNID: jr, StateKeyNID: sk, Sender: "@user0:example.org", StreamPos: members + 3, JSON: []byte("{}")})
			if err != nil {
				return err
			}
			if err := tx.IndexPublicRoomState(ctx, nid); err != nil {
				return err
			}
			return tx.UpdateCurrentState(ctx, big, []storage.StateEntry{{Key: storage.StateKey{Type: jr, StateKey: sk}, Event: nid}})
		})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		got, err := storage.DirectoryCandidates(ctx, db, "@stranger:example.org", "number123", "number123", 1000)
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("directory search in a public room of %d members: %d candidates in %v", members, len(got), took)
		// number123 and number1230..number1239
		if len(got) != 11 || got[10].UserID != "@user123:example.org" || got[10].Shared {
			t.Errorf("candidates = %+v", got)
		}
		// A user only in a private room is found by those who share it, not by a stranger.
		if got, _ := storage.DirectoryCandidates(ctx, db, "@stranger:example.org", "zed", "zed", 10); len(got) != 0 {
			t.Errorf("stranger found %+v", got)
		}
		got, err = storage.DirectoryCandidates(ctx, db, "@user0:example.org", "zed", "zed", 10)
		if err != nil || len(got) != 1 || got[0].UserID != "@hidden:example.org" || !got[0].Shared || got[0].DisplayName != "Zed Hidden" {
			t.Errorf("room mate search = %+v, %v", got, err)
		}
		// Matching a word inside the name, not only its start.
		if got, _ := storage.DirectoryCandidates(ctx, db, "@user0:example.org", "hid", "hid", 10); len(got) != 1 {
			t.Errorf("second word prefix = %+v", got)
		}
		if got, _ := storage.DirectoryCandidates(ctx, db, "@user0:example.org", "idden", "idden", 10); len(got) != 1 {
			t.Errorf("user id substring (then matched fully by the caller) = %+v", got)
		}
		err = db.WithTx(ctx, func(tx *storage.Tx) error {
			for _, lp := range []string{"active", "deactivated"} {
				if err := tx.InsertAccount(ctx, storage.Account{Localpart: lp, CreatedTS: 1}); err != nil {
					return err
				}
			}
			_, err := tx.DeactivateAccount(ctx, "deactivated", 2)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if gone, err := storage.DeactivatedAmong(ctx, db, []string{"active", "deactivated", "unknown"}); err != nil || fmt.Sprint(gone) != "map[deactivated:true]" {
			t.Errorf("deactivated among = %v, %v", gone, err)
		}
		if n, err := storage.CountMutualRooms(ctx, db, "@user0:example.org", "@hidden:example.org"); err != nil || n != 1 {
			t.Errorf("mutual rooms = %d, %v", n, err)
		}
		rooms, err := storage.MutualRooms(ctx, db, "@user0:example.org", "@user1:example.org", "", 10)
		if err != nil || fmt.Sprint(rooms) != "[!big:example.org]" {
			t.Errorf("mutual rooms = %v, %v", rooms, err)
		}
	})
}
