package roomserver

import (
	"context"
	"encoding/json"
	"testing"

	"myelin/roomserver/event"
	"myelin/storage"
	"myelin/storage/storagetest"
)

func TestVisibleEvents(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newTestServer(t, db)
		const dave = "@dave:example.org"
		setVisibility := func(roomID, v string) {
			t.Helper()
			if _, err := s.SendEvent(ctx, event.Proto{Type: typeHistoryVisibility, StateKey: new(string), Sender: alice, RoomID: roomID,
				Content: mustJSON(map[string]any{"history_visibility": v})}); err != nil {
				t.Fatal(err)
			}
		}
		msg := func(roomID string) *event.Event {
			t.Helper()
			ev, err := sendMessage(ctx, s, roomID, alice, "m")
			if err != nil {
				t.Fatal(err)
			}
			return ev
		}
		must := func(_ *event.Event, err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		visible := func(user string, evs ...*event.Event) []bool {
			t.Helper()
			got, err := s.VisibleEvents(ctx, user, evs)
			if err != nil {
				t.Fatal(err)
			}
			out := make([]bool, len(evs))
			for i, ev := range evs {
				for _, g := range got {
					out[i] = out[i] || g.ID() == ev.ID()
				}
			}
			return out
		}
		check := func(name string, got []bool, want ...bool) {
			t.Helper()
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("%s: visibility %v, want %v", name, got, want)
					return
				}
			}
		}

		// shared: bob joins later and sees earlier history; carol, who never joined, does not.
		shared := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat})
		before := msg(shared)
		must(s.Join(ctx, shared, bob))
		during := msg(shared)
		leave, err := s.Leave(ctx, shared, bob, "")
		must(leave, err)
		after := msg(shared)
		check("shared/bob", visible(bob, before, during, leave, after), true, true, true, false)
		check("shared/carol", visible(carol, before, during, after), false, false, false)

		// joined: only from the join on, and nothing after leaving.
		joined := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat})
		setVisibility(joined, VisibilityJoined)
		before = msg(joined)
		join, err := s.Join(ctx, joined, bob)
		must(join, err)
		during = msg(joined)
		leave, err = s.Leave(ctx, joined, bob, "")
		must(leave, err)
		after = msg(joined)
		check("joined/bob", visible(bob, before, join, during, leave, after), false, true, true, true, false)

		// invited: from the invite on.
		invited := mustCreate(t, s, CreateRoomRequest{Preset: PresetPrivateChat})
		setVisibility(invited, VisibilityInvited)
		before = msg(invited)
		inv, err := s.Invite(ctx, invited, alice, bob, "", false)
		must(inv, err)
		during = msg(invited)
		check("invited/bob before joining", visible(bob, before, inv, during), false, true, true)
		check("invited/carol", visible(carol, during), false)

		// world_readable: anyone, and the change away from it is visible to anyone too.
		world := mustCreate(t, s, CreateRoomRequest{Preset: PresetPublicChat})
		setVisibility(world, VisibilityWorldReadable)
		open := msg(world)
		hv, err := s.SendEvent(ctx, event.Proto{Type: typeHistoryVisibility, StateKey: new(string), Sender: alice, RoomID: world,
			Content: json.RawMessage(`{"history_visibility":"joined"}`)})
		must(hv, err)
		closed := msg(world)
		check("world_readable/dave", visible(dave, open, hv, closed), true, true, false)
	})
}
