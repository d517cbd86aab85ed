package sytest

import (
	"encoding/json"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// Presence: off by default (nothing shown, sent or taken), and on: set through PUT and /sync,
// shown to users who share a room and refused to others, and carried between two servers.

var presenceOn = map[string]any{"presence": map[string]any{"enabled": true}}

// presenceEvent is an m.presence event of /sync.
type presenceEvent struct {
	Type    string         `json:"type"`
	Sender  string         `json:"sender"`
	Content map[string]any `json:"content"`
}

// presenceSync syncs as c from since (with extra query parameters) and returns the presence
// events and the next token.
func presenceSync(t *testing.T, c *Client, since string, timeout int, extra string) ([]presenceEvent, string) {
	t.Helper()
	q := "?timeout=" + strconv.Itoa(timeout) + extra
	if since != "" {
		q += "&since=" + url.QueryEscape(since)
	}
	r := c.Must(t, 200, "GET", "/_matrix/client/v3/sync"+q, nil)
	var s struct {
		NextBatch string `json:"next_batch"`
		Presence  struct {
			Events []presenceEvent `json:"events"`
		} `json:"presence"`
	}
	if err := json.Unmarshal(r.Raw, &s); err != nil {
		t.Fatalf("sync: %v: %s", err, r.Raw)
	}
	for _, ev := range s.Presence.Events {
		if ev.Type != "m.presence" || ev.Sender == "" || ev.Content["presence"] == nil {
			t.Fatalf("malformed presence event: %s", r.Raw)
		}
	}
	return s.Presence.Events, s.NextBatch
}

// presenceOf returns the content of user's last presence event in evs, nil if none.
func presenceOf(evs []presenceEvent, user string) map[string]any {
	var out map[string]any
	for _, ev := range evs {
		if ev.Sender == user {
			out = ev.Content
		}
	}
	return out
}

// waitPresence syncs as c from since until user's presence satisfies ok, and returns it and
// the token after it.
func waitPresence(t *testing.T, c *Client, since, user string, ok func(map[string]any) bool) (map[string]any, string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		evs, next := presenceSync(t, c, since, 2000, "")
		since = next
		if p := presenceOf(evs, user); p != nil && ok(p) {
			return p, since
		}
	}
	t.Fatalf("%s never saw the expected presence of %s", c.UserID, user)
	return nil, ""
}

func presenceIs(state, msg string) func(map[string]any) bool {
	return func(p map[string]any) bool {
		got, _ := p["status_msg"].(string)
		return p["presence"] == state && got == msg
	}
}

func presencePath(user string) string {
	return "/_matrix/client/v3/presence/" + url.PathEscape(user) + "/status"
}

