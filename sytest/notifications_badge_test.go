package sytest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"
)

// Badge updates: when a user reads (receipts, read markers, their own message) their pushers
// get a notification with only counts, so that the app's badge follows (push gateway API).
func TestPushBadgeUpdates(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		hs := Start(t, Options{DatabaseURL: dbURL, Config: map[string]any{"push": map[string]any{"allow_private_addresses": true}}})
		alice := Register(t, hs, "alice", "correct horse battery")
		bob := Register(t, hs, "bob", "correct horse battery")
		room := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Secret plans"})
		bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{})
		gw := newPushGatewayStub(t)
		setTestPusher(t, bob, "bob-key", map[string]any{"url": gw.url(), "custom": "kept"})

		// eventPush waits for the notification of ev and checks the count it carries.
		eventPush := func(ev string, unread int) {
			t.Helper()
			n, raw := gw.next(t)
			if n["event_id"] != ev {
				t.Fatalf("expected the notification of %s, got %s", ev, raw)
			}
			if got := unreadOf(n); got != unread {
				t.Fatalf("unread %d, want %d: %s", got, unread, raw)
			}
		}
		// badgePush waits for a counts-only notification and checks it.
		badgePush := func(unread int) {
			t.Helper()
			n, raw := gw.next(t)
			for k := range n {
				switch k {
				case "counts", "devices", "prio":
				default:
					t.Fatalf("a badge update carries %s: %s", k, raw)
				}
			}
			if n["prio"] != "low" {
				t.Fatalf("badge update prio: %s", raw)
			}
			if got := unreadOf(n); got != unread {
				t.Fatalf("badge unread %d, want %d: %s", got, unread, raw)
			}
			c, _ := n["counts"].(map[string]any)
			if unread == 0 && len(c) != 0 {
				t.Fatalf("zero counts must be omitted: %s", raw)
			}
			devs, _ := n["devices"].([]any)
			if len(devs) != 1 {
				t.Fatalf("badge devices: %s", raw)
			}
			dev := devs[0].(map[string]any)
			data, _ := dev["data"].(map[string]any)
			if dev["app_id"] != "org.example.app" || dev["pushkey"] != "bob-key" || dev["pushkey_ts"] == nil ||
				data["custom"] != "kept" || data["url"] != nil {
				t.Fatalf("badge device: %s", raw)
			}
		}

		one := notifSend(t, alice, room, notifText("one"))
		eventPush(one, 1)
		// A public receipt clears the badge: counts {}.
		notifReceipt(t, bob, room, "m.read", one, nil)
		badgePush(0)

		two := notifSend(t, alice, room, notifText("two"))
		eventPush(two, 1)
		three := notifSend(t, alice, room, notifText("three"))
		eventPush(three, 2)
		// A private receipt too, and the count is the user's total.
		notifReceipt(t, bob, room, "m.read.private", two, nil)
		badgePush(1)
		// A receipt that changes nothing sends nothing: the next thing the gateway gets is the
		// next event's notification.
		notifReceipt(t, bob, room, "m.read", two, nil)
		time.Sleep(time.Second) // past the server's gathering of reads (200 ms)
		four := notifSend(t, alice, room, notifText("four"))
		eventPush(four, 2)
		// Read markers with a receipt.
		bob.Must(t, 200, "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/read_markers",
			map[string]any{"m.fully_read": three, "m.read": three})
		badgePush(1)
		// Writing in the room reads it.
		notifSend(t, bob, room, notifText("my answer"))
		badgePush(0)
		// The fully-read marker alone is no receipt: nothing changes, nothing is sent.
		five := notifSend(t, alice, room, notifText("five"))
		eventPush(five, 1)
		bob.Must(t, 200, "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/read_markers",
			map[string]any{"m.fully_read": five})
		six := notifSend(t, alice, room, notifText("six"))
		eventPush(six, 2)
		select {
		case raw := <-gw.got:
			t.Fatalf("unexpected push: %s", raw)
		default:
		}
		// A user without pushers reads without anything sent (alice has none).
		notifReceipt(t, alice, room, "m.read", six, nil)
		notifReceipt(t, bob, room, "m.read", six, nil)
		badgePush(0)
	})
}

func unreadOf(n map[string]any) int {
	c, _ := n["counts"].(map[string]any)
	u, _ := c["unread"].(float64)
	return int(u)
}

// GET /notifications: read after a receipt, and from paginates without duplicates while new
// notifications arrive between pages.
func TestNotificationsReadAndPaging(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		hs := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, hs, "alice", "correct horse battery")
		bob := Register(t, hs, "bob", "correct horse battery")
		room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
		bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{})

		var sent []string
		for i := range 5 {
			sent = append(sent, notifSend(t, alice, room, notifText(fmt.Sprintf("m%d", i))))
		}
		pollNotifCounts(t, bob, "", room, notifCounts{Notification: 5})
		type page struct {
			Notifications []struct {
				Event map[string]any `json:"event"`
				Read  *bool          `json:"read"`
			} `json:"notifications"`
			NextToken string `json:"next_token"`
		}
		get := func(q string) page {
			t.Helper()
			r := bob.Must(t, 200, "GET", "/_matrix/client/v3/notifications"+q, nil)
			var p page
			if err := json.Unmarshal(r.Raw, &p); err != nil {
				t.Fatalf("notifications: %v: %s", err, r.Raw)
			}
			return p
		}

		// Reading up to the third: it and those before are read, the later two are not.
		notifReceipt(t, bob, room, "m.read", sent[2], nil)
		pollNotifCounts(t, bob, "", room, notifCounts{Notification: 2})
		p := get("")
		if len(p.Notifications) != 5 {
			t.Fatalf("notifications: %+v", p)
		}
		for i, n := range p.Notifications {
			want := sent[4-i]
			if n.Event["event_id"] != want {
				t.Fatalf("notification %d is %v, want %s", i, n.Event["event_id"], want)
			}
			if n.Read == nil || *n.Read != (i >= 2) {
				t.Fatalf("notification %d (%s) read = %v", i, want, n.Read)
			}
		}

		// Paging two at a time while new notifications arrive between pages: every old one
		// once, newest first, and none of the new ones.
		var seen []string
		from := ""
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatalf("paging does not end: %v", seen)
			}
			q := "?limit=2"
			if from != "" {
				q += "&from=" + url.QueryEscape(from)
			}
			p := get(q)
			for _, n := range p.Notifications {
				seen = append(seen, n.Event["event_id"].(string))
			}
			// Something new notifies between pages.
			fresh := notifSend(t, alice, room, notifText(fmt.Sprintf("new %d", pages)))
			pollNotifsInclude(t, bob, fresh)
			if p.NextToken == "" {
				break
			}
			from = p.NextToken
		}
		if len(seen) != 5 {
			t.Fatalf("paged %d notifications, want 5: %v", len(seen), seen)
		}
		for i, id := range seen {
			if id != sent[4-i] {
				t.Fatalf("page order: %v, want the reverse of %v", seen, sent)
			}
		}
	})
}

// pollNotifsInclude waits until GET /notifications lists ev.
func pollNotifsInclude(t *testing.T, c *Client, ev string) {
	t.Helper()
	for range 150 {
		r := c.Must(t, 200, "GET", "/_matrix/client/v3/notifications?limit=1", nil)
		var p struct {
			Notifications []struct {
				Event map[string]any `json:"event"`
			} `json:"notifications"`
		}
		_ = json.Unmarshal(r.Raw, &p)
		if len(p.Notifications) == 1 && p.Notifications[0].Event["event_id"] == ev {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never listed in /notifications", ev)
}
