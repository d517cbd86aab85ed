package sytest

import "testing"

// TestJoinCarriesProfile: a membership event of a user's own join carries their display name and
// avatar, which is where clients look for them.
func TestJoinCarriesProfile(t *testing.T) {
	s := Start(t, Options{})
	alice := Register(t, s, "alice", "correct horse battery")
	bob := Register(t, s, "bob", "correct horse battery")
	alice.Must(t, 200, "PUT", "/_matrix/client/v3/profile/@alice:localhost/displayname", map[string]any{"displayname": "Alice"})
	bob.Must(t, 200, "PUT", "/_matrix/client/v3/profile/@bob:localhost/avatar_url", map[string]any{"avatar_url": "mxc://localhost/bobface"})
	room := alice.Must(t, 200, "POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat"}).Str("room_id")
	bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+room, map[string]any{})

	a := alice.Must(t, 200, "GET", "/_matrix/client/v3/rooms/"+room+"/state/m.room.member/@alice:localhost", nil)
	if a.Body["displayname"] != "Alice" || a.Body["membership"] != "join" {
		t.Errorf("creator's join: %s", a.Raw)
	}
	b := alice.Must(t, 200, "GET", "/_matrix/client/v3/rooms/"+room+"/state/m.room.member/@bob:localhost", nil)
	if b.Body["avatar_url"] != "mxc://localhost/bobface" || b.Body["membership"] != "join" {
		t.Errorf("joiner's join: %s", b.Raw)
	}
}
