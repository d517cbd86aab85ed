package sytest

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// History across servers: a server that joins a room over federation fetches the history
// before its join when a client paginates back into it (backfill), under the history
// visibility rules; a server that missed more events than get_missing_events reaches bridges
// the gap with /state_ids and keeps the room working; concurrent state changes on two servers
// resolve to the same state everywhere.

// roomFedTrio starts hs1.test, hs2.test and hs3.test under one CA, each knowing where the
// others listen, on the backend of dbURL.
func roomFedTrio(t *testing.T, dbURL string) (hs1, hs2, hs3 *Server) {
	t.Helper()
	ca := NewCA(t)
	db := func() string {
		if dbURL == "" {
			return ""
		}
		return storagetest.NewConfig(t, storage.Postgres).URL
	}
	hs1 = Start(t, Options{ServerName: "hs1.test", CA: ca, DatabaseURL: db()})
	hs2 = Start(t, Options{ServerName: "hs2.test", CA: ca, DatabaseURL: db(), Config: map[string]any{
		"federation": map[string]any{"static_hosts": map[string]string{"hs1.test": fedAddr(hs1)}},
	}})
	hs3 = Start(t, Options{ServerName: "hs3.test", CA: ca, DatabaseURL: db(), Config: map[string]any{
		"federation": map[string]any{"static_hosts": map[string]string{"hs1.test": fedAddr(hs1), "hs2.test": fedAddr(hs2)}},
	}})
	setStaticHost(t, hs1, "hs2.test", fedAddr(hs2))
	setStaticHost(t, hs1, "hs3.test", fedAddr(hs3))
	hs1.Restart(t)
	setStaticHost(t, hs2, "hs3.test", fedAddr(hs3))
	hs2.Restart(t)
	return hs1, hs2, hs3
}

// paginateAll reads a room's /messages backwards from the newest event to the start, limit
// events a page, and returns the events newest first. It fails past maxPages pages, so a
// pagination that never ends is a failure, not a hang.
func paginateAll(t *testing.T, c *Client, roomID string, limit, maxPages int) []map[string]any {
	t.Helper()
	var out []map[string]any
	from := ""
	for range maxPages {
		q := fmt.Sprintf("dir=b&limit=%d", limit)
		if from != "" {
			q += "&from=" + url.QueryEscape(from)
		}
		r := c.Must(t, 200, "GET", roomPath(roomID, "/messages?"+q), nil)
		out = append(out, roomEvents(r, "chunk")...)
		end := r.Str("end")
		if end == "" {
			return out
		}
		from = end
	}
	t.Fatalf("/messages of %s did not end within %d pages", roomID, maxPages)
	return nil
}

func idsOf(evs []map[string]any) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i], _ = e["event_id"].(string)
	}
	return out
}

func hasType(evs []map[string]any, typ string) bool {
	return slices.ContainsFunc(evs, func(e map[string]any) bool { return e["type"] == typ })
}

// roomStateIDs is a room's current state as c's server has it: event id by "type|state_key".
func roomStateIDs(t *testing.T, c *Client, roomID string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, e := range getStateList(t, c, roomID, 200) {
		out[fmt.Sprint(e["type"], "|", e["state_key"])] = fmt.Sprint(e["event_id"])
	}
	return out
}

func stateString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, m[k])
	}
	return b.String()
}

// sameStateEverywhere waits until every client's server has the same current state of the
// room, and returns it.
func sameStateEverywhere(t *testing.T, roomID string, clients ...*Client) map[string]string {
	t.Helper()
	var states []string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("states of %s:\n%s", roomID, strings.Join(states, "\n"))
		}
	})
	eventually(t, 60*time.Second, "the same state of "+roomID+" on every server", func() bool {
		states = states[:0]
		for _, c := range clients {
			states = append(states, stateString(roomStateIDs(t, c, roomID)))
		}
		for _, s := range states[1:] {
			if s != states[0] {
				return false
			}
		}
		return true
	})
	return roomStateIDs(t, clients[0], roomID)
}