func TestPresence(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL, Config: presenceOn})
		alice := Register(t, s, "alice", "alice password")
		bob := Register(t, s, "bob", "bob password")
		carol := Register(t, s, "carol", "carol password") // shares no room
		dave := Register(t, s, "dave", "dave password")
		room := alice.Must(t, 200, "POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat"}).Str("room_id")
		bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{})
		dave.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{})
		_, bobSince := presenceSync(t, bob, "", 0, "")

		t.Run("set with status_msg, seen by a room member through sync and GET", func(t *testing.T) {
			// A long-poll waiting when alice sets her presence is woken.
			type result struct {
				evs  []presenceEvent
				next string
			}
			done := make(chan result, 1)
			go func() {
				evs, next := presenceSync(t, bob, bobSince, 20000, "&set_presence=offline")
				done <- result{evs, next}
			}()
			time.Sleep(300 * time.Millisecond)
			started := time.Now()
			alice.Must(t, 200, "PUT", presencePath(alice.UserID), map[string]any{"presence": "online", "status_msg": "baking"})
			got := <-done
			if time.Since(started) > 10*time.Second {
				t.Fatalf("the long-poll was not woken by the change")
			}
			p := presenceOf(got.evs, alice.UserID)
			if p == nil {
				_, bobSince = waitPresence(t, bob, got.next, alice.UserID, presenceIs("online", "baking"))
			} else if !presenceIs("online", "baking")(p) || p["currently_active"] != true {
				t.Fatalf("alice's presence in bob's sync: %v", p)
			} else {
				bobSince = got.next
			}
			r := bob.Must(t, 200, "GET", presencePath(alice.UserID), nil)
			if r.Str("presence") != "online" || r.Str("status_msg") != "baking" || r.Body["currently_active"] != true {
				t.Fatalf("GET alice's presence as bob: %s", r.Raw)
			}
			if ago, ok := r.Body["last_active_ago"].(float64); !ok || ago < 0 || ago > 60000 {
				t.Fatalf("last_active_ago: %s", r.Raw)
			}
			own := alice.Must(t, 200, "GET", presencePath(alice.UserID), nil)
			if own.Str("presence") != "online" {
				t.Fatalf("alice's own presence: %s", own.Raw)
			}
		})

		t.Run("a stranger gets 403 and sees nothing", func(t *testing.T) {
			carol.MustErr(t, 403, "M_FORBIDDEN", "GET", presencePath(alice.UserID), nil)
			evs, _ := presenceSync(t, carol, "", 0, "&set_presence=offline")
			if presenceOf(evs, alice.UserID) != nil {
				t.Fatalf("carol sees alice's presence: %+v", evs)
			}
			bob.MustErr(t, 403, "M_FORBIDDEN", "PUT", presencePath(alice.UserID), map[string]any{"presence": "offline"})
			alice.MustErr(t, 400, "M_INVALID_PARAM", "PUT", presencePath(alice.UserID), map[string]any{"presence": "asleep"})
			alice.MustErr(t, 400, "M_INVALID_PARAM", "GET", "/_matrix/client/v3/sync?set_presence=asleep", nil)
		})

		t.Run("the presence filter applies", func(t *testing.T) {
			filter := url.QueryEscape(`{"presence":{"not_senders":["` + alice.UserID + `"]}}`)
			evs, _ := presenceSync(t, bob, "", 0, "&set_presence=offline&filter="+filter)
			if presenceOf(evs, alice.UserID) != nil {
				t.Fatalf("a filtered-out sender's presence: %+v", evs)
			}
			evs, _ = presenceSync(t, bob, "", 0, "&set_presence=offline")
			if !presenceIs("online", "baking")(presenceOf(evs, alice.UserID)) {
				t.Fatalf("initial sync without the filter: %+v", evs)
			}
		})

		t.Run("set_presence on sync", func(t *testing.T) {
			// set_presence=offline: dave's syncs do not make him online.
			for range 2 {
				presenceSync(t, dave, "", 0, "&set_presence=offline")
			}
			if r := bob.Must(t, 200, "GET", presencePath(dave.UserID), nil); r.Str("presence") != "offline" {
				t.Fatalf("dave after set_presence=offline syncs: %s", r.Raw)
			}
			evs, _ := presenceSync(t, bob, bobSince, 0, "&set_presence=offline")
			if p := presenceOf(evs, dave.UserID); p != nil && p["presence"] != "offline" {
				t.Fatalf("dave's presence after set_presence=offline syncs: %v", p)
			}
			// set_presence=unavailable marks him idle; a plain sync does not undo that.
			presenceSync(t, dave, "", 0, "&set_presence=unavailable")
			_, bobSince = waitPresence(t, bob, bobSince, dave.UserID, presenceIs("unavailable", ""))
			// Sending a message is activity: he is online.
			say(t, dave, room, "back")
			_, bobSince = waitPresence(t, bob, bobSince, dave.UserID, func(p map[string]any) bool {
				return p["presence"] == "online" && p["currently_active"] == true
			})
			// alice goes offline explicitly, and bob is told.
			alice.Must(t, 200, "PUT", presencePath(alice.UserID), map[string]any{"presence": "offline"})
			_, bobSince = waitPresence(t, bob, bobSince, alice.UserID, presenceIs("offline", ""))
			// A plain sync (set_presence defaults to online) brings her back.
			presenceSync(t, alice, "", 0, "")
			waitPresence(t, bob, bobSince, alice.UserID, presenceIs("online", ""))
		})
	})
}

