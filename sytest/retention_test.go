package sytest

import (
	"net/url"
	"slices"
	"testing"
	"time"
)

// Black-box tests of message retention: a room's m.room.retention, clamped to the server's
// bounds, makes old messages vanish from every client read path while the room goes on.

func TestRetentionPurgesOldMessages(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		// The room asks for 1 s; the server's minimum of 6 s wins.
		s := Start(t, Options{DatabaseURL: dbURL, Config: map[string]any{
			"retention": map[string]any{"min_lifetime": "6s", "purge_interval": "1s"},
		}})
		alice := Register(t, s, "alice", "correct horse battery")
		bob := Register(t, s, "bob", "correct horse battery")
		room := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Orchard",
			"initial_state": []any{map[string]any{"type": "m.room.retention", "state_key": "",
				"content": map[string]any{"max_lifetime": 1000}}}})
		forever := createRoom(t, alice, map[string]any{"preset": "public_chat"})

		sent := time.Now()
		apple := sendText(t, alice, room, "ancient apple")
		pear := sendText(t, alice, room, "ancient pear")
		// A later event, so that the old ones are not the room's latest (never purged).
		sendText(t, alice, room, "a message in between")
		fig := sendText(t, alice, forever, "forever fig")
		sendText(t, alice, forever, "the latest fig")

		status := func(c *Client, roomID, eventID string) int {
			return c.Do(t, "GET", v3+"/rooms/"+esc(roomID)+"/event/"+esc(eventID), nil).Status
		}
		// Were the room's 1 s honoured, the purge job (every second) would have taken them by now.
		time.Sleep(time.Until(sent.Add(3 * time.Second)))
		if got := status(alice, room, apple); got != 200 {
			t.Fatalf("after 3s, /event of an old message: %d; the 6s minimum was not applied", got)
		}
		deadline := time.Now().Add(40 * time.Second)
		for status(alice, room, apple) != 404 {
			if time.Now().After(deadline) {
				t.Fatalf("the old message was never purged")
			}
			time.Sleep(250 * time.Millisecond)
		}
		if elapsed := time.Since(sent); elapsed < 6*time.Second {
			t.Fatalf("purged after %v, before the 6s minimum", elapsed)
		}

		// New messages stay (they are checked well within their 6 s).
		banana := sendText(t, alice, room, "fresh banana")
		for _, id := range []string{apple, pear} {
			if got := status(alice, room, id); got != 404 {
				t.Errorf("/event %s: %d, want 404", id, got)
			}
			alice.MustErr(t, 404, "M_NOT_FOUND", "GET", v3+"/rooms/"+esc(room)+"/context/"+esc(id), nil)
		}
		if got := status(alice, room, banana); got != 200 {
			t.Errorf("/event of the new message: %d", got)
		}
		bodies := msgBodies(roomEvents(messages(t, alice, room, "dir=b&limit=50"), "chunk"))
		if !slices.Contains(bodies, "fresh banana") || slices.Contains(bodies, "ancient apple") || slices.Contains(bodies, "ancient pear") {
			t.Errorf("/messages bodies: %v", bodies)
		}
		full := doSync(t, alice, "?filter="+url.QueryEscape(`{"room":{"timeline":{"limit":50}}}`))
		synced := syncBodies(full.Rooms.Join[room].Timeline.Events)
		if !slices.Contains(synced, "fresh banana") || slices.Contains(synced, "ancient apple") || slices.Contains(synced, "ancient pear") {
			t.Errorf("/sync bodies: %v", synced)
		}
		if ids := resultIDs(searchReply(t, alice, map[string]any{"search_term": "ancient"}, "")); len(ids) != 0 {
			t.Errorf("/search still finds purged messages: %v", ids)
		}
		if ids := resultIDs(searchReply(t, alice, map[string]any{"search_term": "banana"}, "")); !slices.Equal(ids, []string{banana}) {
			t.Errorf("/search banana: %v, want %s", ids, banana)
		}
		// A room without a policy keeps everything: the server's default is forever.
		if got := status(alice, forever, fig); got != 200 {
			t.Errorf("/event in a room without a policy: %d", got)
		}

		// The room works on: a newcomer joins and speaks, and the state is whole.
		bob.Must(t, 200, "POST", v3+"/join/"+esc(room), map[string]any{})
		hello := sendText(t, bob, room, "hello from bob")
		if got := status(alice, room, hello); got != 200 {
			t.Errorf("/event of bob's message: %d", got)
		}
		bodies = msgBodies(roomEvents(messages(t, alice, room, "dir=b&limit=50"), "chunk"))
		if !slices.Contains(bodies, "hello from bob") {
			t.Errorf("/messages after the join: %v", bodies)
		}
		if name := stateContent(t, bob, room, "m.room.name", ""); name["name"] != "Orchard" {
			t.Errorf("room name: %v", name)
		}
		if policy := stateContent(t, bob, room, "m.room.retention", ""); policy["max_lifetime"] != float64(1000) {
			t.Errorf("retention policy: %v", policy)
		}
		members := alice.Must(t, 200, "GET", v3+"/rooms/"+esc(room)+"/joined_members", nil)
		if joined, _ := members.Body["joined"].(map[string]any); len(joined) != 2 {
			t.Errorf("joined members: %v", members.Body["joined"])
		}
	})
}
