package roomserver

import (
	"context"
	"testing"

	"myelin/roomserver/event"
	"myelin/storage"
	"myelin/storage/storagetest"
)

// The requester's membership at each visible event (unsigned.membership): the membership in the
// state after the event, "leave" before any, found by the same lookups as visibility.
func TestVisibleEventsWithMembership(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newTestServer(t, db)
		must := func(ev *event.Event, err error) *event.Event {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			return ev
		}
		msg := func(roomID string) *event.Event {
			t.Helper()
			return must(sendMessage(ctx, s, roomID, alice, "m"))
		}
		room := mustCreate(t, s, CreateRoomRequest{Preset: PresetPrivateChat}) // shared history
		before := msg(room)
		invite := must(s.Invite(ctx, room, alice, bob, "", false))
		invited := msg(room)
		join := must(s.Join(ctx, room, bob))
		joined := msg(room)
		leave := must(s.Leave(ctx, room, bob, ""))
		gone := msg(room) // shared history, bob gone: not visible to him
		hv := must(s.SendEvent(ctx, event.Proto{Type: typeHistoryVisibility, StateKey: new(string), Sender: alice, RoomID: room,
			Content: mustJSON(map[string]any{"history_visibility": VisibilityWorldReadable})}))
		ban := must(s.Ban(ctx, room, alice, bob, ""))
		banned := msg(room)

		evs := []*event.Event{before, invite, invited, join, joined, leave, gone, hv, ban, banned}
		for _, tc := range []struct {
			user string
			want []string // "" for an event the user may not see
		}{
			{bob, []string{"leave", "invite", "invite", "join", "join", "leave", "", "leave", "ban", "ban"}},
			{alice, []string{"join", "join", "join", "join", "join", "join", "join", "join", "join", "join"}},
			{carol, []string{"", "", "", "", "", "", "", "leave", "leave", "leave"}},
		} {
			visible, at, err := s.VisibleEventsWithMembership(ctx, tc.user, evs)
			if err != nil {
				t.Fatal(err)
			}
			plain, err := s.VisibleEvents(ctx, tc.user, evs)
			if err != nil {
				t.Fatal(err)
			}
			if len(plain) != len(visible) {
				t.Fatalf("%s: %d events visible with membership, %d without", tc.user, len(visible), len(plain))
			}
			shown := map[string]bool{}
			for _, ev := range visible {
				shown[ev.ID()] = true
			}
			for i, ev := range evs {
				if got := at[ev.ID()]; got != tc.want[i] || shown[ev.ID()] != (tc.want[i] != "") {
					t.Errorf("%s, event %d (%s): visible %v, membership %q; want %q", tc.user, i, ev.Type(), shown[ev.ID()], got, tc.want[i])
				}
			}
		}
	})
}
