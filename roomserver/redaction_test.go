package roomserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"myelin/keys"
	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
	"myelin/storage/storagetest"
)

// rawBody reads an event's body straight from its row, past every layer that could hide it.
func rawBody(t *testing.T, db *storage.DB, eventID string) []byte {
	t.Helper()
	var body []byte
	if err := db.QueryRow(context.Background(), `SELECT event_json FROM events WHERE event_id = $1`, eventID).Scan(&body); err != nil {
		t.Fatalf("raw row of %s: %v", eventID, err)
	}
	return body
}

func contentOf(t *testing.T, ev *event.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(ev.Content(), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// checkRedacted checks that target is stored redacted, with secret gone from its row, and that
// RedactionsFor names redaction (any, if empty).
func checkRedacted(t *testing.T, s *Server, db *storage.DB, target, redaction, secret string) {
	t.Helper()
	ctx := context.Background()
	if raw := rawBody(t, db, target); bytes.Contains(raw, []byte(secret)) {
		t.Errorf("the row of %s still holds %q: %s", target, secret, raw)
	}
	ev, err := s.Event(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ev.JSON(), []byte(secret)) {
		t.Errorf("Event serves the unredacted %s", target)
	}
	by, err := s.RedactionsFor(ctx, []string{target, redaction})
	if err != nil {
		t.Fatal(err)
	}
	got := by[target]
	if got == nil || redaction != "" && got.ID() != redaction {
		t.Fatalf("RedactionsFor(%s) = %v, want %s", target, by, redaction)
	}
	redaction = got.ID()
	if by[redaction] != nil {
		t.Errorf("the redaction itself reported redacted")
	}
	hidden, err := s.UnappliedRedactions(ctx, []string{redaction})
	if err != nil || hidden[redaction] {
		t.Errorf("applied redaction reported unapplied: %v %v", hidden, err)
	}
}

func checkNotRedacted(t *testing.T, s *Server, db *storage.DB, target, redaction, secret string) {
	t.Helper()
	ctx := context.Background()
	if raw := rawBody(t, db, target); !bytes.Contains(raw, []byte(secret)) {
		t.Errorf("%s was pruned: %s", target, raw)
	}
	by, err := s.RedactionsFor(ctx, []string{target})
	if err != nil || by[target] != nil {
		t.Errorf("RedactionsFor(%s) = %v, %v; want none", target, by, err)
	}
	hidden, err := s.UnappliedRedactions(ctx, []string{redaction})
	if err != nil || !hidden[redaction] {
		t.Errorf("unapplied redaction %s not reported: %v %v", redaction, hidden, err)
	}
}

func TestRedactLocal(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		for _, version := range []string{"12", "10", "1"} {
			t.Run("v"+version, func(t *testing.T) {
				s := newTestServer(t, db)
				roomID := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat, RoomVersion: version})
				for _, u := range []string{bob, carol} {
					if _, err := s.Join(ctx, roomID, u); err != nil {
						t.Fatal(err)
					}
				}
				msg, err := sendMessage(ctx, s, roomID, bob, "the secret xyzzy")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.Redact(ctx, roomID, carol, msg.ID(), ""); !errors.Is(err, ErrNotAllowed) {
					t.Fatalf("carol (no power) redacts bob's message: %v", err)
				}
				if !bytes.Contains(rawBody(t, db, msg.ID()), []byte("xyzzy")) {
					t.Fatal("a refused redaction pruned the event")
				}
				red, err := s.Redact(ctx, roomID, bob, msg.ID(), "typo")
				if err != nil {
					t.Fatal(err)
				}
				checkRedacted(t, s, db, msg.ID(), red.ID(), "xyzzy")
				got, _ := s.Event(ctx, msg.ID())
				if got.ID() != msg.ID() || len(contentOf(t, got)) != 0 {
					t.Errorf("redacted event %s: %s", got.ID(), got.JSON())
				}
				var ts *int64
				if err := db.QueryRow(ctx, `SELECT redacted_ts FROM redactions WHERE redaction_event_id = $1 AND validated`, red.ID()).Scan(&ts); err != nil || ts == nil {
					t.Errorf("redaction row: %v %v", ts, err)
				}

				// A moderator redacts someone else's; a second redaction changes nothing more.
				msg2, _ := sendMessage(ctx, s, roomID, carol, "plugh")
				red2, err := s.Redact(ctx, roomID, alice, msg2.ID(), "")
				if err != nil {
					t.Fatal(err)
				}
				checkRedacted(t, s, db, msg2.ID(), red2.ID(), "plugh")
				if _, err := s.Redact(ctx, roomID, carol, msg2.ID(), ""); err != nil {
					t.Fatal(err)
				}
				checkRedacted(t, s, db, msg2.ID(), "", "plugh") // either redaction may be named
			})
		}
	})
}

