package sytest

import (
	"net/url"
	"testing"
	"time"
)

// What a client of the second server sees through /sync of rooms on the first: an invite that
// came over federation (the second server is not in the room yet), which leaves rooms.invite
// once the user joined; and, after the join, the history of the room from before it.

func TestFederationInviteInSync(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		hs1, hs2, _ := roomFedPair(t, dbURL)
		alice := Register(t, hs1, "alice", "correct horse battery")
		bob := Register(t, hs2, "bob", "correct horse battery")
		dave := Register(t, hs2, "dave", "correct horse battery")

		start := doSync(t, bob, "")
		room := alice.Must(t, 200, "POST", "/_matrix/client/v3/createRoom", map[string]any{
			"preset": "private_chat", "name": "remote invite",
		}).Str("room_id")
		say(t, alice, room, "said before the invite")
		alice.Must(t, 200, "POST", roomPath(room, "/invite"), map[string]any{"user_id": bob.UserID})

		// The long-poll wakes for the invite.
		inc := doSync(t, bob, "?timeout=20000&since="+url.QueryEscape(start.NextBatch))
		if _, ok := inc.Rooms.Invite[room]; !ok {
			inc = doSync(t, bob, "?timeout=20000&since="+url.QueryEscape(start.NextBatch))
		}
		inv, ok := inc.Rooms.Invite[room]
		if !ok {
			t.Fatalf("the remote invite is not in bob's incremental sync: %+v", inc.Rooms)
		}
		checkInviteState := func(evs []syncEvent) {
			t.Helper()
			if !hasState(evs, "m.room.name", "") || !hasState(evs, "m.room.create", "") {
				t.Errorf("invite_state lacks the room's name or create event: %+v", evs)
			}
			found := false
			for _, e := range evs {
				if e.Type == "m.room.member" && e.StateKey != nil && *e.StateKey == bob.UserID && e.Sender == alice.UserID {
					found = true
				}
				if e.EventID != "" || e.RoomID != "" {
					t.Errorf("invite_state holds more than stripped events: %+v", e)
				}
			}
			if !found {
				t.Errorf("invite_state lacks bob's invite: %+v", evs)
			}
		}
		checkInviteState(inv.InviteState.Events)
		initial := doSync(t, bob, "")
		if inv, ok := initial.Rooms.Invite[room]; !ok {
			t.Fatalf("the remote invite is not in bob's initial sync: %+v", initial.Rooms)
		} else {
			checkInviteState(inv.InviteState.Events)
		}
		if _, ok := doSync(t, dave, "").Rooms.Invite[room]; ok {
			t.Fatal("dave sees bob's invite")
		}

		bob.Must(t, 200, "POST", roomPath(room, "/join"), map[string]any{})
		after := doSync(t, bob, "?since="+url.QueryEscape(inc.NextBatch))
		if _, ok := after.Rooms.Invite[room]; ok {
			t.Errorf("the invite is still in rooms.invite after the join")
		}
		if _, ok := after.Rooms.Join[room]; !ok {
			t.Errorf("the room is not in rooms.join after the join: %+v", after.Rooms)
		}
		again := doSync(t, bob, "")
		if _, ok := again.Rooms.Invite[room]; ok {
			t.Errorf("the invite is still in an initial sync after the join")
		}
		if _, ok := again.Rooms.Join[room]; !ok {
			t.Errorf("the room is not in rooms.join of an initial sync")
		}

		// A rejected remote invite leaves rooms.invite too.
		other := alice.Must(t, 200, "POST", "/_matrix/client/v3/createRoom", map[string]any{
			"preset": "private_chat", "invite": []string{dave.UserID},
		}).Str("room_id")
		eventually(t, 30*time.Second, "dave's invite in /sync", func() bool {
			_, ok := doSync(t, dave, "").Rooms.Invite[other]
			return ok
		})
		dave.Must(t, 200, "POST", roomPath(other, "/leave"), map[string]any{})
		if _, ok := doSync(t, dave, "").Rooms.Invite[other]; ok {
			t.Errorf("a rejected remote invite is still in rooms.invite")
		}
	})
}
