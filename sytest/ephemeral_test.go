package sytest

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Typing notifications, receipts, profiles and presence on one server and across two, and
// end-to-end encryption keys and to-device messages between users of two servers.

// ephemeralSync is the part of a /sync response these tests read.
type ephemeralSync struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			Ephemeral   syncEvents `json:"ephemeral"`
			AccountData syncEvents `json:"account_data"`
		} `json:"join"`
	} `json:"rooms"`
	ToDevice struct {
		Events []struct {
			Sender  string          `json:"sender"`
			Type    string          `json:"type"`
			Content json.RawMessage `json:"content"`
		} `json:"events"`
	} `json:"to_device"`
}

func ephSync(t *testing.T, c *Client, since string, timeout int) ephemeralSync {
	t.Helper()
	q := "?timeout=" + strconv.Itoa(timeout)
	if since != "" {
		q += "&since=" + url.QueryEscape(since)
	}
	r := c.Must(t, 200, "GET", "/_matrix/client/v3/sync"+q, nil)
	var s ephemeralSync
	if err := json.Unmarshal(r.Raw, &s); err != nil {
		t.Fatalf("sync: %v: %s", err, r.Raw)
	}
	return s
}

// ephemeralOf returns the content of the room's ephemeral event of type typ, nil if none.
func (s ephemeralSync) ephemeralOf(roomID, typ string) map[string]any {
	for _, ev := range s.Rooms.Join[roomID].Ephemeral.Events {
		if ev.Type == typ {
			var c map[string]any
			_ = json.Unmarshal(ev.Content, &c)
			return c
		}
	}
	return nil
}

// waitEphemeral syncs as c from since until the room's ephemeral section has an event of typ
// for which ok holds, and returns the token after it.
func waitEphemeral(t *testing.T, c *Client, since, roomID, typ string, ok func(map[string]any) bool) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		s := ephSync(t, c, since, 2000)
		since = s.NextBatch
		if content := s.ephemeralOf(roomID, typ); content != nil && ok(content) {
			return since
		}
	}
	t.Fatalf("no %s in %s's sync of %s", typ, c.UserID, roomID)
	return ""
}

func typingIs(users ...string) func(map[string]any) bool {
	return func(c map[string]any) bool {
		got, _ := c["user_ids"].([]any)
		if len(got) != len(users) {
			return false
		}
		for i, u := range users {
			if got[i] != u {
				return false
			}
		}
		return true
	}
}

// readBy says whether an m.receipt content holds a receipt of typ by user for eventID.
func readBy(content map[string]any, eventID, typ, user string) bool {
	byType, _ := content[eventID].(map[string]any)
	users, _ := byType[typ].(map[string]any)
	_, ok := users[user]
	return ok
}

func hasReceiptType(raw []byte, typ string) bool { return strings.Contains(string(raw), `"`+typ+`"`) }

