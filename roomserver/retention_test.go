package roomserver

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"myelin/keys"
	"myelin/roomserver/event"
	"myelin/storage"
	"myelin/storage/storagetest"
)

// testClock is a clock the test moves by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestRetentionLifetime(t *testing.T) {
	p := RetentionPolicy{DefaultMaxLifetime: 24 * time.Hour, MinLifetime: time.Hour, MaxLifetime: 30 * 24 * time.Hour}
	for _, tc := range []struct {
		name    string
		content string
		policy  RetentionPolicy
		want    time.Duration
	}{
		{"no event", "", p, 24 * time.Hour},
		{"no max_lifetime", `{"min_lifetime": 1000}`, p, 24 * time.Hour},
		{"within bounds", `{"max_lifetime": 7200000}`, p, 2 * time.Hour},
		{"below min clamped", `{"max_lifetime": 1000}`, p, time.Hour},
		{"above max clamped", `{"max_lifetime": 99999999999}`, p, 30 * 24 * time.Hour},
		{"not an integer", `{"max_lifetime": "soon"}`, p, 24 * time.Hour},
		{"fraction", `{"max_lifetime": 1.5}`, p, 24 * time.Hour},
		{"zero", `{"max_lifetime": 0}`, p, 24 * time.Hour},
		{"negative", `{"max_lifetime": -5}`, p, 24 * time.Hour},
		{"unbounded server, forever default", "", RetentionPolicy{}, 0},
		{"unbounded server, room asks", `{"max_lifetime": 1000}`, RetentionPolicy{}, time.Second},
		{"overflowing, unbounded", `{"max_lifetime": 9223372036854775807}`, RetentionPolicy{}, 0},
		{"overflowing, bounded", `{"max_lifetime": 9223372036854775807}`, p, 30 * 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.policy.Lifetime(json.RawMessage(tc.content)); got != tc.want {
				t.Errorf("Lifetime(%s) = %v, want %v", tc.content, got, tc.want)
			}
		})
	}
}