// TestPresenceOffAndFederation runs hs1 with presence off and hs2 with it on: nothing crosses
// either way and hs1 shows nothing; then hs1 turns presence on and a remote user's presence
// arrives both ways.
func TestPresenceOffAndFederation(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		hs1, hs2 := presenceFedPair(t, dbURL)
		alice := Register(t, hs1, "alice", "correct horse battery")
		ann := Register(t, hs1, "ann", "correct horse battery")
		bob := Register(t, hs2, "bob", "correct horse battery")
		room := alice.Must(t, 200, "POST", "/_matrix/client/v3/createRoom", map[string]any{
			"preset": "public_chat", "room_version": "11",
		}).Str("room_id")
		ann.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{})
		bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{})
		membershipIs(t, alice, room, bob.UserID, "join")

		t.Run("off: nothing shown, sent or taken", func(t *testing.T) {
			_, annSince := presenceSync(t, ann, "", 0, "")
			_, bobSince := presenceSync(t, bob, "", 0, "")
			alice.Must(t, 200, "PUT", presencePath(alice.UserID), map[string]any{"presence": "online", "status_msg": "hidden"})
			if r := ann.Must(t, 200, "GET", presencePath(alice.UserID), nil); r.Str("presence") != "offline" || r.Body["status_msg"] != nil {
				t.Fatalf("presence while disabled: %s", r.Raw)
			}
			// bob (hs2, presence on) syncs and speaks: hs2 sends his presence to hs1.
			presenceSync(t, bob, "", 0, "")
			ev := say(t, bob, room, "hello from hs2")
			arrives(t, alice, room, ev, "hello from hs2")
			ev = say(t, alice, room, "hello from hs1")
			arrives(t, bob, room, ev, "hello from hs1")
			time.Sleep(time.Second) // any EDU queued with the messages has been delivered
			evs, next := presenceSync(t, ann, annSince, 0, "")
			if len(evs) != 0 {
				t.Fatalf("hs1 with presence off shows presence: %+v", evs)
			}
			if n := strings.Count(next, "_") + 1; n != 7 {
				t.Fatalf("hs1's sync token changed form with presence off: %q", next)
			}
			if r := alice.Must(t, 200, "GET", presencePath(bob.UserID), nil); r.Str("presence") != "offline" {
				t.Fatalf("hs1 took bob's presence: %s", r.Raw)
			}
			evs, _ = presenceSync(t, bob, bobSince, 0, "")
			if presenceOf(evs, alice.UserID) != nil {
				t.Fatalf("hs1 with presence off sent alice's presence: %+v", evs)
			}
			if r := bob.Must(t, 200, "GET", presencePath(alice.UserID), nil); r.Str("presence") != "offline" {
				t.Fatalf("hs2 knows alice's presence: %s", r.Raw)
			}
		})

		t.Run("on: a remote user's presence arrives", func(t *testing.T) {
			setPresenceConfig(t, hs1, true)
			hs1.Restart(t)
			_, bobSince := presenceSync(t, bob, "", 0, "")
			alice.Must(t, 200, "PUT", presencePath(alice.UserID), map[string]any{"presence": "online", "status_msg": "from hs1"})
			waitPresence(t, bob, bobSince, alice.UserID, presenceIs("online", "from hs1"))
			eventually(t, 30*time.Second, "alice's presence through GET on hs2", func() bool {
				r := bob.Must(t, 200, "GET", presencePath(alice.UserID), nil)
				return r.Str("presence") == "online" && r.Str("status_msg") == "from hs1"
			})
			// And the other way: bob comes online on hs2, ann on hs1 sees it.
			bob.Must(t, 200, "PUT", presencePath(bob.UserID), map[string]any{"presence": "unavailable", "status_msg": "from hs2"})
			waitPresence(t, ann, "", bob.UserID, presenceIs("unavailable", "from hs2"))
		})
	})
}

// presenceFedPair starts hs1 with presence off and hs2 with it on, each knowing the other.
func presenceFedPair(t *testing.T, dbURL string) (hs1, hs2 *Server) {
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
		"presence":   map[string]any{"enabled": true},
	}})
	setStaticHost(t, hs1, "hs2.test", fedAddr(hs2))
	hs1.Restart(t)
	return hs1, hs2
}

// setPresenceConfig rewrites a server's presence.enabled; restart it to apply.
func setPresenceConfig(t *testing.T, s *Server, enabled bool) {
	t.Helper()
	raw, err := os.ReadFile(s.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["presence"] = map[string]any{"enabled": enabled}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.ConfigPath, out, 0o600); err != nil {
		t.Fatal(err)
	}
}
