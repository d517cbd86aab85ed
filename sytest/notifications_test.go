package sytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Black-box tests of notification counts in /sync, GET /notifications, pushers, and delivery
// to a push gateway (a test gateway on loopback, hence push.allow_private_addresses).

type notifCounts struct {
	Highlight    int `json:"highlight_count"`
	Notification int `json:"notification_count"`
}

// notifSyncResp is the part of a /sync response the notification tests read.
type notifSyncResp struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			Timeline struct {
				Events []syncEvent `json:"events"`
			} `json:"timeline"`
			Unread       *notifCounts           `json:"unread_notifications"`
			UnreadThread map[string]notifCounts `json:"unread_thread_notifications"`
		} `json:"join"`
	} `json:"rooms"`
}

func notifSync(t *testing.T, c *Client, since, filter string, timeoutMS int) notifSyncResp {
	t.Helper()
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
		q.Set("timeout", fmt.Sprint(timeoutMS))
	}
	if filter != "" {
		q.Set("filter", filter)
	}
	r := c.Must(t, 200, "GET", "/_matrix/client/v3/sync?"+q.Encode(), nil)
	var s notifSyncResp
	if err := json.Unmarshal(r.Raw, &s); err != nil {
		t.Fatalf("sync: %v: %s", err, r.Raw)
	}
	return s
}

// waitNotifCounts syncs from since until the room shows want (the event eventID, when set, in the
// same response as the counts it brought) and returns the next token.
func waitNotifCounts(t *testing.T, c *Client, since, filter, roomID, eventID string, want notifCounts) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last any
	for time.Now().Before(deadline) {
		s := notifSync(t, c, since, filter, 2000)
		since = s.NextBatch
		jr, ok := s.Rooms.Join[roomID]
		if !ok {
			continue
		}
		if jr.Unread == nil {
			t.Fatalf("joined room without unread_notifications")
		}
		last = *jr.Unread
		if eventID != "" {
			seen := false
			for _, ev := range jr.Timeline.Events {
				seen = seen || ev.EventID == eventID
			}
			if !seen {
				continue
			}
			// The counts of an event come in the same response as the event.
			if *jr.Unread != want {
				t.Fatalf("counts with event %s: %+v, want %+v", eventID, *jr.Unread, want)
			}
			return since
		}
		if *jr.Unread == want {
			return since
		}
	}
	t.Fatalf("room %s never showed notifCounts %+v (last %+v)", roomID, want, last)
	return ""
}

// pollNotifCounts does initial syncs until the room shows want.
func pollNotifCounts(t *testing.T, c *Client, filter, roomID string, want notifCounts) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s := notifSync(t, c, "", filter, 0)
		jr, ok := s.Rooms.Join[roomID]
		if ok && jr.Unread != nil && *jr.Unread == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("room %s never showed counts %+v (last %+v)", roomID, want, jr.Unread)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func notifSend(t *testing.T, c *Client, roomID string, content map[string]any) string {
	t.Helper()
	txn := fmt.Sprintf("n%d", syncTxn.Add(1))
	return c.Must(t, 200, "PUT", "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/send/m.room.message/"+txn, content).Str("event_id")
}

func notifText(body string) map[string]any { return map[string]any{"msgtype": "m.text", "body": body} }

func notifReceipt(t *testing.T, c *Client, roomID, typ, eventID string, body map[string]any) {
	t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	c.Must(t, 200, "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/receipt/"+typ+"/"+url.PathEscape(eventID), body)
}

// pushGatewayStub is a push gateway on loopback that records what it is sent.
type pushGatewayStub struct {
	srv      *httptest.Server
	mu       sync.Mutex
	rejected []string
	got      chan []byte
}

func newPushGatewayStub(t *testing.T) *pushGatewayStub {
	g := &pushGatewayStub{got: make(chan []byte, 100)}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_matrix/push/v1/notify" || r.Method != http.MethodPost {
			http.Error(w, "not found", 404)
			return
		}
		body, _ := io.ReadAll(r.Body)
		g.got <- body
		g.mu.Lock()
		rej := append([]string{}, g.rejected...)
		g.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"rejected": rej})
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *pushGatewayStub) url() string { return g.srv.URL + "/_matrix/push/v1/notify" }

func (g *pushGatewayStub) next(t *testing.T) (map[string]any, []byte) {
	t.Helper()
	select {
	case raw := <-g.got:
		var body struct {
			Notification map[string]any `json:"notification"`
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("gateway got bad JSON: %v: %s", err, raw)
		}
		return body.Notification, raw
	case <-time.After(15 * time.Second):
		t.Fatalf("the push gateway got nothing")
		return nil, nil
	}
}

