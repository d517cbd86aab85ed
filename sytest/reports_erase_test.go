package sytest

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// An account deactivated with erase leaves no words in its reports: the administrators keep
// that an event, room or user was reported, not who reported it or why.
func TestErasedReporterReports(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		bob := Register(t, s, "bob", "correct horse battery")
		carol := Register(t, s, "carol", "correct horse battery")
		room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
		for _, c := range []*Client{bob, carol} {
			c.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{})
		}
		ev := say(t, alice, room, "reported words")
		bob.Must(t, 200, "POST", roomPath(room, "/report/"+url.PathEscape(ev)), map[string]any{"reason": "bob's secret reason", "score": -100})
		bob.Must(t, 200, "POST", "/_matrix/client/v3/users/"+url.PathEscape(alice.UserID)+"/report", map[string]any{"reason": "bob thinks so"})
		carol.Must(t, 200, "POST", roomPath(room, "/report"), map[string]any{"reason": "carol's reason"})
		withPassword(t, bob, "POST", "/_matrix/client/v3/account/deactivate", map[string]any{"erase": true}, "correct horse battery")

		out, stderr, code := runCLI(t, "", "reports", "--config", s.ConfigPath, "--json")
		if code != 0 {
			t.Fatalf("myelin reports: exit %d: %s", code, stderr)
		}
		for _, gone := range []string{bob.UserID, "bob's secret reason", "bob thinks so"} {
			if strings.Contains(out, gone) {
				t.Fatalf("%q remains after erasure: %s", gone, out)
			}
		}
		got := map[string]map[string]any{} // by kind: one of each
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var r map[string]any
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("myelin reports --json: %v: %q", err, out)
			}
			got[r["kind"].(string)] = r
		}
		if len(got) != 3 {
			t.Fatalf("want 3 reports of different kinds: %s", out)
		}
		if r := got["event"]; r["kind"] != "event" || r["event_id"] != ev || r["room_id"] != room || r["reason"] != "" || r["score"] != nil || r["reporter"] != "(erased)" {
			t.Errorf("erased event report: %v", r)
		}
		if r := got["user"]; r["user_id"] != alice.UserID || r["reason"] != "" || r["reporter"] != "(erased)" {
			t.Errorf("erased user report: %v", r)
		}
		if r := got["room"]; r["reporter"] != carol.UserID || r["reason"] != "carol's reason" {
			t.Errorf("another user's report changed: %v", r)
		}
	})
}
