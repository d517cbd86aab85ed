package sytest

import (
	"net/url"
	"testing"
)

// A suspended user may redact their own events but not other users', even where their power
// level would allow it (client-server API "Account suspension"), through /redact and through
// /send/m.room.redaction alike.
func TestSuspendedUserRedactions(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		if _, stderr, code := runCLI(t, "admin password\n", "create-account", "--config", s.ConfigPath, "--username", "root", "--admin"); code != 0 {
			t.Fatalf("create-account --admin: %s", stderr)
		}
		root, _ := Login(t, s, "root", "admin password", nil)
		alice := Register(t, s, "alice", "correct horse battery")
		bob := Register(t, s, "bob", "correct horse battery")
		room := createRoom(t, alice, map[string]any{"preset": "public_chat",
			"power_level_content_override": map[string]any{"users": map[string]any{bob.UserID: 50}}})
		bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{})
		fromAlice := say(t, alice, room, "alice's words")
		alsoAlice := say(t, alice, room, "more of alice's words")
		fromBob := say(t, bob, room, "bob's words")
		alsoBob := say(t, bob, room, "more of bob's words")

		suspend := "/_matrix/client/v1/admin/suspend/" + url.PathEscape(bob.UserID)
		root.Must(t, 200, "PUT", suspend, map[string]any{"suspended": true})
		bob.MustErr(t, 403, "M_USER_SUSPENDED", "PUT", roomPath(room, "/redact/"+url.PathEscape(fromAlice)+"/s1"), map[string]any{})
		bob.MustErr(t, 403, "M_USER_SUSPENDED", "PUT", roomPath(room, "/send/m.room.redaction/s2"), map[string]any{"redacts": alsoAlice})
		for _, id := range []string{fromAlice, alsoAlice} {
			if r := alice.Must(t, 200, "GET", roomPath(room, "/event/"+url.PathEscape(id)), nil); r.Body["content"].(map[string]any)["body"] == nil {
				t.Fatalf("a refused redaction redacted %s: %s", id, r.Raw)
			}
		}
		// Their own events, both ways.
		bob.Must(t, 200, "PUT", roomPath(room, "/redact/"+url.PathEscape(fromBob)+"/s3"), map[string]any{"reason": "oops"})
		bob.Must(t, 200, "PUT", roomPath(room, "/send/m.room.redaction/s4"), map[string]any{"redacts": alsoBob})
		// An unknown event is the room server's answer, not a suspension.
		if r := bob.Do(t, "PUT", roomPath(room, "/redact/"+url.PathEscape("$nope:localhost")+"/s5"), map[string]any{}); r.Body["errcode"] == "M_USER_SUSPENDED" {
			t.Fatalf("redacting an unknown event: %s", r.Raw)
		}
		// Lifted, the moderator redacts others' events again.
		root.Must(t, 200, "PUT", suspend, map[string]any{"suspended": false})
		bob.Must(t, 200, "PUT", roomPath(room, "/redact/"+url.PathEscape(fromAlice)+"/s6"), map[string]any{})
	})
}