// countWhere counts the rows of a table that match a condition on one argument.
func countWhere(t *testing.T, db *storage.DB, query string, arg any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), query, arg).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// A purge pass over a room: the old messages lose their bodies and everything derived from
// them, keep their place in the DAG and a verifiable stub for federation; state, the latest
// event and newer messages stay; the room keeps working.
func TestPurgeExpired(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		key, err := keys.GenerateSigningKey()
		if err != nil {
			t.Fatal(err)
		}
		clock := &testClock{now: time.UnixMilli(1_700_000_000_000)}
		s := New(db, "example.org", key, Options{Now: clock.Now})
		policy := RetentionPolicy{DefaultMaxLifetime: time.Hour}

		roomID := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat, Name: "Orchard", Topic: "fruit"})
		if _, err := s.Join(ctx, roomID, bob); err != nil {
			t.Fatal(err)
		}
		send := func(typ, sender string, content map[string]any) *event.Event {
			t.Helper()
			ev, err := s.SendEvent(ctx, event.Proto{Type: typ, Sender: sender, RoomID: roomID, Content: mustJSON(content)})
			if err != nil {
				t.Fatalf("send %s: %v", typ, err)
			}
			return ev
		}
		root := send("m.room.message", alice, map[string]any{"msgtype": "m.text", "body": "secret apple"})
		reaction := send("m.reaction", bob, map[string]any{"m.relates_to": map[string]any{
			"rel_type": "m.annotation", "event_id": root.ID(), "key": "🍎"}})
		reply := send("m.room.message", bob, map[string]any{"msgtype": "m.text", "body": "secret pear",
			"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root.ID()}})
		// State sent in the same hour stays: state is never purged.
		topicKey := ""
		topic, err := s.SendEvent(ctx, event.Proto{Type: "m.room.topic", StateKey: &topicKey, Sender: alice, RoomID: roomID,
			Content: mustJSON(map[string]any{"topic": "old fruit"})})
		if err != nil {
			t.Fatal(err)
		}
		oldLast := send("m.room.message", alice, map[string]any{"msgtype": "m.text", "body": "secret plum"})
		old := []*event.Event{root, reaction, reply, oldLast}

		// A push action of bob's for the root, as the notification worker would record it.
		err = db.WithTx(ctx, func(tx *storage.Tx) error {
			rec, err := storage.EventByID(ctx, tx, root.ID())
			if err != nil {
				return err
			}
			return tx.InsertPushActions(ctx, []storage.PushAction{{UserID: bob, RoomNID: rec.Room, RoomID: roomID, EventID: root.ID(),
				StreamPos: rec.StreamPos, ThreadID: "main", Notify: true, Actions: json.RawMessage(`["notify"]`), TS: 1}})
		})
		if err != nil {
			t.Fatal(err)
		}

		clock.advance(2 * time.Hour)
		fresh := send("m.room.message", bob, map[string]any{"msgtype": "m.text", "body": "fresh banana"})
		stateBefore, err := s.CurrentState(ctx, roomID)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SearchIndexed(ctx); err != nil {
			t.Fatal(err)
		}
		oldNIDs := map[string]storage.EventNID{}
		for _, ev := range old {
			rec, err := storage.EventByID(ctx, db, ev.ID())
			if err != nil {
				t.Fatal(err)
			}
			oldNIDs[ev.ID()] = rec.NID
		}
		if n := countWhere(t, db, `SELECT COUNT(*) FROM event_relations WHERE parent_id = $1`, root.ID()); n != 2 {
			t.Fatalf("before purge: %d relations of the root, want 2", n)
		}
		if n := countWhere(t, db, `SELECT COUNT(*) FROM event_search WHERE event_nid = $1`, oldNIDs[root.ID()]); n != 1 {
			t.Fatalf("before purge: the root is not in the search index")
		}
		if n := countWhere(t, db, `SELECT COUNT(*) FROM thread_roots WHERE root_id = $1`, root.ID()); n != 1 {
			t.Fatalf("before purge: the thread is not listed")
		}

		n, err := s.PurgeExpired(ctx, policy)
		if err != nil {
			t.Fatal(err)
		}
		// The old messages, not the membership, create, name or topic events (state).
		if n != len(old) {
			t.Fatalf("purged %d events, want %d", n, len(old))
		}
		v, err := s.RoomVersion(ctx, roomID)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range old {
			if body := rawBody(t, db, ev.ID()); body != nil {
				t.Errorf("%s: body still stored: %s", ev.ID(), body)
			}
			if _, err := s.Event(ctx, ev.ID()); !errors.Is(err, ErrNotFound) {
				t.Errorf("Event(%s) = %v, want ErrNotFound", ev.ID(), err)
			}
			// Federation gets the redacted form, which is the same event (same id, whose
			// reference hash covers the redacted form) without content.
			stub, err := s.FederationEvent(ctx, ev.ID())
			if err != nil {
				t.Fatalf("FederationEvent(%s): %v", ev.ID(), err)
			}
			if stub.ID() != ev.ID() || stub.Depth() != ev.Depth() || len(contentOf(t, stub)) != 0 {
				t.Errorf("stub of %s: id %s depth %d content %s", ev.ID(), stub.ID(), stub.Depth(), stub.Content())
			}
			if _, err := event.Parse(stub.JSON(), v); err != nil {
				t.Errorf("stub of %s does not parse: %v", ev.ID(), err)
			}
			if !slices.Equal(stub.PrevEventIDs(), ev.PrevEventIDs()) || !slices.Equal(stub.AuthEventIDs(), ev.AuthEventIDs()) {
				t.Errorf("stub of %s lost its references", ev.ID())
			}
			nid := oldNIDs[ev.ID()]
			for _, q := range []string{
				`SELECT COUNT(*) FROM event_search WHERE event_nid = $1`,
				`SELECT COUNT(*) FROM event_relations WHERE child_nid = $1`,
				`SELECT COUNT(*) FROM thread_roots WHERE latest_child_nid = $1`,
				`SELECT COUNT(*) FROM event_auth_edges WHERE event_nid = $1`,
			} {
				got := countWhere(t, db, q, nid)
				want := 0
				if q == `SELECT COUNT(*) FROM event_auth_edges WHERE event_nid = $1` {
					want = 3 // create, power levels, sender's membership: the DAG keeps them
				}
				if got != want {
					t.Errorf("%s: %s = %d, want %d", ev.ID(), q, got, want)
				}
			}
			if db.Dialect() == storage.SQLite {
				if got := countWhere(t, db, `SELECT COUNT(*) FROM event_search_fts WHERE docid = $1`, nid); got != 0 {
					t.Errorf("%s: still in event_search_fts", ev.ID())
				}
			}
		}
		if got := countWhere(t, db, `SELECT COUNT(*) FROM event_push_actions WHERE user_id = $1`, bob); got != 0 { // bob's only one
			t.Errorf("push actions of the purged root: %d", got)
		}
		if got := countWhere(t, db, `SELECT COUNT(*) FROM thread_roots WHERE root_id = $1`, root.ID()); got != 0 {
			t.Errorf("thread of the purged reply still listed")
		}
		// The newer message and the state are whole.
		if _, err := s.Event(ctx, fresh.ID()); err != nil {
			t.Errorf("fresh message: %v", err)
		}
		if countWhere(t, db, `SELECT COUNT(*) FROM event_search WHERE event_nid = (SELECT event_nid FROM events WHERE event_id = $1)`, fresh.ID()) != 1 {
			t.Errorf("fresh message left the search index")
		}
		if got, err := s.Event(ctx, topic.ID()); err != nil || contentOf(t, got)["topic"] != "old fruit" {
			t.Errorf("topic event: %v", err)
		}
		stateAfter, err := s.CurrentState(ctx, roomID)
		if err != nil {
			t.Fatal(err)
		}
		if len(stateAfter) != len(stateBefore) {
			t.Errorf("current state has %d events, had %d", len(stateAfter), len(stateBefore))
		}
		// The DAG: the fresh message still cites the last old one, and a backfill walk from it
		// goes through the stubs down to the create event.
		prevs, err := storage.PrevEventIDs(ctx, db, []storage.EventNID{oldNIDs[oldLast.ID()]})
		if err != nil || len(prevs[oldNIDs[oldLast.ID()]]) != 1 || prevs[oldNIDs[oldLast.ID()]][0] != topic.ID() {
			t.Errorf("prev edges of the purged %s: %v %v", oldLast.ID(), prevs, err)
		}
		walked, err := s.Backfill(ctx, roomID, []string{fresh.ID()}, 100)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, ev := range walked {
			seen[ev.ID()] = true
		}
		for _, ev := range append(old, fresh, topic) {
			if !seen[ev.ID()] {
				t.Errorf("backfill from the fresh message misses %s", ev.ID())
			}
		}
		if walked[0].Type() != "m.room.create" {
			t.Errorf("backfill does not reach the create event: starts at %s", walked[0].Type())
		}

		// Idempotent: nothing more to purge.
		if n, err := s.PurgeExpired(ctx, policy); err != nil || n != 0 {
			t.Errorf("second pass purged %d (%v)", n, err)
		}
		// The room works: a newcomer joins, messages go on citing the fresh one.
		if _, err := s.Join(ctx, roomID, carol); err != nil {
			t.Fatalf("join after purge: %v", err)
		}
		after := send("m.room.message", carol, map[string]any{"msgtype": "m.text", "body": "hello"})
		if after.Depth() <= fresh.Depth() {
			t.Errorf("depth %d after %d", after.Depth(), fresh.Depth())
		}
	})
}