func setTestPusher(t *testing.T, c *Client, pushkey string, data map[string]any) {
	t.Helper()
	c.Must(t, 200, "POST", "/_matrix/client/v3/pushers/set", map[string]any{
		"kind": "http", "app_id": "org.example.app", "pushkey": pushkey, "app_display_name": "Example",
		"device_display_name": "Phone", "lang": "en", "profile_tag": "tag1", "data": data,
	})
}

func TestNotificationCounts(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		hs := Start(t, Options{DatabaseURL: dbURL, Config: map[string]any{"push": map[string]any{"allow_private_addresses": true}}})
		alice := Register(t, hs, "alice", "correct horse battery")
		bob := Register(t, hs, "bob", "correct horse battery")
		room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
		bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{})

		since := notifSync(t, bob, "", "", 0).NextBatch

		// A message in a one-to-one room notifies the other member, in the same sync.
		hello := notifSend(t, alice, room, notifText("hello"))
		since = waitNotifCounts(t, bob, since, "", room, hello, notifCounts{Notification: 1})
		// The sender is not notified of their own message.
		if s := notifSync(t, alice, "", "", 0); s.Rooms.Join[room].Unread == nil || *s.Rooms.Join[room].Unread != (notifCounts{}) {
			t.Fatalf("alice's own notifCounts: %+v", s.Rooms.Join[room].Unread)
		}

		// A mention highlights.
		mention := notifSend(t, alice, room, map[string]any{"msgtype": "m.text", "body": "hey bob",
			"m.mentions": map[string]any{"user_ids": []string{bob.UserID}}})
		since = waitNotifCounts(t, bob, since, "", room, mention, notifCounts{Notification: 2, Highlight: 1})

		// GET /notifications, newest first, and only=highlight.
		r := bob.Must(t, 200, "GET", "/_matrix/client/v3/notifications", nil)
		var list struct {
			Notifications []struct {
				Actions []any          `json:"actions"`
				Event   map[string]any `json:"event"`
				Read    *bool          `json:"read"`
				RoomID  string         `json:"room_id"`
				TS      int64          `json:"ts"`
			} `json:"notifications"`
			NextToken string `json:"next_token"`
		}
		if err := json.Unmarshal(r.Raw, &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Notifications) != 2 || list.Notifications[0].Event["event_id"] != mention || list.Notifications[1].Event["event_id"] != hello {
			t.Fatalf("notifications: %s", r.Raw)
		}
		for _, n := range list.Notifications {
			if n.RoomID != room || n.Read == nil || *n.Read || n.TS == 0 || len(n.Actions) == 0 || n.Event["content"] == nil {
				t.Fatalf("notification fields: %s", r.Raw)
			}
		}
		r = bob.Must(t, 200, "GET", "/_matrix/client/v3/notifications?only=highlight", nil)
		if err := json.Unmarshal(r.Raw, &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Notifications) != 1 || list.Notifications[0].Event["event_id"] != mention {
			t.Fatalf("only=highlight: %s", r.Raw)
		}
		// Paging with limit and from.
		r = bob.Must(t, 200, "GET", "/_matrix/client/v3/notifications?limit=1", nil)
		_ = json.Unmarshal(r.Raw, &list)
		if len(list.Notifications) != 1 || list.NextToken == "" {
			t.Fatalf("limit=1: %s", r.Raw)
		}
		r = bob.Must(t, 200, "GET", "/_matrix/client/v3/notifications?limit=1&from="+url.QueryEscape(list.NextToken), nil)
		_ = json.Unmarshal(r.Raw, &list)
		if len(list.Notifications) != 1 || list.Notifications[0].Event["event_id"] != hello {
			t.Fatalf("second page: %s", r.Raw)
		}
		bob.MustErr(t, 400, "M_INVALID_PARAM", "GET", "/_matrix/client/v3/notifications?from=nope", nil)
		bob.MustErr(t, 400, "M_INVALID_PARAM", "GET", "/_matrix/client/v3/notifications?limit=-1", nil)

		// A private read receipt resets the counts, in a sync where only the receipt changed.
		notifReceipt(t, bob, room, "m.read.private", mention, nil)
		since = waitNotifCounts(t, bob, since, "", room, "", notifCounts{})
		r = bob.Must(t, 200, "GET", "/_matrix/client/v3/notifications", nil)
		_ = json.Unmarshal(r.Raw, &list)
		if len(list.Notifications) != 2 || !*list.Notifications[0].Read || !*list.Notifications[1].Read {
			t.Fatalf("notifications after the receipt are not read: %s", r.Raw)
		}

		// A public one too.
		again := notifSend(t, alice, room, notifText("again"))
		since = waitNotifCounts(t, bob, since, "", room, again, notifCounts{Notification: 1})
		// So does writing in the room oneself, in the same sync as one's own event.
		answer := notifSend(t, bob, room, notifText("answer"))
		since = waitNotifCounts(t, bob, since, "", room, answer, notifCounts{})
		again = notifSend(t, alice, room, notifText("again"))
		since = waitNotifCounts(t, bob, since, "", room, again, notifCounts{Notification: 1})
		notifReceipt(t, bob, room, "m.read", again, nil)
		since = waitNotifCounts(t, bob, since, "", room, "", notifCounts{})

		// Threads: with unread_thread_notifications the main count leaves the thread out, and
		// a threaded receipt resets only its thread.
		filter := `{"room":{"timeline":{"unread_thread_notifications":true}}}`
		root := notifSend(t, alice, room, notifText("root"))
		since = waitNotifCounts(t, bob, since, filter, room, root, notifCounts{Notification: 1})
		reply := notifSend(t, alice, room, map[string]any{"msgtype": "m.text", "body": "in thread",
			"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root}})
		s := notifSync(t, bob, "", filter, 0)
		jr := s.Rooms.Join[room]
		if *jr.Unread != (notifCounts{Notification: 1}) || jr.UnreadThread[root] != (notifCounts{Notification: 1}) {
			t.Fatalf("thread notifCounts: main %+v threads %+v", *jr.Unread, jr.UnreadThread)
		}
		if s := notifSync(t, bob, "", "", 0); *s.Rooms.Join[room].Unread != (notifCounts{Notification: 2}) {
			t.Fatalf("unthreaded notifCounts: %+v", *s.Rooms.Join[room].Unread)
		}
		notifReceipt(t, bob, room, "m.read", reply, map[string]any{"thread_id": root})
		deadline := time.Now().Add(10 * time.Second)
		for {
			s = notifSync(t, bob, "", filter, 0)
			jr = s.Rooms.Join[room]
			if _, ok := jr.UnreadThread[root]; !ok && *jr.Unread == (notifCounts{Notification: 1}) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after a threaded receipt: main %+v threads %+v", *jr.Unread, jr.UnreadThread)
			}
			time.Sleep(100 * time.Millisecond)
		}
		notifReceipt(t, bob, room, "m.read", reply, nil) // unthreaded: everything before it
		since = waitNotifCounts(t, bob, since, "", room, "", notifCounts{})

		// The events of an ignored user never notify.
		bob.Must(t, 200, "PUT", "/_matrix/client/v3/user/"+url.PathEscape(bob.UserID)+"/account_data/m.ignored_user_list",
			map[string]any{"ignored_users": map[string]any{alice.UserID: map[string]any{}}})
		ignored := notifSend(t, alice, room, notifText("you do not hear me"))
		// The worker evaluates events after they are sent, reading the list then; a sync waits
		// for it to reach the sync's position, so the event is evaluated before the list changes.
		notifSync(t, bob, "", "", 0)
		bob.Must(t, 200, "PUT", "/_matrix/client/v3/user/"+url.PathEscape(bob.UserID)+"/account_data/m.ignored_user_list",
			map[string]any{"ignored_users": map[string]any{}})
		heard := notifSend(t, alice, room, notifText("now you do"))
		waitNotifCounts(t, bob, since, "", room, heard, notifCounts{Notification: 1})
		r = bob.Must(t, 200, "GET", "/_matrix/client/v3/notifications?limit=1", nil)
		if strings.Contains(string(r.Raw), ignored) {
			t.Fatalf("an ignored user's event notified: %s", r.Raw)
		}

		// A restart neither loses nor repeats a count.
		hs.Restart(t)
		notifSend(t, alice, room, notifText("after restart"))
		pollNotifCounts(t, bob, "", room, notifCounts{Notification: 2})
	})
}

