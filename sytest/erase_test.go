package sytest

import (
	"net/http"
	"testing"
)

// TestDeactivateWithErase: an account deactivated with "erase": true leaves nothing of the
// person behind that other users could fetch: their media is gone, their profile is gone, and
// the user id can never be registered again.
func TestDeactivateWithErase(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		bob := Register(t, s, "bob", "correct horse battery")
		room := alice.Must(t, 200, "POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat"}).Str("room_id")
		bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+room, map[string]any{})
		alice.Must(t, 200, "PUT", "/_matrix/client/v3/profile/@alice:localhost/displayname", map[string]any{"displayname": "Alice A."})
		server, id := upload(t, alice, []byte("a private file"), "text/plain", "notes.txt")
		mustMedia(t, bob, http.StatusOK, "GET", downloadPath(server, id), nil, "")

		withPassword(t, alice, "POST", "/_matrix/client/v3/account/deactivate", map[string]any{"erase": true}, "correct horse battery")

		mustMediaErr(t, bob, http.StatusNotFound, "M_NOT_FOUND", "GET", downloadPath(server, id), nil, "")
		if r := bob.Do(t, "GET", "/_matrix/client/v3/profile/@alice:localhost", nil); r.Status == http.StatusOK && r.Body["displayname"] != nil {
			t.Errorf("erased profile still served: %s", r.Raw)
		}
		members := bob.Must(t, 200, "GET", "/_matrix/client/v3/rooms/"+room+"/joined_members", nil)
		if joined, _ := members.Body["joined"].(map[string]any); joined["@alice:localhost"] != nil {
			t.Errorf("deactivated user still joined: %s", members.Raw)
		}
		Anonymous(s).MustErr(t, 400, "M_USER_IN_USE", "POST", "/_matrix/client/v3/register",
			map[string]any{"username": "alice", "password": "another good password", "auth": map[string]any{"type": "m.login.dummy"}})
	})
}