func TestTypingAndReceipts(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "alice password")
		bob := Register(t, s, "bob", "bob password")
		room := alice.Must(t, 200, "POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat"}).Str("room_id")
		bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{})
		ev := say(t, alice, room, "read me")
		bobSince := ephSync(t, bob, "", 0).NextBatch

		t.Run("typing reaches sync and times out", func(t *testing.T) {
			// A long-poll waiting when alice starts typing is woken.
			done := make(chan ephemeralSync, 1)
			go func() { done <- ephSync(t, bob, bobSince, 10000) }()
			time.Sleep(300 * time.Millisecond)
			alice.Must(t, 200, "PUT", roomPath(room, "/typing/"+url.PathEscape(alice.UserID)), map[string]any{"typing": true, "timeout": 1500})
			got := <-done
			if c := got.ephemeralOf(room, "m.typing"); c == nil || !typingIs(alice.UserID)(c) {
				t.Fatalf("long-poll woke without alice typing: %+v", got.Rooms.Join[room])
			}
			bobSince = waitEphemeral(t, bob, got.NextBatch, room, "m.typing", typingIs())
		})

		t.Run("typing refused for others and outsiders", func(t *testing.T) {
			alice.MustErr(t, 403, "M_FORBIDDEN", "PUT", roomPath(room, "/typing/"+url.PathEscape(bob.UserID)), map[string]any{"typing": true})
			carol := Register(t, s, "carol", "carol password")
			carol.MustErr(t, 403, "M_FORBIDDEN", "PUT", roomPath(room, "/typing/"+url.PathEscape(carol.UserID)), map[string]any{"typing": true})
		})

		t.Run("public and private receipts", func(t *testing.T) {
			bob.Must(t, 200, "POST", roomPath(room, "/receipt/m.read.private/"+url.PathEscape(ev)), map[string]any{})
			// Bob sees his own private receipt.
			bobSync := waitEphemeral(t, bob, bobSince, room, "m.receipt", func(c map[string]any) bool {
				return readBy(c, ev, "m.read.private", bob.UserID)
			})
			// Alice never does: her sync from the start shows no private receipt.
			full := alice.Must(t, 200, "GET", "/_matrix/client/v3/sync", nil)
			if hasReceiptType(full.Raw, "m.read.private") {
				t.Fatalf("alice sees bob's private receipt: %s", full.Raw)
			}
			bob.Must(t, 200, "POST", roomPath(room, "/receipt/m.read/"+url.PathEscape(ev)), map[string]any{"thread_id": "main"})
			waitEphemeral(t, alice, "", room, "m.receipt", func(c map[string]any) bool { return readBy(c, ev, "m.read", bob.UserID) })
			if full := alice.Must(t, 200, "GET", "/_matrix/client/v3/sync", nil); hasReceiptType(full.Raw, "m.read.private") {
				t.Fatalf("alice sees bob's private receipt: %s", full.Raw)
			}
			bob.MustErr(t, 400, "M_INVALID_PARAM", "POST", roomPath(room, "/receipt/m.read/"+url.PathEscape(ev)), map[string]any{"thread_id": ""})
			bob.MustErr(t, 400, "M_INVALID_PARAM", "POST", roomPath(room, "/receipt/m.unknown/"+url.PathEscape(ev)), map[string]any{})
			bobSince = bobSync
		})

		t.Run("read markers", func(t *testing.T) {
			bob.Must(t, 200, "POST", roomPath(room, "/read_markers"), map[string]any{"m.fully_read": ev, "m.read": ev})
			r := bob.Must(t, 200, "GET", "/_matrix/client/v3/user/"+url.PathEscape(bob.UserID)+"/rooms/"+url.PathEscape(room)+"/account_data/m.fully_read", nil)
			if r.Str("event_id") != ev {
				t.Fatalf("m.fully_read: %s", r.Raw)
			}
		})

		t.Run("profiles and their privacy", func(t *testing.T) {
			alice.Must(t, 200, "PUT", "/_matrix/client/v3/profile/"+url.PathEscape(alice.UserID)+"/displayname", map[string]any{"displayname": "Alice A."})
			r := bob.Must(t, 200, "GET", "/_matrix/client/v3/profile/"+url.PathEscape(alice.UserID), nil)
			if r.Str("displayname") != "Alice A." {
				t.Fatalf("profile as seen by bob: %s", r.Raw)
			}
			// The membership event of her room carries the new name.
			m := bob.Must(t, 200, "GET", roomPath(room, "/state/m.room.member/"+url.PathEscape(alice.UserID)), nil)
			if m.Str("displayname") != "Alice A." || m.Str("membership") != "join" {
				t.Fatalf("alice's membership after the change: %s", m.Raw)
			}
			dave := Register(t, s, "dave", "dave password")
			dave.MustErr(t, 403, "M_FORBIDDEN", "GET", "/_matrix/client/v3/profile/"+url.PathEscape(alice.UserID), nil)
			dave.MustErr(t, 403, "M_FORBIDDEN", "GET", "/_matrix/client/v3/profile/"+url.PathEscape(alice.UserID)+"/displayname", nil)
			Anonymous(s).MustErr(t, 403, "M_FORBIDDEN", "GET", "/_matrix/client/v3/profile/"+url.PathEscape(alice.UserID), nil)
			alice.Must(t, 200, "GET", "/_matrix/client/v3/profile/"+url.PathEscape(alice.UserID)+"/displayname", nil)
			bob.MustErr(t, 403, "M_FORBIDDEN", "PUT", "/_matrix/client/v3/profile/"+url.PathEscape(alice.UserID)+"/displayname", map[string]any{"displayname": "x"})
			alice.MustErr(t, 400, "M_INVALID_PARAM", "PUT", "/_matrix/client/v3/profile/"+url.PathEscape(alice.UserID)+"/avatar_url", map[string]any{"avatar_url": "https://example.org/a.png"})
		})

		t.Run("presence is off by default", func(t *testing.T) {
			alice.Must(t, 200, "PUT", "/_matrix/client/v3/presence/"+url.PathEscape(alice.UserID)+"/status", map[string]any{"presence": "online", "status_msg": "here"})
			r := bob.Must(t, 200, "GET", "/_matrix/client/v3/presence/"+url.PathEscape(alice.UserID)+"/status", nil)
			if r.Str("presence") != "offline" || r.Body["status_msg"] != nil {
				t.Fatalf("presence while disabled: %s", r.Raw)
			}
			alice.MustErr(t, 403, "M_FORBIDDEN", "PUT", "/_matrix/client/v3/presence/"+url.PathEscape(bob.UserID)+"/status", map[string]any{"presence": "online"})
			alice.MustErr(t, 400, "M_INVALID_PARAM", "PUT", "/_matrix/client/v3/presence/"+url.PathEscape(alice.UserID)+"/status", map[string]any{"presence": "asleep"})
		})
	})
}