func TestPushers(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		hs := Start(t, Options{DatabaseURL: dbURL, Config: map[string]any{"push": map[string]any{"allow_private_addresses": true}}})
		alice := Register(t, hs, "alice", "correct horse battery")
		bob := Register(t, hs, "bob", "correct horse battery")
		room := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Secret plans"})
		bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{})
		gw := newPushGatewayStub(t)

		// Bad input.
		const set = "/_matrix/client/v3/pushers/set"
		r := bob.MustErr(t, 400, "M_MISSING_PARAM", "POST", set, map[string]any{"kind": "http"})
		if !strings.Contains(r.Str("error"), "app_id") || !strings.Contains(r.Str("error"), "pushkey") {
			t.Fatalf("missing params not named: %s", r.Raw)
		}
		base := func(mod map[string]any) map[string]any {
			b := map[string]any{"kind": "http", "app_id": "org.example.app", "pushkey": "k1", "app_display_name": "A",
				"device_display_name": "D", "lang": "en", "data": map[string]any{"url": gw.url()}}
			for k, v := range mod {
				if v == nil {
					delete(b, k)
				} else {
					b[k] = v
				}
			}
			return b
		}
		bob.MustErr(t, 400, "M_MISSING_PARAM", "POST", set, base(map[string]any{"lang": nil}))
		bob.MustErr(t, 400, "M_MISSING_PARAM", "POST", set, base(map[string]any{"data": map[string]any{}}))
		bob.MustErr(t, 400, "M_INVALID_PARAM", "POST", set, base(map[string]any{"data": map[string]any{"url": "https://gw.example/notify"}}))
		bob.MustErr(t, 400, "M_INVALID_PARAM", "POST", set, base(map[string]any{"data": map[string]any{"url": "ftp://gw.example/_matrix/push/v1/notify"}}))
		bob.MustErr(t, 400, "M_INVALID_PARAM", "POST", set, base(map[string]any{"data": map[string]any{"url": gw.url(), "format": "full"}}))
		bob.MustErr(t, 400, "M_INVALID_PARAM", "POST", set, base(map[string]any{"kind": "carrier-pigeon"}))
		bob.MustErr(t, 400, "M_INVALID_PARAM", "POST", set, base(map[string]any{"kind": "email", "app_id": "m.email", "pushkey": "bob@example.org"}))
		bob.MustErr(t, 400, "M_INVALID_PARAM", "POST", set, base(map[string]any{"app_id": strings.Repeat("a", 65)}))
		bob.MustErr(t, 400, "M_INVALID_PARAM", "POST", set, base(map[string]any{"pushkey": strings.Repeat("k", 513)}))
		bob.MustErr(t, 400, "M_INVALID_PARAM", "POST", set, base(map[string]any{"append": "yes"}))
		if r := bob.Must(t, 200, "GET", "/_matrix/client/v3/pushers", nil); !strings.Contains(string(r.Raw), `"pushers":[]`) {
			t.Fatalf("bad input left a pusher: %s", r.Raw)
		}

		// A pusher, listed with every field.
		setTestPusher(t, bob, "bob-key", map[string]any{"url": gw.url(), "custom": "kept"})
		r = bob.Must(t, 200, "GET", "/_matrix/client/v3/pushers", nil)
		var pl struct {
			Pushers []map[string]any `json:"pushers"`
		}
		_ = json.Unmarshal(r.Raw, &pl)
		if len(pl.Pushers) != 1 {
			t.Fatalf("pushers: %s", r.Raw)
		}
		p := pl.Pushers[0]
		for k, want := range map[string]any{"kind": "http", "app_id": "org.example.app", "pushkey": "bob-key",
			"app_display_name": "Example", "device_display_name": "Phone", "lang": "en", "profile_tag": "tag1"} {
			if p[k] != want {
				t.Fatalf("pusher %s = %v, want %v: %s", k, p[k], want, r.Raw)
			}
		}
		if d, _ := p["data"].(map[string]any); d["url"] != gw.url() || d["custom"] != "kept" {
			t.Fatalf("pusher data: %s", r.Raw)
		}

		// A notification reaches the gateway with no content by default.
		ev := notifSend(t, alice, room, notifText("the launch code is 1234"))
		n, raw := gw.next(t)
		if n["event_id"] != ev || n["room_id"] != room || n["type"] != "m.room.message" {
			t.Fatalf("notification: %s", raw)
		}
		for _, leak := range []string{`"content"`, "launch code", `"sender_display_name"`, `"room_name"`, "Secret plans", `"sender"`} {
			if strings.Contains(string(raw), leak) {
				t.Fatalf("the notification carries %s: %s", leak, raw)
			}
		}
		if c, _ := n["counts"].(map[string]any); c["unread"] != float64(1) {
			t.Fatalf("counts: %s", raw)
		}
		devs, _ := n["devices"].([]any)
		if len(devs) != 1 {
			t.Fatalf("devices: %s", raw)
		}
		dev := devs[0].(map[string]any)
		data, _ := dev["data"].(map[string]any)
		if dev["app_id"] != "org.example.app" || dev["pushkey"] != "bob-key" || dev["pushkey_ts"] == nil ||
			data["custom"] != "kept" || data["url"] != nil {
			t.Fatalf("device: %s", raw)
		}

		// event_id_only sends only ids, counts and devices.
		setTestPusher(t, bob, "bob-key", map[string]any{"url": gw.url(), "format": "event_id_only"})
		ev = notifSend(t, alice, room, notifText("second"))
		n, raw = gw.next(t)
		if n["event_id"] != ev {
			t.Fatalf("notification: %s", raw)
		}
		for k := range n {
			switch k {
			case "event_id", "room_id", "counts", "devices", "prio":
			default:
				t.Fatalf("event_id_only notification has %s: %s", k, raw)
			}
		}

		// A rejected pushkey removes the pusher.
		gw.mu.Lock()
		gw.rejected = []string{"bob-key"}
		gw.mu.Unlock()
		notifSend(t, alice, room, notifText("third"))
		gw.next(t)
		deadline := time.Now().Add(10 * time.Second)
		for {
			r = bob.Must(t, 200, "GET", "/_matrix/client/v3/pushers", nil)
			if strings.Contains(string(r.Raw), `"pushers":[]`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rejected pusher still there: %s", r.Raw)
			}
			time.Sleep(100 * time.Millisecond)
		}

		// kind null deletes; logging out deletes the device's pushers.
		setTestPusher(t, bob, "k2", map[string]any{"url": gw.url()})
		bob.Must(t, 200, "POST", set, map[string]any{"kind": nil, "app_id": "org.example.app", "pushkey": "k2"})
		if r := bob.Must(t, 200, "GET", "/_matrix/client/v3/pushers", nil); !strings.Contains(string(r.Raw), `"pushers":[]`) {
			t.Fatalf("kind null did not delete: %s", r.Raw)
		}
		phone, _ := Login(t, hs, "bob", "correct horse battery", nil)
		setTestPusher(t, phone, "k3", map[string]any{"url": gw.url()})
		if r := bob.Must(t, 200, "GET", "/_matrix/client/v3/pushers", nil); !strings.Contains(string(r.Raw), `"k3"`) {
			t.Fatalf("pusher of another device not listed: %s", r.Raw)
		}
		phone.Must(t, 200, "POST", "/_matrix/client/v3/logout", map[string]any{})
		if r := bob.Must(t, 200, "GET", "/_matrix/client/v3/pushers", nil); !strings.Contains(string(r.Raw), `"pushers":[]`) {
			t.Fatalf("logout left the device's pusher: %s", r.Raw)
		}
	})
}

