package sytest

import (
	"encoding/json"
	"testing"
)

// unsigned.membership (Client-Server API v1.11): every event served to a client carries the
// requesting user's membership "at the point of the event, including any changes caused by the
// event", and "leave" before they had any membership. Bob is invited, joins and leaves, with
// messages in between; then alice makes the room world readable so that bob, gone, still sees
// what follows. Alice's and bob's views through /messages, /sync, /event and /context must
// each say what the requester's membership was at every event.
func TestUnsignedMembership(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		hs := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, hs, "alice", "correct horse battery")
		bob := Register(t, hs, "bob", "correct horse battery")
		carol := Register(t, hs, "carol", "correct horse battery")

		// private_chat: history visibility "shared", so bob, once joined, reads back to the start.
		room := createRoom(t, alice, map[string]any{"preset": "private_chat"})
		createID := ""
		for _, e := range getStateList(t, alice, room, 200) {
			if e["type"] == "m.room.create" {
				createID, _ = e["event_id"].(string)
			}
		}
		before := sendText(t, alice, room, "before the invite")
		alice.Must(t, 200, "POST", v3+"/rooms/"+esc(room)+"/invite", map[string]any{"user_id": bob.UserID})
		invited := sendText(t, alice, room, "while bob is invited")
		bob.Must(t, 200, "POST", v3+"/join/"+esc(room), map[string]any{})
		joined := sendText(t, bob, room, "while bob is joined")

		// Bob's initial sync while joined: his timeline reaches back through shared history.
		bobSync := doSync(t, bob, "?filter="+esc(`{"room":{"timeline":{"limit":50}}}`))
		bobSince := bobSync.NextBatch
		want := map[string]string{
			createID: "leave", before: "leave", invited: "invite", joined: "join",
		}
		memberEvents := func(evs []syncEvent) (invite, join, leave string) {
			for _, e := range evs {
				if e.Type != "m.room.member" || e.StateKey == nil || *e.StateKey != bob.UserID {
					continue
				}
				var c struct {
					Membership string `json:"membership"`
				}
				_ = json.Unmarshal(e.Content, &c)
				switch c.Membership {
				case "invite":
					invite = e.EventID
				case "join":
					join = e.EventID
				case "leave":
					leave = e.EventID
				}
			}
			return
		}
		tl := bobSync.Rooms.Join[room].Timeline.Events
		inviteEv, joinEv, _ := memberEvents(tl)
		if inviteEv == "" || joinEv == "" {
			t.Fatalf("bob's timeline lacks his invite or join: %+v", tl)
		}
		want[inviteEv], want[joinEv] = "invite", "join"
		checkMemberships(t, "bob's initial /sync", tl, want)

		// Alice was joined at every event after her own join; the create event precedes it.
		aliceWant := map[string]string{createID: "leave", before: "join", invited: "join", joined: "join", inviteEv: "join", joinEv: "join"}
		checkMemberships(t, "alice's initial /sync", doSync(t, alice, "?filter="+esc(`{"room":{"timeline":{"limit":50}}}`)).Rooms.Join[room].Timeline.Events, aliceWant)

		// Bob leaves; alice talks on, then opens the room's history to the world.
		bob.Must(t, 200, "POST", v3+"/rooms/"+esc(room)+"/leave", map[string]any{})
		unseen := sendText(t, alice, room, "after bob left, shared")
		alice.Must(t, 200, "PUT", v3+"/rooms/"+esc(room)+"/state/m.room.history_visibility/", map[string]any{"history_visibility": "world_readable"})
		open := sendText(t, alice, room, "after bob left, world readable")

		// Bob's incremental sync shows his leave, as of which he was no longer joined.
		s := doSync(t, bob, "?since="+bobSince)
		left, ok := s.Rooms.Leave[room]
		if !ok {
			t.Fatalf("bob's incremental sync has no left room: %+v", s.Rooms)
		}
		_, _, leaveEv := memberEvents(left.Timeline.Events)
		if leaveEv == "" {
			t.Fatalf("bob's leave is not in his left room's timeline: %+v", left.Timeline.Events)
		}
		want[leaveEv] = "leave"
		checkMemberships(t, "bob's incremental /sync", left.Timeline.Events, want)

		// /messages: bob sees his whole story, and what the world may read after it (as "leave"),
		// but not the message sent while the history was shared and he was gone.
		want[open] = "leave"
		chunk, _ := messagesPage(t, bob, room, "dir=b&limit=100")
		checkMemberships(t, "bob's /messages", chunk, want)
		for _, e := range chunk {
			if e.EventID == unseen {
				t.Fatal("bob sees a message sent after he left, while history was only shared")
			}
		}
		mustSee(t, "bob's /messages", chunk, createID, before, inviteEv, invited, joinEv, joined, leaveEv, open)

		aliceWant[leaveEv], aliceWant[unseen], aliceWant[open] = "join", "join", "join"
		chunk, _ = messagesPage(t, alice, room, "dir=b&limit=100")
		checkMemberships(t, "alice's /messages", chunk, aliceWant)
		mustSee(t, "alice's /messages", chunk, createID, before, inviteEv, invited, joinEv, joined, leaveEv, unseen, open)

		// /event, one at a time, for each viewer; carol was never in the room and reads it
		// because it is world readable now, so hers is "leave".
		for _, c := range []struct {
			who  *Client
			name string
			want map[string]string
		}{
			{bob, "bob", want},
			{alice, "alice", aliceWant},
			{carol, "carol", map[string]string{open: "leave"}},
		} {
			for id, m := range c.want {
				r := c.who.Must(t, 200, "GET", v3+"/rooms/"+esc(room)+"/event/"+esc(id), nil)
				u, _ := r.Body["unsigned"].(map[string]any)
				if u["membership"] != m {
					t.Errorf("%s's /event %s: unsigned.membership %v, want %q", c.name, id, u["membership"], m)
				}
			}
		}

		// /context around bob's join: the event and its neighbours.
		r := bob.Must(t, 200, "GET", v3+"/rooms/"+esc(room)+"/context/"+esc(joinEv)+"?limit=10", nil)
		var got struct {
			Event  syncEvent   `json:"event"`
			After  []syncEvent `json:"events_after"`
			Before []syncEvent `json:"events_before"`
		}
		if err := json.Unmarshal(r.Raw, &got); err != nil {
			t.Fatalf("/context: %v", err)
		}
		all := append(append([]syncEvent{got.Event}, got.Before...), got.After...)
		checkMemberships(t, "bob's /context", all, want)
		mustSee(t, "bob's /context", all, joinEv, invited, joined)
	})
}

// checkMemberships fails for every event of evs with a known expected membership whose
// unsigned.membership differs.
func checkMemberships(t *testing.T, where string, evs []syncEvent, want map[string]string) {
	t.Helper()
	for _, e := range evs {
		m, ok := want[e.EventID]
		if !ok {
			continue
		}
		if got := e.Unsigned["membership"]; got != m {
			t.Errorf("%s: %s %s (%s): unsigned.membership %v, want %q", where, e.Type, e.EventID, e.body(), got, m)
		}
	}
}

// mustSee fails unless every one of ids is among evs.
func mustSee(t *testing.T, where string, evs []syncEvent, ids ...string) {
	t.Helper()
	seen := map[string]bool{}
	for _, e := range evs {
		seen[e.EventID] = true
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("%s: event %s is missing", where, id)
		}
	}
}