func TestFederationEphemeralAndKeys(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		hs1, hs2, _ := roomFedPair(t, dbURL)
		alice := Register(t, hs1, "alice", "correct horse battery")
		bob := Register(t, hs2, "bob", "correct horse battery")
		carol := Register(t, hs2, "carol", "correct horse battery")
		room := alice.Must(t, 200, "POST", "/_matrix/client/v3/createRoom", map[string]any{
			"preset": "public_chat", "room_version": "11",
		}).Str("room_id")
		bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{})
		membershipIs(t, alice, room, bob.UserID, "join")
		ev := say(t, alice, room, "over there")
		arrives(t, bob, room, ev, "over there")

		t.Run("typing across servers", func(t *testing.T) {
			since := ephSync(t, bob, "", 0).NextBatch
			alice.Must(t, 200, "PUT", roomPath(room, "/typing/"+url.PathEscape(alice.UserID)), map[string]any{"typing": true, "timeout": 20000})
			since = waitEphemeral(t, bob, since, room, "m.typing", typingIs(alice.UserID))
			alice.Must(t, 200, "PUT", roomPath(room, "/typing/"+url.PathEscape(alice.UserID)), map[string]any{"typing": false})
			waitEphemeral(t, bob, since, room, "m.typing", typingIs())
		})

		t.Run("receipts across servers, private ones stay home", func(t *testing.T) {
			fromBob := say(t, bob, room, "from hs2")
			arrives(t, alice, room, fromBob, "from hs2")
			alice.Must(t, 200, "POST", roomPath(room, "/receipt/m.read.private/"+url.PathEscape(fromBob)), map[string]any{})
			alice.Must(t, 200, "POST", roomPath(room, "/receipt/m.read/"+url.PathEscape(ev)), map[string]any{})
			waitEphemeral(t, bob, "", room, "m.receipt", func(c map[string]any) bool { return readBy(c, ev, "m.read", alice.UserID) })
			if full := bob.Must(t, 200, "GET", "/_matrix/client/v3/sync", nil); hasReceiptType(full.Raw, "m.read.private") {
				t.Fatalf("a private receipt crossed servers: %s", full.Raw)
			}
			bob.Must(t, 200, "POST", roomPath(room, "/receipt/m.read/"+url.PathEscape(fromBob)), map[string]any{})
			waitEphemeral(t, alice, "", room, "m.receipt", func(c map[string]any) bool { return readBy(c, fromBob, "m.read", bob.UserID) })
		})

		t.Run("remote profiles follow the privacy setting", func(t *testing.T) {
			alice.Must(t, 200, "PUT", "/_matrix/client/v3/profile/"+url.PathEscape(alice.UserID)+"/displayname", map[string]any{"displayname": "Alice of hs1"})
			r := bob.Must(t, 200, "GET", "/_matrix/client/v3/profile/"+url.PathEscape(alice.UserID), nil)
			if r.Str("displayname") != "Alice of hs1" {
				t.Fatalf("alice's profile from hs2: %s", r.Raw)
			}
			carol.MustErr(t, 403, "M_FORBIDDEN", "GET", "/_matrix/client/v3/profile/"+url.PathEscape(alice.UserID), nil)
		})

		aliceDev := newOlmDevice(t, alice)
		bobDev := newOlmDevice(t, bob)
		aliceDev.uploadKeys(t, 2)
		bobDev.uploadKeys(t, 2)

		t.Run("remote keys query and claim", func(t *testing.T) {
			r := alice.Must(t, 200, "POST", "/_matrix/client/v3/keys/query", map[string]any{"device_keys": map[string]any{bob.UserID: []string{}}})
			var q struct {
				Failures   map[string]any                       `json:"failures"`
				DeviceKeys map[string]map[string]map[string]any `json:"device_keys"`
			}
			if err := json.Unmarshal(r.Raw, &q); err != nil {
				t.Fatal(err)
			}
			if len(q.Failures) != 0 || q.DeviceKeys[bob.UserID][bob.DeviceID] == nil {
				t.Fatalf("bob's keys from hs1: %s", r.Raw)
			}
			c := alice.Must(t, 200, "POST", "/_matrix/client/v3/keys/claim", map[string]any{
				"one_time_keys": map[string]any{bob.UserID: map[string]string{bob.DeviceID: "signed_curve25519"}},
			})
			var cl struct {
				Failures    map[string]any                       `json:"failures"`
				OneTimeKeys map[string]map[string]map[string]any `json:"one_time_keys"`
			}
			if err := json.Unmarshal(c.Raw, &cl); err != nil {
				t.Fatal(err)
			}
			if len(cl.Failures) != 0 || len(cl.OneTimeKeys[bob.UserID][bob.DeviceID]) != 1 {
				t.Fatalf("claiming bob's key from hs1: %s", c.Raw)
			}
			// And the other way round.
			r = bob.Must(t, 200, "POST", "/_matrix/client/v3/keys/query", map[string]any{"device_keys": map[string]any{alice.UserID: []string{}}})
			if !strings.Contains(string(r.Raw), alice.DeviceID) {
				t.Fatalf("alice's keys from hs2: %s", r.Raw)
			}
		})

		t.Run("a new device of a remote user is announced", func(t *testing.T) {
			since := ephSync(t, alice, "", 0).NextBatch
			bob2, _ := Login(t, hs2, "bob", "correct horse battery", nil)
			newOlmDevice(t, bob2).uploadKeys(t, 1)
			eventually(t, 30*time.Second, "bob's new device on hs1", func() bool {
				s := alice.Must(t, 200, "GET", "/_matrix/client/v3/sync?timeout=1000&since="+url.QueryEscape(since), nil)
				var d struct {
					NextBatch   string `json:"next_batch"`
					DeviceLists struct {
						Changed []string `json:"changed"`
					} `json:"device_lists"`
				}
				_ = json.Unmarshal(s.Raw, &d)
				since = d.NextBatch
				for _, u := range d.DeviceLists.Changed {
					if u == bob.UserID {
						return true
					}
				}
				return false
			})
			// The login announces the device before its keys are uploaded, so the first change
			// alice sees may be that one: like a client, she queries again after each change.
			eventually(t, 30*time.Second, "bob's new device in hs1's /keys/query", func() bool {
				r := alice.Must(t, 200, "POST", "/_matrix/client/v3/keys/query", map[string]any{"device_keys": map[string]any{bob.UserID: []string{}}})
				return strings.Contains(string(r.Raw), bob2.DeviceID)
			})
		})

		t.Run("to-device message across servers", func(t *testing.T) {
			since := ephSync(t, bob, "", 0).NextBatch
			alice.Must(t, 200, "PUT", "/_matrix/client/v3/sendToDevice/m.test.hello/txn1", map[string]any{
				"messages": map[string]any{bob.UserID: map[string]any{bob.DeviceID: map[string]any{"hello": "from hs1"}}},
			})
			eventually(t, 30*time.Second, "the to-device message on hs2", func() bool {
				s := ephSync(t, bob, since, 1000)
				for _, e := range s.ToDevice.Events {
					if e.Type == "m.test.hello" && e.Sender == alice.UserID && strings.Contains(string(e.Content), "from hs1") {
						return true
					}
				}
				if len(s.ToDevice.Events) == 0 {
					since = s.NextBatch
				}
				return false
			})
		})
	})
}