func TestRedactStateEvent(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newTestServer(t, db)
		roomID := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat, Topic: "secret topic xyzzy", Name: "the room"})
		topic, err := s.CurrentStateEvent(ctx, roomID, "m.room.topic", "")
		if err != nil {
			t.Fatal(err)
		}
		// Warm the room's cache with the topic's body, as input would.
		s.mu.Lock()
		slot := s.rooms[roomID]
		s.mu.Unlock()
		ref := slot.state.state[event.StateTuple{Type: "m.room.topic"}]
		if err := s.load(ctx, ref); err != nil {
			t.Fatal(err)
		}
		red, err := s.Redact(ctx, roomID, alice, topic.ID(), "")
		if err != nil {
			t.Fatal(err)
		}
		checkRedacted(t, s, db, topic.ID(), red.ID(), "xyzzy")

		// The redacted event stays the current state, with its content stripped.
		now, err := s.CurrentStateEvent(ctx, roomID, "m.room.topic", "")
		if err != nil || now.ID() != topic.ID() || len(contentOf(t, now)) != 0 {
			t.Fatalf("topic after redaction: %v %v", now, err)
		}
		all, err := s.CurrentState(ctx, roomID)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range all {
			if bytes.Contains(ev.JSON(), []byte("xyzzy")) {
				t.Errorf("current state serves the unredacted %s", ev.ID())
			}
		}
		if st, err := s.StateAfter(ctx, red.ID()); err != nil {
			t.Fatal(err)
		} else {
			for _, ev := range st {
				if bytes.Contains(ev.JSON(), []byte("xyzzy")) {
					t.Errorf("StateAfter serves the unredacted %s", ev.ID())
				}
			}
		}
		// The input cache no longer holds the original.
		ref = slot.state.state[event.StateTuple{Type: "m.room.topic"}]
		if err := s.load(ctx, ref); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(ref.ev.JSON(), []byte("xyzzy")) {
			t.Errorf("the room's state cache keeps the unredacted topic")
		}

		// Redacting the power levels keeps what the auth rules need: alice still rules.
		pl, _ := s.CurrentStateEvent(ctx, roomID, auth.TypePowerLevels, "")
		if _, err := s.Redact(ctx, roomID, alice, pl.ID(), ""); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SendEvent(ctx, event.Proto{Type: "m.room.name", StateKey: new(string), Sender: alice, RoomID: roomID,
			Content: json.RawMessage(`{"name":"renamed"}`)}); err != nil {
			t.Errorf("alice after the power levels were redacted: %v", err)
		}
	})
}

