package sytest

import (
	"slices"
	"testing"
)

// Ignoring users: once alice lists bob in m.ignored_user_list, bob's messages (old and new) are
// gone from her /sync and /messages while his state events stay, his invites never reach her,
// and un-ignoring him brings his messages back.
func TestIgnoredUsers(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		hs := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, hs, "alice", "correct horse battery")
		bob := Register(t, hs, "bob", "correct horse battery")
		carol := Register(t, hs, "carol", "correct horse battery")

		room := createRoom(t, alice, map[string]any{"preset": "public_chat", "power_level_content_override": map[string]any{
			"users": map[string]any{bob.UserID: 50},
		}})
		bob.Must(t, 200, "POST", v3+"/join/"+esc(room), map[string]any{})
		carol.Must(t, 200, "POST", v3+"/join/"+esc(room), map[string]any{})
		sendText(t, bob, room, "before ignoring")
		sendText(t, carol, room, "carol speaks")

		ignore := func(users ...string) {
			t.Helper()
			list := map[string]any{}
			for _, u := range users {
				list[u] = map[string]any{}
			}
			alice.Must(t, 200, "PUT", v3+"/user/"+esc(alice.UserID)+"/account_data/m.ignored_user_list",
				map[string]any{"ignored_users": list})
		}
		ignore(bob.UserID)
		since := doSync(t, alice, "").NextBatch

		sendText(t, bob, room, "while ignored")
		bob.Must(t, 200, "PUT", v3+"/rooms/"+esc(room)+"/state/m.room.topic/", map[string]any{"topic": "bob's topic"})
		sendText(t, carol, room, "carol again")

		// Incremental sync: carol's message and bob's topic, not bob's message.
		s := doSync(t, alice, "?since="+since)
		tl := s.Rooms.Join[room].Timeline.Events
		if got := syncBodies(tl); !slices.Equal(got, []string{"carol again"}) {
			t.Fatalf("incremental timeline bodies %q", got)
		}
		if !hasState(tl, "m.room.topic", "") {
			t.Fatal("bob's state event is missing from alice's timeline")
		}

		// A fresh sync and /messages: none of bob's messages, from before or after.
		s = doSync(t, alice, "")
		for _, e := range s.Rooms.Join[room].Timeline.Events {
			if e.Sender == bob.UserID && e.Type == "m.room.message" {
				t.Fatalf("initial sync shows an ignored user's message %q", e.body())
			}
		}
		msgs := msgBodies(roomEvents(messages(t, alice, room, "dir=b&limit=50"), "chunk"))
		if !slices.Equal(msgs, []string{"carol again", "carol speaks"}) {
			t.Fatalf("/messages bodies %q", msgs)
		}
		// Others still see everything.
		if msgs := msgBodies(roomEvents(messages(t, carol, room, "dir=b&limit=50"), "chunk")); len(msgs) != 4 {
			t.Fatalf("carol's /messages: %q", msgs)
		}

		// An invite from bob never reaches alice; one from carol does.
		since = doSync(t, alice, "").NextBatch
		fromBob := createRoom(t, bob, map[string]any{"invite": []string{alice.UserID}})
		fromCarol := createRoom(t, carol, map[string]any{"invite": []string{alice.UserID}})
		s = doSync(t, alice, "?since="+since)
		if _, ok := s.Rooms.Invite[fromBob]; ok {
			t.Fatal("an invite from an ignored user reached the sync")
		}
		if _, ok := s.Rooms.Invite[fromCarol]; !ok {
			t.Fatal("carol's invite is missing")
		}
		if _, ok := doSync(t, alice, "").Rooms.Invite[fromBob]; ok {
			t.Fatal("an invite from an ignored user reached the initial sync")
		}

		// Un-ignoring brings bob's messages back.
		ignore()
		msgs = msgBodies(roomEvents(messages(t, alice, room, "dir=b&limit=50"), "chunk"))
		if !slices.Equal(msgs, []string{"carol again", "while ignored", "carol speaks", "before ignoring"}) {
			t.Fatalf("/messages after un-ignoring: %q", msgs)
		}
	})
}
