package sytest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestSpecVersions: /versions lists every Client-Server version from v1.1 to v1.19, and the
// small requirements of later versions that were closed to earn them hold: additional_creators
// on room upgrades (v1.16) and the m.account_moderation capability of administrators (v1.18).
func TestSpecVersions(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		v3 := "/_matrix/client/v3"

		r := Anonymous(s).Must(t, 200, "GET", "/_matrix/client/versions", nil)
		var want []any
		for minor := 1; minor <= 19; minor++ {
			want = append(want, fmt.Sprintf("v1.%d", minor))
		}
		if got, _ := r.Body["versions"].([]any); !slices.Equal(got, want) {
			t.Errorf("versions: %s", r.Raw)
		}
		if _, ok := r.Body["unstable_features"].(map[string]any); !ok {
			t.Errorf("unstable_features: %s", r.Raw)
		}

		alice := Register(t, s, "alice", "alice password")
		bob := Register(t, s, "bob", "bob password")
		carol := Register(t, s, "carol", "carol password")

		t.Run("upgrade with additional_creators", func(t *testing.T) {
			room := createRoom(t, alice, map[string]any{"preset": "private_chat", "room_version": "11"})
			alice.Must(t, 200, "PUT", v3+"/rooms/"+esc(room)+"/state/m.room.power_levels", map[string]any{
				"users": map[string]any{alice.UserID: 100, bob.UserID: 50}})
			body := map[string]any{"new_version": "12", "additional_creators": []string{bob.UserID, carol.UserID, bob.UserID}}

			alice.MustErr(t, 400, "M_INVALID_PARAM", "POST", v3+"/rooms/"+esc(room)+"/upgrade",
				map[string]any{"new_version": "12", "additional_creators": []string{"not a user"}})
			alice.MustErr(t, 400, "M_BAD_JSON", "POST", v3+"/rooms/"+esc(room)+"/upgrade",
				map[string]any{"new_version": "12", "additional_creators": "@bob:localhost"})

			newRoom := alice.Must(t, 200, "POST", v3+"/rooms/"+esc(room)+"/upgrade", body).Str("replacement_room")
			create := stateContent(t, alice, newRoom, "m.room.create", "")
			if got := fmt.Sprint(create["additional_creators"]); got != fmt.Sprint([]any{bob.UserID, carol.UserID}) {
				t.Errorf("additional_creators of the new room: %v", create)
			}
			// Creators have infinite power in v12, so the power levels may not list them.
			pl := stateContent(t, alice, newRoom, "m.room.power_levels", "")
			users, _ := pl["users"].(map[string]any)
			for _, u := range []string{alice.UserID, bob.UserID, carol.UserID} {
				if _, listed := users[u]; listed {
					t.Errorf("creator %s listed in the new room's power levels: %v", u, pl)
				}
			}
			// Bob, an additional creator, may act as one once joined.
			alice.Must(t, 200, "POST", v3+"/rooms/"+esc(newRoom)+"/invite", map[string]any{"user_id": bob.UserID})
			bob.Must(t, 200, "POST", v3+"/join/"+esc(newRoom), map[string]any{})
			bob.Must(t, 200, "PUT", v3+"/rooms/"+esc(newRoom)+"/state/m.room.name", map[string]any{"name": "Bob's now"})

			// A second upgrade does not carry the old room's additional creators over.
			next := alice.Must(t, 200, "POST", v3+"/rooms/"+esc(newRoom)+"/upgrade", map[string]any{"new_version": "12"}).Str("replacement_room")
			if c := stateContent(t, alice, next, "m.room.create", ""); c["additional_creators"] != nil {
				t.Errorf("additional creators copied without being asked: %v", c)
			}

			// Upgrading to a version without additional creators ignores the field, even invalid.
			old := createRoom(t, alice, map[string]any{"room_version": "10"})
			v11 := alice.Must(t, 200, "POST", v3+"/rooms/"+esc(old)+"/upgrade",
				map[string]any{"new_version": "11", "additional_creators": []string{bob.UserID, "not a user"}}).Str("replacement_room")
			if c := stateContent(t, alice, v11, "m.room.create", ""); c["additional_creators"] != nil {
				t.Errorf("additional_creators in a version 11 room: %v", c)
			}
		})

		t.Run("m.account_moderation capability", func(t *testing.T) {
			caps := alice.Must(t, 200, "GET", v3+"/capabilities", nil)
			if strings.Contains(string(caps.Raw), "m.account_moderation") {
				t.Errorf("a user who is no administrator is offered account moderation: %s", caps.Raw)
			}
			_, stderr, code := runCLI(t, "admin password\n", "create-account", "--config", s.ConfigPath, "--username", "root", "--admin")
			if code != 0 {
				t.Fatalf("create-account --admin: %s", stderr)
			}
			root, _ := Login(t, s, "root", "admin password", nil)
			caps = root.Must(t, 200, "GET", v3+"/capabilities", nil)
			all, _ := caps.Body["capabilities"].(map[string]any)
			mod, _ := all["m.account_moderation"].(map[string]any)
			if mod["suspend"] != true || mod["lock"] != true {
				t.Errorf("an administrator's capabilities: %s", caps.Raw)
			}
		})
	})
}
