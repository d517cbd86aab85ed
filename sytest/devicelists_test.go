package sytest

import (
	"encoding/json"
	"net/url"
	"slices"
	"testing"
)

// Device list tracking through /sync's device_lists (client-server API, "Tracking the device
// list for a user"): a user who comes to share a room is in changed, one with whom no room is
// shared any more is in left; and a deactivated account leaves its rooms, its keys going with
// it.

type deviceListsSync struct {
	NextBatch   string `json:"next_batch"`
	DeviceLists *struct {
		Changed []string `json:"changed"`
		Left    []string `json:"left"`
	} `json:"device_lists"`
}

func syncDeviceLists(t *testing.T, c *Client, since string) (changed, left []string, next string) {
	t.Helper()
	q := ""
	if since != "" {
		q = "?since=" + url.QueryEscape(since)
	}
	r := c.Must(t, 200, "GET", "/_matrix/client/v3/sync"+q, nil)
	var s deviceListsSync
	if err := json.Unmarshal(r.Raw, &s); err != nil {
		t.Fatal(err)
	}
	if s.DeviceLists != nil {
		changed, left = s.DeviceLists.Changed, s.DeviceLists.Left
	}
	return changed, left, s.NextBatch
}

func TestDeviceListsFollowMemberships(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		hs := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, hs, "alice", "correct horse battery")
		bob := Register(t, hs, "bob", "correct horse battery")
		carol := Register(t, hs, "carol", "correct horse battery")
		one := createRoom(t, alice, map[string]any{"preset": "public_chat"})
		two := createRoom(t, alice, map[string]any{"preset": "public_chat"})
		_, _, since := syncDeviceLists(t, alice, "")

		bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+esc(one), map[string]any{})
		changed, left, next := syncDeviceLists(t, alice, since)
		if !slices.Contains(changed, bob.UserID) || len(left) != 0 {
			t.Fatalf("after bob joined: changed %v left %v, want bob in changed", changed, left)
		}
		// Bob sees alice, whom he now shares a room with.
		if changed, _, _ := syncDeviceLists(t, bob, since); !slices.Contains(changed, alice.UserID) {
			t.Errorf("bob's changed after joining: %v, want alice", changed)
		}
		since = next

		// Bob in a second room, then out of the first: still sharing one, so not left.
		bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+esc(two), map[string]any{})
		_, _, since = syncDeviceLists(t, alice, since)
		bob.Must(t, 200, "POST", roomPath(one, "/leave"), map[string]any{})
		if _, left, next := syncDeviceLists(t, alice, since); slices.Contains(left, bob.UserID) {
			t.Fatalf("bob is in left while still sharing a room: %v", left)
		} else {
			since = next
		}
		bob.Must(t, 200, "POST", roomPath(two, "/leave"), map[string]any{})
		changed, left, since = syncDeviceLists(t, alice, since)
		if !slices.Contains(left, bob.UserID) || slices.Contains(changed, bob.UserID) {
			t.Fatalf("after bob left every shared room: changed %v left %v, want bob in left", changed, left)
		}

		// A deactivated account leaves its rooms: the others see it leave, and in left.
		carol.Must(t, 200, "POST", "/_matrix/client/v3/join/"+esc(one), map[string]any{})
		_, _, since = syncDeviceLists(t, alice, since)
		if r := withPassword(t, carol, "POST", "/_matrix/client/v3/account/deactivate", map[string]any{"erase": true}, "correct horse battery"); r.Status != 200 {
			t.Fatalf("deactivate: %d %s", r.Status, r.Raw)
		}
		membershipIs(t, alice, one, carol.UserID, "leave")
		_, left, _ = syncDeviceLists(t, alice, since)
		if !slices.Contains(left, carol.UserID) {
			t.Errorf("after carol's deactivation, left is %v", left)
		}
	})
}