func TestPushIncludeContentAndPrivateAddresses(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		hs := Start(t, Options{DatabaseURL: dbURL, Config: map[string]any{"push": map[string]any{
			"allow_private_addresses": true, "include_content": true}}})
		alice := Register(t, hs, "alice", "correct horse battery")
		bob := Register(t, hs, "bob", "correct horse battery")
		room := createRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Secret plans"})
		bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{})
		gw := newPushGatewayStub(t)
		setTestPusher(t, bob, "bob-key", map[string]any{"url": gw.url()})
		notifSend(t, alice, room, notifText("the launch code is 1234"))
		n, raw := gw.next(t)
		c, _ := n["content"].(map[string]any)
		if c["body"] != "the launch code is 1234" || n["sender"] != alice.UserID || n["room_name"] != "Secret plans" {
			t.Fatalf("include_content: %s", raw)
		}
	})
	// Without push.allow_private_addresses a gateway on loopback is never reached.
	hs := Start(t, Options{})
	alice := Register(t, hs, "alice", "correct horse battery")
	bob := Register(t, hs, "bob", "correct horse battery")
	room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
	bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{})
	gw := newPushGatewayStub(t)
	setTestPusher(t, bob, "bob-key", map[string]any{"url": gw.url()})
	notifSend(t, alice, room, notifText("hi"))
	pollNotifCounts(t, bob, "", room, notifCounts{Notification: 1})
	select {
	case raw := <-gw.got:
		t.Fatalf("a loopback gateway was reached without allow_private_addresses: %s", raw)
	case <-time.After(2 * time.Second):
	}
}