func TestFederationBackfill(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		hs1, hs2, _ := roomFedPair(t, dbURL)
		alice := Register(t, hs1, "alice", "correct horse battery")
		bob := Register(t, hs2, "bob", "correct horse battery")

		t.Run("history before a remote join is backfilled", func(t *testing.T) {
			room := bob.Must(t, 200, "POST", "/_matrix/client/v3/createRoom", map[string]any{
				"preset": "public_chat", "name": "old news",
				"initial_state": []any{map[string]any{"type": "m.room.history_visibility", "state_key": "",
					"content": map[string]any{"history_visibility": "shared"}}},
			}).Str("room_id")
			var want []string
			for i := 1; i <= 30; i++ {
				body := fmt.Sprintf("history %d", i)
				say(t, bob, room, body)
				want = append(want, body)
			}
			alice.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room)+"?server_name=hs2.test", map[string]any{})
			membershipIs(t, bob, room, alice.UserID, "join")

			evs := paginateAll(t, alice, room, 10, 30)
			got := msgBodies(evs)
			slices.Reverse(got) // pages run newest first
			if !slices.Equal(got, want) {
				t.Fatalf("messages before the join, oldest first:\n got %q\nwant %q", got, want)
			}
			if !hasType(evs, "m.room.create") {
				t.Errorf("pagination did not reach the room's creation: %v", idsOf(evs))
			}
			ids := idsOf(evs)
			seen := map[string]bool{}
			for _, id := range ids {
				if seen[id] {
					t.Errorf("event %s twice in one pagination", id)
				}
				seen[id] = true
			}
			// Paginating again reads what was stored: the same events, once each.
			again := idsOf(paginateAll(t, alice, room, 7, 40))
			if !slices.Equal(again, ids) {
				t.Errorf("second pagination differs:\n got %v\nwant %v", again, ids)
			}
			// The backfilled events are readable one by one too.
			oldest := evs[len(evs)-1]["event_id"].(string)
			alice.Must(t, 200, "GET", roomPath(room, "/event/"+url.PathEscape(oldest)), nil)
		})

		t.Run("joined history visibility hides the history before the join", func(t *testing.T) {
			room := bob.Must(t, 200, "POST", "/_matrix/client/v3/createRoom", map[string]any{
				"preset": "public_chat",
				"initial_state": []any{map[string]any{"type": "m.room.history_visibility", "state_key": "",
					"content": map[string]any{"history_visibility": "joined"}}},
			}).Str("room_id")
			for i := 1; i <= 30; i++ {
				say(t, bob, room, fmt.Sprintf("secret %d", i))
			}
			alice.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room)+"?server_name=hs2.test", map[string]any{})
			membershipIs(t, bob, room, alice.UserID, "join")
			after := say(t, bob, room, "welcome")
			arrives(t, alice, room, after, "welcome")

			for range 2 {
				evs := paginateAll(t, alice, room, 10, 30)
				if got := msgBodies(evs); !slices.Equal(got, []string{"welcome"}) {
					t.Errorf("alice reads %q, want only the message after her join", got)
				}
			}
		})
	})
}