func TestRedactRemote(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newTestServer(t, db)
		roomID := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat})
		v := event.MustVersion("12")
		key, _ := keys.GenerateSigningKey()
		remote := remoteServer{t: t, name: "remote.org", key: key, v: v, room: roomID}
		evilKey, _ := keys.GenerateSigningKey()
		evil := remoteServer{t: t, name: "evil.org", key: evilKey, v: v, room: roomID}
		const rbob, rcarol, mallory = "@bob:remote.org", "@carol:remote.org", "@mallory:evil.org"

		state := func(typ, sk string) *event.Event {
			t.Helper()
			ev, err := s.CurrentStateEvent(ctx, roomID, typ, sk)
			if err != nil {
				t.Fatal(err)
			}
			return ev
		}
		var lastEv *event.Event
		input := func(name string, ev *event.Event) {
			t.Helper()
			if got, err := s.InputRemote(ctx, ev); got != Accepted || err != nil {
				t.Fatalf("%s: %d %v", name, got, err)
			}
			lastEv = ev
		}
		pl, jr := state(auth.TypePowerLevels, ""), state(auth.TypeJoinRules, "")
		room, _ := storage.GetRoom(ctx, db, roomID)
		ext, _ := storage.ForwardExtremities(ctx, db, room.NID)
		recs, _ := storage.EventsByNID(ctx, db, ext)
		if len(recs) != 1 {
			t.Fatalf("extremities %v", ext)
		}
		lastEv, _ = s.parse(recs[0])
		join := func(srv remoteServer, user string) *event.Event {
			sk := user
			ev := srv.build(auth.TypeMember, &sk, user, `{"membership":"join"}`, []*event.Event{lastEv}, pl, jr)
			input("join "+user, ev)
			return ev
		}
		bobJoin, carolJoin, malloryJoin := join(remote, rbob), join(remote, rcarol), join(evil, mallory)
		redaction := func(srv remoteServer, sender string, senderJoin, target *event.Event, prev *event.Event) *event.Event {
			t.Helper()
			p := event.Proto{Type: auth.TypeRedaction, Sender: sender, RoomID: roomID, Content: json.RawMessage(`{}`),
				Redacts: target.ID(), PrevEvents: []string{prev.ID()}, Depth: prev.Depth() + 1, OriginServerTS: 2,
				AuthEvents: []string{pl.ID(), senderJoin.ID()}}
			ev, err := event.Build(p, v, srv.name, srv.key)
			if err != nil {
				t.Fatal(err)
			}
			return ev
		}

		// Same server as the sender of the target: applied.
		msg := remote.build("m.room.message", nil, rbob, `{"body":"xyzzy"}`, []*event.Event{lastEv}, pl, bobJoin)
		input("bob's message", msg)
		byCarol := redaction(remote, rcarol, carolJoin, msg, lastEv)
		input("carol's redaction", byCarol)
		checkRedacted(t, s, db, msg.ID(), byCarol.ID(), "xyzzy")

		// Another server, no power: accepted by the auth rules, stored, not applied.
		local, err := sendMessage(ctx, s, roomID, alice, "plugh")
		if err != nil {
			t.Fatal(err)
		}
		lastEv = local
		byMallory := redaction(evil, mallory, malloryJoin, local, lastEv)
		input("mallory's redaction", byMallory)
		checkNotRedacted(t, s, db, local.ID(), byMallory.ID(), "plugh")

		// The redaction before its target: recorded, applied when the target arrives.
		early := remote.build("m.room.message", nil, rbob, `{"body":"quux"}`, []*event.Event{lastEv}, pl, bobJoin)
		first := redaction(remote, rbob, bobJoin, early, lastEv)
		input("redaction first", first)
		if hidden, err := s.UnappliedRedactions(ctx, []string{first.ID()}); err != nil || !hidden[first.ID()] {
			t.Errorf("a redaction of an unknown event reported applied: %v %v", hidden, err)
		}
		input("then its target", early)
		checkRedacted(t, s, db, early.ID(), first.ID(), "quux")
	})
}

// TestCreateRoomSameMillisecond: in room version 12 the room id is the create event's hash, so
// two identical creations in one millisecond must still make two rooms.
func TestCreateRoomSameMillisecond(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		key, _ := keys.GenerateSigningKey()
		frozen := time.UnixMilli(1_700_000_000_000)
		s := New(db, "example.org", key, Options{Now: func() time.Time { return frozen }})
		seen := map[string]bool{}
		for i := range 3 {
			id, err := s.CreateRoom(ctx, CreateRoomRequest{Creator: alice, RoomVersion: "12"})
			if err != nil {
				t.Fatalf("room %d: %v", i, err)
			}
			if seen[id] {
				t.Fatalf("room id %s twice", id)
			}
			seen[id] = true
		}
		// A fresh server (nothing loaded) sees the collision in storage.
		s2 := New(db, "example.org", key, Options{Now: func() time.Time { return frozen }})
		id, err := s2.CreateRoom(ctx, CreateRoomRequest{Creator: alice, RoomVersion: "12"})
		if err != nil || seen[id] {
			t.Fatalf("after restart: %s %v", id, err)
		}
	})
}
