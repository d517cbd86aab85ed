package roomserver

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"

	"myelin/keys"
	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
	"myelin/storage/storagetest"
)

// buildAt is remoteServer.build with an origin_server_ts: state resolution orders concurrent
// changes by it, so a later change must say it is later.
func (r remoteServer) buildAt(ts int64, typ string, stateKey *string, sender string, content string, prev []*event.Event, authEvs ...*event.Event) *event.Event {
	r.t.Helper()
	p := event.Proto{Type: typ, StateKey: stateKey, Sender: sender, RoomID: r.room, Content: json.RawMessage(content), OriginServerTS: ts}
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

// fakeHistory is another server's side of RemoteHistory: the events it has, and the state
// before each event as ids. Federation's other methods are not used here.
type fakeHistory struct {
	Federation
	events      map[string]*event.Event
	stateBefore map[string][]string
	chain       []*event.Event // its timeline, oldest first, for Backfill
	calls       map[string]int
}

func (f *fakeHistory) Backfill(_ context.Context, _, _ string, _ event.RoomVersion, from []string, limit int) ([]*event.Event, error) {
	f.calls["backfill"]++
	var out []*event.Event
	for i := len(f.chain) - 1; i >= 0 && len(out) < limit; i-- {
		if len(out) > 0 || slices.Contains(from, f.chain[i].ID()) {
			out = append(out, f.chain[i])
		}
	}
	return out, nil
}

func (f *fakeHistory) StateIDs(_ context.Context, _, _, eventID string) ([]string, []string, error) {
	f.calls["state_ids"]++
	st, ok := f.stateBefore[eventID]
	if !ok {
		return nil, nil, fmt.Errorf("%w: no state at %s", ErrNotFound, eventID)
	}
	return st, nil, nil
}

func (f *fakeHistory) State(context.Context, string, string, string, event.RoomVersion) ([]*event.Event, []*event.Event, error) {
	return nil, nil, fmt.Errorf("%w: /state is not served", ErrNotFound)
}

func (f *fakeHistory) Event(_ context.Context, _, eventID string, _ event.RoomVersion) (*event.Event, error) {
	f.calls["event"]++
	if ev := f.events[eventID]; ev != nil {
		return ev, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrNotFound, eventID)
}

func (f *fakeHistory) EventAuth(context.Context, string, string, string, event.RoomVersion) ([]*event.Event, error) {
	return nil, nil
}

// A remote server's events reach this server past a gap too deep to fetch: the gap is bridged
// with the state at it (the event goes on the timeline, the state change in the gap reaches
// the current state), and backfill later fills the gap with history, in order, without
// touching the current state.
func TestInputRemoteAfterGapAndBackfill(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		hist := &fakeHistory{events: map[string]*event.Event{}, stateBefore: map[string][]string{}, calls: map[string]int{}}
		key, _ := keys.GenerateSigningKey()
		s := New(db, "example.org", key, Options{Federation: hist})
		roomID := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat})
		rkey, _ := keys.GenerateSigningKey()
		remote := remoteServer{t: t, name: "remote.org", key: rkey, v: event.MustVersion("12"), room: roomID}
		const rbob = "@bob:remote.org"
		current := func() map[string]*event.Event {
			evs, err := s.CurrentState(ctx, roomID)
			if err != nil {
				t.Fatal(err)
			}
			out := map[string]*event.Event{}
			for _, ev := range evs {
				out[ev.Type()+"|"+*ev.StateKey()] = ev
			}
			return out
		}
		st := current()
		pl, jr := st[auth.TypePowerLevels+"|"], st[auth.TypeJoinRules+"|"]
		room, _ := storage.GetRoom(ctx, db, roomID)
		extIDs, _ := storage.ForwardExtremities(ctx, db, room.NID)
		recs, _ := storage.EventsByNID(ctx, db, extIDs)
		head, _ := s.parse(recs[0])
		sk := rbob
		join := remote.build(auth.TypeMember, &sk, rbob, `{"membership":"join"}`, []*event.Event{head}, pl, jr)
		if status, err := s.InputRemote(ctx, join); status != Accepted {
			t.Fatalf("join: %d %v", status, err)
		}

		// On the remote side: 15 messages, the 8th a change of bob's display name, then a
		// message this server receives alone.
		stateIDs := func(member *event.Event) []string {
			var out []string
			for k, ev := range current() {
				if k == auth.TypeMember+"|"+rbob {
					ev = member
				}
				out = append(out, ev.ID())
			}
			return out
		}
		var chain []*event.Event
		prev, member := join, join
		for i := 1; i <= 15; i++ {
			var ev *event.Event
			if i == 8 {
				ev = remote.buildAt(int64(i+1), auth.TypeMember, &sk, rbob, `{"membership":"join","displayname":"Bob in the gap"}`, []*event.Event{prev}, pl, join, jr)
			} else {
				ev = remote.buildAt(int64(i+1), "m.room.message", nil, rbob, fmt.Sprintf(`{"body":"gap %d"}`, i), []*event.Event{prev}, pl, member)
			}
			hist.events[ev.ID()] = ev
			hist.stateBefore[ev.ID()] = stateIDs(member)
			if i == 8 {
				member = ev
			}
			chain = append(chain, ev)
			prev = ev
		}
		hist.chain = append([]*event.Event{join}, chain...)
		last := remote.buildAt(100, "m.room.message", nil, rbob, `{"body":"after the gap"}`, []*event.Event{prev}, pl, member)

		if _, err := s.InputRemote(ctx, last); err == nil {
			t.Fatal("an event past a gap was accepted without its prev events")
		}
		status, err := s.InputRemoteAfterGap(ctx, "remote.org", last)
		if status != Accepted || err != nil {
			t.Fatalf("after the gap: %d %v", status, err)
		}
		rec, err := storage.EventByID(ctx, db, last.ID())
		if err != nil || rec.StreamPos <= 0 || rec.Outlier {
			t.Fatalf("the event past the gap is stored as %+v, %v", rec, err)
		}
		if got := current()[auth.TypeMember+"|"+rbob]; got.ID() != member.ID() {
			t.Errorf("bob's membership in the current state is %s, want the change made in the gap %s", got.ID(), member.ID())
		}
		if hist.calls["state_ids"] != 1 {
			t.Errorf("state_ids asked %d times, want once", hist.calls["state_ids"])
		}
		exts, err := storage.BackfillExtremities(ctx, db, room.NID, math.MinInt64, math.MaxInt64, math.MaxInt64, 10)
		if err != nil || len(exts) != 1 || exts[0].EventID != prev.ID() || exts[0].Depth != last.Depth() {
			t.Fatalf("backfill extremities after the gap: %+v, %v", exts, err)
		}
		stateBefore := current()

		// Backfill fills the gap: bounded by its limit, then the rest on the next call.
		added, err := s.BackfillBefore(ctx, roomID, math.MinInt64, math.MaxInt64, 10)
		if err != nil || added != 10 {
			t.Fatalf("first backfill: %d, %v", added, err)
		}
		added, err = s.BackfillBefore(ctx, roomID, math.MinInt64, math.MaxInt64, 10)
		if err != nil || added != 5 {
			t.Fatalf("second backfill: %d, %v", added, err)
		}
		if added, err := s.BackfillBefore(ctx, roomID, math.MinInt64, math.MaxInt64, 10); err != nil || added != 0 {
			t.Fatalf("nothing is left to backfill, yet: %d, %v", added, err)
		}
		if calls := hist.calls["backfill"]; calls != 2 {
			t.Errorf("/backfill asked %d times, want 2", calls)
		}
		timeline, err := storage.RoomEventsByTopology(ctx, db, room.NID, storage.TopoStart, storage.TopoEnd, math.MaxInt64, 100, false)
		if err != nil {
			t.Fatal(err)
		}
		var got, want []string
		for _, r := range timeline {
			if r.Depth > join.Depth() {
				got = append(got, r.EventID)
			}
			if r.Depth > join.Depth() && r.Depth < last.Depth() && r.StreamPos >= 0 {
				t.Errorf("backfilled event %s at stream position %d", r.EventID, r.StreamPos)
			}
		}
		for _, ev := range append(chain, last) {
			want = append(want, ev.ID())
		}
		if !slices.Equal(got, want) {
			t.Errorf("timeline after backfill:\n got %v\nwant %v", got, want)
		}
		after := current()
		for k, ev := range stateBefore {
			if after[k].ID() != ev.ID() {
				t.Errorf("backfill changed the current state at %s", k)
			}
		}
		// The history is readable under the room's history visibility (shared).
		evs := append(slices.Clone(chain), last)
		visible, err := s.VisibleEvents(ctx, alice, evs)
		if err != nil || len(visible) != len(evs) {
			t.Errorf("alice sees %d of %d events of the gap (%v)", len(visible), len(evs), err)
		}
	})
}