func TestFederationGapAndConflicts(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		hs1, hs2, hs3 := roomFedTrio(t, dbURL)
		// Servers restarted inside a subtest are started with this t: the harness stops a
		// server when the test that started it ends.
		outer := t
		alice := Register(t, hs1, "alice", "correct horse battery")
		bob := Register(t, hs2, "bob", "correct horse battery")
		carol := Register(t, hs3, "carol", "correct horse battery")

		room := bob.Must(t, 200, "POST", "/_matrix/client/v3/createRoom", map[string]any{
			"preset": "public_chat", "name": "three servers",
		}).Str("room_id")
		alice.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room)+"?server_name=hs2.test", map[string]any{})
		carol.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room)+"?server_name=hs2.test", map[string]any{})
		for _, c := range []*Client{alice, bob, carol} {
			membershipIs(t, c, room, carol.UserID, "join")
			membershipIs(t, c, room, alice.UserID, "join")
		}
		hello := say(t, carol, room, "all here")
		arrives(t, alice, room, hello, "all here")
		arrives(t, bob, room, hello, "all here")

		t.Run("a gap deeper than get_missing_events is bridged with state_ids", func(t *testing.T) {
			hs3.Stop()
			// More than get_missing_events takes (missingEventsLimit, 10), and a state change
			// that hs3 must learn through the state at the gap.
			var missed []string
			for i := 1; i <= 24; i++ {
				c := alice
				if i%2 == 0 {
					c = bob
				}
				body := fmt.Sprintf("while hs3 was away %d", i)
				// Each message waits for the one before on both servers: one line of
				// history, whose order the pagination below can check.
				other := bob
				if c == bob {
					other = alice
				}
				arrives(t, other, room, say(t, c, room, body), body)
				missed = append(missed, body)
				if i == 12 {
					bob.Must(t, 200, "PUT", roomPath(room, "/state/m.room.name/"), map[string]any{"name": "renamed in the gap"})
				}
			}
			last := say(t, bob, room, "last before the drop")
			missed = append(missed, "last before the drop")
			arrives(t, alice, room, last, "last before the drop")
			// hs1 and hs2 lose what they had queued for hs3: it never arrives by itself.
			hs1.Stop()
			hs2.Stop()
			hs1.DropOutboundQueue(t, "hs3.test")
			hs2.DropOutboundQueue(t, "hs3.test")
			hs1.Restart(outer)
			hs2.Restart(outer)
			hs3.Restart(outer)

			ev := say(t, bob, room, "the gap closes")
			arrives(t, carol, room, ev, "the gap closes")
			if name := stateContent(t, carol, room, "m.room.name", ""); name["name"] != "renamed in the gap" {
				t.Errorf("room name on hs3 after the gap: %v", name)
			}
			sameStateEverywhere(t, room, alice, bob, carol)

			// The room keeps working from hs3 ...
			back := say(t, carol, room, "hs3 is back")
			arrives(t, alice, room, back, "hs3 is back")
			arrives(t, bob, room, back, "hs3 is back")
			// ... and carol reads the history of the gap, fetched by backfill when she
			// paginates across it.
			got := msgBodies(paginateAll(t, carol, room, 10, 40))
			slices.Reverse(got)
			want := slices.Concat([]string{"all here"}, missed, []string{"the gap closes", "hs3 is back"})
			if !slices.Equal(got, want) {
				t.Errorf("carol's history across the gap, oldest first:\n got %q\nwant %q", got, want)
			}
		})

		t.Run("concurrent power level changes resolve alike everywhere", func(t *testing.T) {
			pl := stateContent(t, bob, room, "m.room.power_levels", "")
			users, _ := pl["users"].(map[string]any)
			users[alice.UserID] = 100
			bob.Must(t, 200, "PUT", roomPath(room, "/state/m.room.power_levels/"), pl)
			eventually(t, 30*time.Second, "alice promoted on every server", func() bool {
				for _, c := range []*Client{alice, carol} {
					u, _ := stateContent(t, c, room, "m.room.power_levels", "")["users"].(map[string]any)
					if fmt.Sprint(u[alice.UserID]) != "100" {
						return false
					}
				}
				return true
			})

			// alice's change is made while hs2 is down, bob's while hs1 is down: neither
			// server has seen the other's change when it makes its own.
			hs2.Stop()
			fromAlice := stateContent(t, alice, room, "m.room.power_levels", "")
			fromAlice["users"].(map[string]any)[carol.UserID] = 50
			fromAlice["state_default"] = 40
			pa := alice.Must(t, 200, "PUT", roomPath(room, "/state/m.room.power_levels/"), fromAlice).Str("event_id")
			hs1.Stop()
			hs2.Restart(outer)
			fromBob := stateContent(t, bob, room, "m.room.power_levels", "")
			fromBob["users"].(map[string]any)[carol.UserID] = 10
			fromBob["state_default"] = 60
			pb := bob.Must(t, 200, "PUT", roomPath(room, "/state/m.room.power_levels/"), fromBob).Str("event_id")
			hs1.Restart(outer)

			state := sameStateEverywhere(t, room, alice, bob, carol)
			if won := state["m.room.power_levels|"]; won != pa && won != pb {
				t.Fatalf("resolved power levels %s, want one of the concurrent changes %s and %s", won, pa, pb)
			}
			// Every server has both changes: the state was resolved, not merely copied.
			for _, c := range []*Client{alice, bob, carol} {
				for _, id := range []string{pa, pb} {
					eventually(t, 30*time.Second, id+" on "+c.Base, func() bool {
						return c.Do(t, "GET", roomPath(room, "/event/"+url.PathEscape(id)), nil).Status == 200
					})
				}
			}
			// Whichever change won, every server agrees on it and on what it says, and the
			// room keeps working on all three.
			var levels []string
			for _, c := range []*Client{alice, bob, carol} {
				levels = append(levels, fmt.Sprint(stateContent(t, c, room, "m.room.power_levels", "")))
			}
			if levels[0] != levels[1] || levels[1] != levels[2] {
				t.Errorf("power levels differ between servers: %q", levels)
			}
			ev := say(t, carol, room, "after the conflict")
			arrives(t, alice, room, ev, "after the conflict")
			arrives(t, bob, room, ev, "after the conflict")
		})
	})
}
