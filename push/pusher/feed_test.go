package pusher

import (
	"encoding/json"
	"io"
	"slices"
	"testing"

	"github.com/sirupsen/logrus"

	"myelin/keys"
	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
	"myelin/storage/storagetest"
)

// The feed's announcements continue the position only without a gap; an announcement without a
// room (an invite kept apart from room events) is a gap, and old ones are dropped.
func TestFeedTakesOnlyWhatContinuesThePosition(t *testing.T) {
	w := New(Config{}, discardLog())
	key, err := keys.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	ev, err := event.Build(event.Proto{Type: "m.room.message", Sender: alice, RoomID: "!r:x.test",
		Content: json.RawMessage(`{}`), Depth: 1, OriginServerTS: 1}, event.MustVersion("11"), "x.test", key)
	if err != nil {
		t.Fatal(err)
	}
	announce := func(pos int64, room storage.RoomNID) {
		w.OnNewEvent(roomserver.NewEvent{RoomID: "!r:x.test", Event: ev, StreamPos: pos, RoomNID: room})
	}
	positions := func(items []feedItem) (out []int64) {
		for _, it := range items {
			if it.ev == nil || it.room != 1 {
				t.Fatalf("item %+v", it)
			}
			out = append(out, it.pos)
		}
		return out
	}
	announce(3, 1)
	announce(5, 1)
	announce(6, 1)
	announce(8, 0) // an invite to another server's room
	announce(9, 1)
	if items, ok := w.announced(3); ok || len(items) != 0 {
		t.Fatalf("4 was not announced, yet %v %v", ok, positions(items))
	}
	if len(w.feed) != 4 {
		t.Fatalf("3 was not dropped: %d kept", len(w.feed))
	}
	items, ok := w.announced(4)
	if !ok || !slices.Equal(positions(items), []int64{5, 6}) {
		t.Fatalf("after 4: %v %v", ok, positions(items))
	}
	announce(7, 1)
	if items, ok := w.announced(6); !ok || !slices.Equal(positions(items), []int64{7}) {
		t.Fatalf("after 6: %v %v", ok, positions(items))
	}
	if items, ok := w.announced(7); ok || len(items) != 0 {
		t.Fatalf("the invite at 8 is not a gap: %v", positions(items))
	}
	// The database read passes over 8 and reads 9: both are dropped with the next call.
	if items, ok := w.announced(9); ok || len(items) != 0 || len(w.feed) != 0 {
		t.Fatalf("after 9: %v %v, %d kept", ok, positions(items), len(w.feed))
	}
	for p := range int64(maxFeed + 10) {
		announce(p+10, 1)
	}
	if len(w.feed) != maxFeed {
		t.Fatalf("%d kept, more than %d", len(w.feed), maxFeed)
	}
}

// A worker evaluating the room server's announcements finds the actions a worker reading the
// database finds, also when announcements are missing.
func TestFeedMatchesDatabase(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		e := newPendingEnv(t, db)
		fed, read := e.worker(), e.worker()
		unsubscribe := e.rooms.Subscribe(fed.OnNewEvent)
		defer unsubscribe()
		var missing int64
		for i, body := range []string{"one", "two, bob", "three", "four", "five"} {
			sender := alice
			if i%2 == 1 {
				sender = carol
			}
			id := e.send(sender, body)
			if i == 2 {
				e.redact(alice, id)
				missing = e.position() // this announcement is lost
			}
		}
		if _, err := e.rooms.SendEvent(e.ctx, event.Proto{RoomID: e.room, Type: "m.room.topic", StateKey: new(string),
			Sender: alice, Content: json.RawMessage(`{"topic":"t"}`)}); err != nil {
			t.Fatal(err)
		}
		e.send(bob, "six")
		fed.feedMu.Lock()
		if _, ok := fed.feed[missing]; !ok {
			t.Fatalf("the redaction at %d was not announced", missing)
		}
		delete(fed.feed, missing)
		fed.feedMu.Unlock()

		if _, ok := fed.feed[fed.Position()+1]; !ok {
			t.Fatal("the first event after the worker's position was not announced")
		}
		for _, w := range []*Worker{fed, read} {
			for w.Position() < e.position() {
				e.step(w, false)
			}
		}
		if _, ok := fed.announced(fed.Position()); ok || len(fed.feed) != 0 {
			t.Fatalf("announcements left: %d", len(fed.feed))
		}
		for _, u := range []string{alice, bob, carol} {
			got, _ := fed.pendingOf(u)
			want, _ := read.pendingOf(u)
			if !slices.EqualFunc(got, want, samePushAction) || len(want) == 0 {
				t.Fatalf("%s: from the feed %+v, from the database %+v", u, got, want)
			}
		}
	})
}

func samePushAction(a, b storage.PushAction) bool {
	return a.EventID == b.EventID && a.StreamPos == b.StreamPos && a.RoomID == b.RoomID && a.ThreadID == b.ThreadID &&
		a.Notify == b.Notify && a.Highlight == b.Highlight && string(a.Actions) == string(b.Actions)
}

func discardLog() *logrus.Entry {
	log := logrus.New()
	log.SetOutput(io.Discard)
	return logrus.NewEntry(log)
}
