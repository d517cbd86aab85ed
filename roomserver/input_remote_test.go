package roomserver

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"myelin/keys"
	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
	"myelin/storage/storagetest"
)

// remoteServer builds events as another server would, by hand.
type remoteServer struct {
	t    *testing.T
	name string
	key  keys.SigningKey
	v    event.RoomVersion
	room string
}

func (r remoteServer) build(typ string, stateKey *string, sender string, content string, prev []*event.Event, authEvs ...*event.Event) *event.Event {
	r.t.Helper()
	p := event.Proto{Type: typ, StateKey: stateKey, Sender: sender, RoomID: r.room, Content: json.RawMessage(content), OriginServerTS: 1}
	for _, e := range prev {
		p.PrevEvents = append(p.PrevEvents, e.ID())
		p.Depth = max(p.Depth, e.Depth()+1)
	}
	for _, e := range authEvs {
		p.AuthEvents = append(p.AuthEvents, e.ID())
	}
	ev, err := event.Build(p, r.v, r.name, r.key)
	if err != nil {
		r.t.Fatal(err)
	}
	return ev
}

func TestInputRemote(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newTestServer(t, db)
		roomID := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat})
		key, _ := keys.GenerateSigningKey()
		remote := remoteServer{t: t, name: "remote.org", key: key, v: event.MustVersion("12"), room: roomID}
		const rbob, eve = "@bob:remote.org", "@eve:remote.org"
		state := func(typ, sk string) *event.Event {
			ev, err := s.CurrentStateEvent(ctx, roomID, typ, sk)
			if err != nil {
				t.Fatal(err)
			}
			return ev
		}
		input := func(name string, ev *event.Event, want InputStatus) {
			t.Helper()
			got, err := s.InputRemote(ctx, ev)
			if got != want {
				t.Fatalf("%s: status %d (%v), want %d", name, got, err, want)
			}
			if (want == Rejected) != errors.Is(err, ErrRejected) || (want != Rejected && err != nil) {
				t.Fatalf("%s: error %v", name, err)
			}
		}
		last := func() *event.Event {
			t.Helper()
			room, _ := storage.GetRoom(ctx, db, roomID)
			ext, _ := storage.ForwardExtremities(ctx, db, room.NID)
			if len(ext) != 1 {
				t.Fatalf("forward extremities %v", ext)
			}
			recs, _ := storage.EventsByNID(ctx, db, ext)
			ev, err := s.parse(recs[0])
			if err != nil {
				t.Fatal(err)
			}
			return ev
		}
		pl, jr := state(auth.TypePowerLevels, ""), state(auth.TypeJoinRules, "")
		sk := rbob
		join := remote.build(auth.TypeMember, &sk, rbob, `{"membership":"join"}`, []*event.Event{last()}, pl, jr)
		input("join", join, Accepted)
		input("join again", join, AlreadyKnown)
		if m, _ := s.Membership(ctx, roomID, rbob); m != "join" {
			t.Fatalf("remote bob is %q", m)
		}
		msg1 := remote.build("m.room.message", nil, rbob, `{"body":"1"}`, []*event.Event{join}, pl, join)
		input("message", msg1, Accepted)

		// A fork: two events citing the same parent, then one citing both.
		fa := remote.build("m.room.message", nil, rbob, `{"body":"a"}`, []*event.Event{msg1}, pl, join)
		fb := remote.build("m.room.message", nil, rbob, `{"body":"b"}`, []*event.Event{msg1}, pl, join)
		input("fork a", fa, Accepted)
		input("fork b", fb, Accepted)
		merge := remote.build("m.room.message", nil, rbob, `{"body":"merge"}`, []*event.Event{fa, fb}, pl, join)
		input("merge", merge, Accepted)
		if got := last(); got.ID() != merge.ID() {
			t.Errorf("extremity %s after merge", got.ID())
		}
		local, err := sendMessage(ctx, s, roomID, alice, "after the merge")
		if err != nil {
			t.Fatal(err)
		}
		if p := local.PrevEventIDs(); len(p) != 1 || p[0] != merge.ID() {
			t.Errorf("local event cites %v", p)
		}

		// Not joined: rejected, stored as such, never an extremity.
		intruder := remote.build("m.room.message", nil, eve, `{"body":"hi"}`, []*event.Event{local}, pl)
		input("non-member message", intruder, Rejected)
		rec, err := storage.EventByID(ctx, db, intruder.ID())
		if err != nil || !rec.Rejected || rec.StreamPos != 0 {
			t.Errorf("intruder stored as %+v, %v", rec, err)
		}
		// Auth events that are not the selection: rejected.
		badAuth := remote.build("m.room.message", nil, rbob, `{"body":"x"}`, []*event.Event{local}, pl, join, jr)
		input("bad auth events", badAuth, Rejected)

		// Missing events are named.
		ghost := remote.build("m.room.message", nil, rbob, `{"body":"?"}`, []*event.Event{intruder}, pl, join)
		ghostPrev := remote.build("m.room.message", nil, rbob, `{"body":"??"}`, []*event.Event{ghost}, pl, join)
		_, err = s.InputRemote(ctx, ghostPrev)
		var missing *MissingEventsError
		if !errors.As(err, &missing) || len(missing.Prev) != 1 || missing.Prev[0] != ghost.ID() {
			t.Errorf("missing prev: %v", err)
		}

		// Soft failure: bob is banned, then his server sends an event citing the state before.
		before := last()
		if _, err := s.Ban(ctx, roomID, alice, rbob, ""); err != nil {
			t.Fatal(err)
		}
		ban := last()
		late := remote.build("m.room.message", nil, rbob, `{"body":"late"}`, []*event.Event{before}, pl, join)
		input("after ban", late, SoftFailed)
		rec, err = storage.EventByID(ctx, db, late.ID())
		if err != nil || !rec.SoftFailed || rec.Rejected || rec.StreamPos != 0 {
			t.Errorf("soft-failed event stored as %+v, %v", rec, err)
		}
		if got := last(); got.ID() != ban.ID() {
			t.Errorf("soft-failed event became an extremity")
		}
		if m, _ := s.Membership(ctx, roomID, rbob); m != "ban" {
			t.Errorf("remote bob is %q", m)
		}
	})
}
