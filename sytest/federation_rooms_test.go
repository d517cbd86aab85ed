package sytest

import (
	"fmt"
	"net/url"
	"os"
	"slices"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// Rooms across two Myelin servers under the test CA: remote joins (by room id, through an
// invite, by alias), messages both ways, invites and their rejection, leaving, and a server
// that is down (and one that restarts) while messages are sent.

// roomFedPair starts hs1.test and hs2.test, each knowing where the other listens, on the
// backend of dbURL ("" for SQLite; otherwise each server gets its own PostgreSQL database).
func roomFedPair(t *testing.T, dbURL string) (hs1, hs2 *Server, ca *CA) {
	t.Helper()
	ca = NewCA(t)
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
	// hs1 learns hs2's address only now that hs2 listens: rewrite its configuration and restart.
	setStaticHost(t, hs1, "hs2.test", fedAddr(hs2))
	hs1.Restart(t)
	return hs1, hs2, ca
}

func setStaticHost(t *testing.T, s *Server, name, addr string) {
	t.Helper()
	raw, err := os.ReadFile(s.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	fed, _ := cfg["federation"].(map[string]any)
	if fed == nil {
		fed = map[string]any{}
		cfg["federation"] = fed
	}
	hosts, _ := fed["static_hosts"].(map[string]any)
	if hosts == nil {
		hosts = map[string]any{}
		fed["static_hosts"] = hosts
	}
	hosts[name] = addr
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.ConfigPath, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

func roomPath(roomID, rest string) string {
	return "/_matrix/client/v3/rooms/" + url.PathEscape(roomID) + rest
}

var fedTxn int

// say sends a text message and returns its event id.
func say(t *testing.T, c *Client, roomID, body string) string {
	t.Helper()
	fedTxn++
	r := c.Must(t, 200, "PUT", roomPath(roomID, fmt.Sprintf("/send/m.room.message/fedrooms%d", fedTxn)),
		map[string]any{"msgtype": "m.text", "body": body})
	return r.Str("event_id")
}

// eventually polls fn every 100ms until it returns true or limit passes.
func eventually(t *testing.T, limit time.Duration, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// arrives waits until c can read the event with the given body through the client API.
func arrives(t *testing.T, c *Client, roomID, eventID, body string) {
	t.Helper()
	eventually(t, 30*time.Second, "event "+eventID+" ("+body+") on "+c.Base, func() bool {
		r := c.Do(t, "GET", roomPath(roomID, "/event/"+url.PathEscape(eventID)), nil)
		if r.Status != 200 {
			return false
		}
		content, _ := r.Body["content"].(map[string]any)
		if got, _ := content["body"].(string); got != body {
			t.Fatalf("event %s has body %q, want %q", eventID, got, body)
		}
		return true
	})
}

// membershipIs waits until c sees user's membership of the room as want.
func membershipIs(t *testing.T, c *Client, roomID, user, want string) {
	t.Helper()
	eventually(t, 30*time.Second, user+" "+want+" as "+c.Base+" sees it", func() bool {
		r := c.Do(t, "GET", roomPath(roomID, "/state/m.room.member/"+url.PathEscape(user)), nil)
		return r.Status == 200 && r.Str("membership") == want
	})
}

func TestFederationRooms(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		hs1, hs2, _ := roomFedPair(t, dbURL)
		// Servers restarted inside a subtest are started with this t: the harness stops a
		// server when the test that started it ends.
		outer := t
		alice := Register(t, hs1, "alice", "correct horse battery")
		bob := Register(t, hs2, "bob", "correct horse battery")
		carol := Register(t, hs2, "carol", "correct horse battery")

		var public string
		t.Run("join by room id, messages both ways", func(t *testing.T) {
			// Room version 11: the room id names hs1, which is all bob's server needs to know.
			public = alice.Must(t, 200, "POST", "/_matrix/client/v3/createRoom", map[string]any{
				"preset": "public_chat", "room_version": "11", "name": "over the wire",
			}).Str("room_id")
			say(t, alice, public, "before bob") // a prev event of bob's join, not in its state
			bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(public), map[string]any{})
			membershipIs(t, alice, public, bob.UserID, "join")
			// The room as joined: its state. (History from before the join needs backfill.)
			r := bob.Must(t, 200, "GET", roomPath(public, "/state/m.room.name/"), nil)
			if r.Str("name") != "over the wire" {
				t.Errorf("room name on hs2: %s", r.Raw)
			}

			fromAlice := say(t, alice, public, "hello from hs1")
			arrives(t, bob, public, fromAlice, "hello from hs1")
			fromBob := say(t, bob, public, "hello from hs2")
			arrives(t, alice, public, fromBob, "hello from hs2")
		})

		var private string
		t.Run("invite across servers, then join", func(t *testing.T) {
			// The default room version (12) has no server in its room id: bob's server joins
			// through the server that invited him.
			private = alice.Must(t, 200, "POST", "/_matrix/client/v3/createRoom", map[string]any{
				"preset": "private_chat", "name": "invite only",
			}).Str("room_id")
			alice.Must(t, 200, "POST", roomPath(private, "/invite"), map[string]any{"user_id": bob.UserID})
			membershipIs(t, alice, private, bob.UserID, "invite")
			bob.Must(t, 200, "POST", roomPath(private, "/join"), map[string]any{})
			membershipIs(t, alice, private, bob.UserID, "join")
			ev := say(t, bob, private, "thanks for the invite")
			arrives(t, alice, private, ev, "thanks for the invite")
			ev = say(t, alice, private, "welcome")
			arrives(t, bob, private, ev, "welcome")
		})

		t.Run("reject a remote invite", func(t *testing.T) {
			alice.Must(t, 200, "POST", roomPath(private, "/invite"), map[string]any{"user_id": carol.UserID})
			membershipIs(t, alice, private, carol.UserID, "invite")
			// hs2 is in the room (bob): the invite reaches it in a transaction too.
			membershipIs(t, bob, private, carol.UserID, "invite")
			carol.Must(t, 200, "POST", roomPath(private, "/leave"), map[string]any{})
			membershipIs(t, alice, private, carol.UserID, "leave")
		})

		t.Run("leave", func(t *testing.T) {
			bob.Must(t, 200, "POST", roomPath(public, "/leave"), map[string]any{})
			membershipIs(t, alice, public, bob.UserID, "leave")
			// hs2 has no one left in the room: alice's messages no longer go there, and the
			// room keeps working for hs1.
			say(t, alice, public, "bob has gone")
		})

		t.Run("reject a remote invite to a room hs2 is not in", func(t *testing.T) {
			// Nobody of hs2 is in the public room now: the rejection goes through make_leave
			// and send_leave with hs1.
			alice.Must(t, 200, "POST", roomPath(public, "/invite"), map[string]any{"user_id": carol.UserID})
			carol.Must(t, 200, "POST", roomPath(public, "/leave"), map[string]any{})
			membershipIs(t, alice, public, carol.UserID, "leave")
		})

		t.Run("reject an invite when the inviting server is down", func(t *testing.T) {
			room := alice.Must(t, 200, "POST", "/_matrix/client/v3/createRoom", map[string]any{
				"preset": "private_chat", "invite": []string{carol.UserID},
			}).Str("room_id")
			hs1.Stop()
			// The rejection is local only: carol no longer has the invite, so joining fails.
			carol.Must(t, 200, "POST", roomPath(room, "/leave"), map[string]any{})
			r := carol.Do(t, "POST", roomPath(room, "/join"), map[string]any{})
			if r.Status == 200 {
				t.Errorf("joined a room whose invite was rejected, with its server down: %s", r.Raw)
			}
			hs1.Restart(outer)
			alice.Base = hs1.ClientURL
		})

		t.Run("join by alias", func(t *testing.T) {
			alias := "#wire:hs1.test"
			alice.Must(t, 200, "PUT", "/_matrix/client/v3/directory/room/"+url.PathEscape(alias), map[string]any{"room_id": public})
			// hs2 asks hs1 for its alias.
			d := bob.Must(t, 200, "GET", "/_matrix/client/v3/directory/room/"+url.PathEscape(alias), nil)
			if servers, _ := d.Body["servers"].([]any); d.Str("room_id") != public || !slices.Contains(servers, any("hs1.test")) {
				t.Errorf("remote alias through the directory: %s", d.Raw)
			}
			bob.MustErr(t, 404, "M_NOT_FOUND", "GET", "/_matrix/client/v3/directory/room/"+url.PathEscape("#nowhere:hs1.test"), nil)
			r := bob.Do(t, "POST", "/_matrix/client/v3/join/"+url.PathEscape(alias), map[string]any{"reason": "by alias"})
			if r.Status != 200 || r.Str("room_id") != public {
				t.Fatalf("join by alias: %d %s", r.Status, r.Raw)
			}
			membershipIs(t, alice, public, bob.UserID, "join")
			// The reason went into the event hs2 built from hs1's make_join template.
			m := alice.Must(t, 200, "GET", roomPath(public, "/state/m.room.member/"+url.PathEscape(bob.UserID)), nil)
			if m.Str("reason") != "by alias" {
				t.Errorf("remote join reason: %s", m.Raw)
			}
		})

		t.Run("a server that is down catches up", func(t *testing.T) {
			hs2.Stop()
			while := say(t, alice, private, "sent while hs2 is down")
			// The sending server restarts too: its queue is in the database.
			hs1.Restart(outer)
			alice.Base = hs1.ClientURL
			after := say(t, alice, private, "sent after hs1 restarted")
			hs2.Restart(outer)
			bob.Base = hs2.ClientURL
			// bob talking makes hs2 contact hs1, which retries its queue for hs2 at once.
			ev := say(t, bob, private, "back again")
			arrives(t, alice, private, ev, "back again")
			arrives(t, bob, private, while, "sent while hs2 is down")
			arrives(t, bob, private, after, "sent after hs1 restarted")
		})
	})
}
