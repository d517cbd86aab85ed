package sytest

import (
	"net/url"
	"path/filepath"
	"testing"

	"myelin/keys"
)

// Custom profile fields (spec v1.16) over federation: /query/profile gives the whole profile
// without field and any one key with it, under profile.require_shared_room; a client reads a
// remote user's fields through its own server.
func TestFederationProfileFields(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		hs1, hs2, ca := roomFedPair(t, dbURL)
		alice := Register(t, hs1, "alice", "correct horse battery")
		bob := Register(t, hs2, "bob", "correct horse battery")
		carol := Register(t, hs2, "carol", "correct horse battery")
		room := alice.Must(t, 200, "POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat"}).Str("room_id")
		bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room)+"?server_name=hs1.test", map[string]any{})
		membershipIs(t, alice, room, bob.UserID, "join")

		prof := "/_matrix/client/v3/profile/" + url.PathEscape(alice.UserID)
		alice.Must(t, 200, "PUT", prof+"/displayname", map[string]any{"displayname": "Alice"})
		alice.Must(t, 200, "PUT", prof+"/m.tz", map[string]any{"m.tz": "Europe/Paris"})
		alice.Must(t, 200, "PUT", prof+"/org.example.pronouns", map[string]any{"org.example.pronouns": map[string]any{"en": "she/her"}})

		// The whole profile, custom fields included.
		r := bob.Must(t, 200, "GET", prof, nil)
		pr, _ := r.Body["org.example.pronouns"].(map[string]any)
		if r.Str("displayname") != "Alice" || r.Str("m.tz") != "Europe/Paris" || pr["en"] != "she/her" {
			t.Fatalf("alice's profile from hs2: %s", r.Raw)
		}
		// One field, whichever key.
		r = bob.Must(t, 200, "GET", prof+"/m.tz", nil)
		if r.Str("m.tz") != "Europe/Paris" || len(r.Body) != 1 {
			t.Fatalf("m.tz from hs2: %s", r.Raw)
		}
		r = bob.Must(t, 200, "GET", prof+"/org.example.pronouns", nil)
		if pr, _ := r.Body["org.example.pronouns"].(map[string]any); pr["en"] != "she/her" || len(r.Body) != 1 {
			t.Fatalf("custom field from hs2: %s", r.Raw)
		}
		r = bob.Must(t, 200, "GET", prof+"/displayname", nil)
		if r.Str("displayname") != "Alice" || len(r.Body) != 1 {
			t.Fatalf("displayname from hs2: %s", r.Raw)
		}
		bob.MustErr(t, 404, "M_NOT_FOUND", "GET", prof+"/org.example.unset", nil)
		bob.MustErr(t, 404, "M_NOT_FOUND", "GET", prof+"/avatar_url", nil)
		// A deleted field is gone over there too.
		alice.Must(t, 200, "DELETE", prof+"/m.tz", nil)
		bob.MustErr(t, 404, "M_NOT_FOUND", "GET", prof+"/m.tz", nil)
		if r := bob.Must(t, 200, "GET", prof, nil); r.Body["m.tz"] != nil || r.Body["org.example.pronouns"] == nil {
			t.Fatalf("profile after deleting m.tz: %s", r.Raw)
		}
		// Privacy: a user of hs2 who shares no room is refused by hs2 itself, and hs1 refuses a
		// server none of whose users shares a room with alice.
		carol.MustErr(t, 403, "M_FORBIDDEN", "GET", prof+"/org.example.pronouns", nil)
		hs2Key, err := keys.LoadSigningKey(filepath.Join(hs2.DataDir, "signing.key"))
		if err != nil {
			t.Fatal(err)
		}
		query := func(field string) (int, string) {
			q := url.Values{"user_id": {alice.UserID}}
			if field != "" {
				q.Set("field", field)
			}
			return signedRequest(t, ca, hs1, "hs2.test", hs2Key, "GET", "/_matrix/federation/v1/query/profile?"+q.Encode(), nil)
		}
		if status, code := query("org.example.pronouns"); status != 200 {
			t.Fatalf("query a custom field: %d %s", status, code)
		}
		if status, code := query("org.example.unset"); status != 404 || code != "M_NOT_FOUND" {
			t.Fatalf("query an unset field: %d %s", status, code)
		}
		bob.Must(t, 200, "POST", roomPath(room, "/leave"), map[string]any{})
		membershipIs(t, alice, room, bob.UserID, "leave")
		for _, field := range []string{"", "org.example.pronouns"} {
			if status, code := query(field); status != 403 || code != "M_FORBIDDEN" {
				t.Fatalf("query %q without a shared room: %d %s", field, status, code)
			}
		}
	})
}