// What a pass leaves alone: a room's only old message while it is the latest event (a forward
// extremity), rooms without a policy when the server keeps history forever, and a room whose
// m.room.retention asks for less than the minimum (clamped up).
func TestPurgeExpiredPolicies(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		key, err := keys.GenerateSigningKey()
		if err != nil {
			t.Fatal(err)
		}
		clock := &testClock{now: time.UnixMilli(1_700_000_000_000)}
		s := New(db, "example.org", key, Options{Now: clock.Now})
		msg := func(roomID, body string) *event.Event {
			t.Helper()
			ev, err := sendMessage(ctx, s, roomID, alice, body)
			if err != nil {
				t.Fatal(err)
			}
			return ev
		}
		keepAll := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat})
		latest := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat})
		clamped := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat})
		empty := ""
		if _, err := s.SendEvent(ctx, event.Proto{Type: TypeRetention, StateKey: &empty, Sender: alice, RoomID: clamped,
			Content: mustJSON(map[string]any{"max_lifetime": 1000})}); err != nil {
			t.Fatal(err)
		}
		keptMsg := msg(keepAll, "kept")
		msg(keepAll, "the latest")
		onlyMsg := msg(latest, "latest")
		clampedOld := msg(clamped, "two hours old")
		clock.advance(time.Hour + 50*time.Minute)
		clampedYoung := msg(clamped, "ten minutes old")
		clock.advance(10 * time.Minute)
		clampedLast := msg(clamped, "now")

		// Server default forever: only the room with a policy is looked at; its 1 s is raised
		// to the 30 min minimum, so the 10-minute-old message stays.
		n, err := s.PurgeExpired(ctx, RetentionPolicy{MinLifetime: 30 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("purged %d, want 1", n)
		}
		for _, ev := range []*event.Event{keptMsg, onlyMsg, clampedYoung, clampedLast} {
			if _, err := s.Event(ctx, ev.ID()); err != nil {
				t.Errorf("%s purged: %v", ev.ID(), err)
			}
		}
		if _, err := s.Event(ctx, clampedOld.ID()); !errors.Is(err, ErrNotFound) {
			t.Errorf("the two-hour-old message of the clamped room was kept")
		}
		// A server default of one hour reaches every room, but never a latest event.
		clock.advance(time.Hour)
		if _, err := s.PurgeExpired(ctx, RetentionPolicy{DefaultMaxLifetime: time.Hour}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Event(ctx, keptMsg.ID()); !errors.Is(err, ErrNotFound) {
			t.Errorf("the default lifetime did not purge %s", keptMsg.ID())
		}
		if _, err := s.Event(ctx, onlyMsg.ID()); err != nil {
			t.Errorf("the latest event of a room was purged: %v", err)
		}
	})
}