// A remote state event that forks the room is resolved against the current state before it is
// stored: state resolution must read it from memory.
func TestInputRemoteStateFork(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newTestServer(t, db)
		roomID := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat})
		key, _ := keys.GenerateSigningKey()
		remote := remoteServer{t: t, name: "remote.org", key: key, v: event.MustVersion("12"), room: roomID}
		const rbob = "@bob:remote.org"
		pl, _ := s.CurrentStateEvent(ctx, roomID, auth.TypePowerLevels, "")
		jr, _ := s.CurrentStateEvent(ctx, roomID, auth.TypeJoinRules, "")
		head, err := sendMessage(ctx, s, roomID, alice, "before")
		if err != nil {
			t.Fatal(err)
		}
		sk := rbob
		join := remote.build(auth.TypeMember, &sk, rbob, `{"membership":"join"}`, []*event.Event{head}, pl, jr)
		if status, err := s.InputRemote(ctx, join); status != Accepted {
			t.Fatalf("join: %d %v", status, err)
		}
		// alice talks on while bob's server, not having seen it, changes bob's name.
		if _, err := sendMessage(ctx, s, roomID, alice, "meanwhile"); err != nil {
			t.Fatal(err)
		}
		rename := remote.buildAt(2, auth.TypeMember, &sk, rbob, `{"membership":"join","displayname":"B"}`, []*event.Event{join}, pl, join, jr)
		if status, err := s.InputRemote(ctx, rename); status != Accepted || err != nil {
			t.Fatalf("a forking state event: %d %v", status, err)
		}
		got, err := s.CurrentStateEvent(ctx, roomID, auth.TypeMember, rbob)
		if err != nil || got.ID() != rename.ID() {
			t.Errorf("bob's membership after the fork: %v %v", got, err)
		}
		room, _ := storage.GetRoom(ctx, db, roomID)
		if ext, _ := storage.ForwardExtremities(ctx, db, room.NID); len(ext) != 2 {
			t.Errorf("forward extremities after the fork: %v", ext)
		}
	})
}
