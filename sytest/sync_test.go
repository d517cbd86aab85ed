package sytest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sync/atomic"
	"testing"
	"time"
)

// Black-box tests of /sync, filters and account data.

var syncTxn atomic.Int64

func syncCreateRoom(t *testing.T, c *Client, body map[string]any) string {
	t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	r := c.Must(t, 200, "POST", "/_matrix/client/v3/createRoom", body)
	id := r.Str("room_id")
	if id == "" {
		t.Fatalf("createRoom: no room_id: %s", r.Raw)
	}
	return id
}

func syncSend(t *testing.T, c *Client, roomID, body string) string {
	t.Helper()
	txn := fmt.Sprintf("sync%d", syncTxn.Add(1))
	r := c.Must(t, 200, "PUT", "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/send/m.room.message/"+txn,
		map[string]any{"msgtype": "m.text", "body": body})
	return r.Str("event_id")
}

// syncResp is the part of a /sync response these tests read.
type syncResp struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			Summary    map[string]any `json:"summary"`
			State      *syncEvents    `json:"state"`
			StateAfter *syncEvents    `json:"state_after"`
			Timeline   struct {
				Events    []syncEvent `json:"events"`
				Limited   bool        `json:"limited"`
				PrevBatch string      `json:"prev_batch"`
			} `json:"timeline"`
			AccountData syncEvents `json:"account_data"`
		} `json:"join"`
		Invite map[string]struct {
			InviteState syncEvents `json:"invite_state"`
		} `json:"invite"`
		Leave map[string]struct {
			Timeline struct {
				Events []syncEvent `json:"events"`
			} `json:"timeline"`
		} `json:"leave"`
	} `json:"rooms"`
	AccountData syncEvents `json:"account_data"`
}

type syncEvents struct {
	Events []syncEvent `json:"events"`
}

type syncEvent struct {
	Type     string          `json:"type"`
	EventID  string          `json:"event_id"`
	Sender   string          `json:"sender"`
	StateKey *string         `json:"state_key"`
	RoomID   string          `json:"room_id"`
	Content  json.RawMessage `json:"content"`
	Unsigned map[string]any  `json:"unsigned"`
}

func (e syncEvent) body() string {
	var c struct {
		Body string `json:"body"`
	}
	_ = json.Unmarshal(e.Content, &c)
	return c.Body
}

func doSync(t *testing.T, c *Client, query string) syncResp {
	t.Helper()
	r := c.Must(t, 200, "GET", "/_matrix/client/v3/sync"+query, nil)
	var s syncResp
	if err := json.Unmarshal(r.Raw, &s); err != nil {
		t.Fatalf("sync: %v: %s", err, r.Raw)
	}
	if s.NextBatch == "" {
		t.Fatalf("sync: no next_batch: %s", r.Raw)
	}
	return s
}

func syncBodies(evs []syncEvent) []string {
	var out []string
	for _, e := range evs {
		if e.Type == "m.room.message" {
			out = append(out, e.body())
		}
	}
	return out
}

func hasState(evs []syncEvent, typ, stateKey string) bool {
	for _, e := range evs {
		if e.Type == typ && e.StateKey != nil && *e.StateKey == stateKey {
			return true
		}
	}
	return false
}

func TestSyncInitialAndIncremental(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		room := syncCreateRoom(t, alice, map[string]any{"name": "Sync room"})
		syncSend(t, alice, room, "one")
		syncSend(t, alice, room, "two")

		first := doSync(t, alice, "")
		jr, ok := first.Rooms.Join[room]
		if !ok {
			t.Fatalf("initial sync: room %s not in rooms.join", room)
		}
		if got := syncBodies(jr.Timeline.Events); fmt.Sprint(got) != "[one two]" {
			t.Fatalf("initial timeline messages = %v", got)
		}
		all := append(append([]syncEvent{}, jr.State.Events...), jr.Timeline.Events...)
		for _, want := range [][2]string{{"m.room.create", ""}, {"m.room.name", ""}, {"m.room.member", alice.UserID}} {
			if !hasState(all, want[0], want[1]) {
				t.Errorf("initial sync lacks %s %q in state or timeline", want[0], want[1])
			}
		}
		for _, e := range jr.Timeline.Events {
			if e.RoomID != "" {
				t.Errorf("sync event carries room_id %q", e.RoomID)
			}
			if e.Type == "m.room.message" && e.Unsigned["transaction_id"] == nil {
				t.Errorf("own message lacks unsigned.transaction_id: %+v", e.Unsigned)
			}
		}
		if jr.Summary["m.joined_member_count"] != float64(1) {
			t.Errorf("summary = %v", jr.Summary)
		}

		syncSend(t, alice, room, "three")
		next := doSync(t, alice, "?since="+first.NextBatch)
		jr = next.Rooms.Join[room]
		if got := syncBodies(jr.Timeline.Events); fmt.Sprint(got) != "[three]" || len(jr.Timeline.Events) != 1 || jr.Timeline.Limited {
			t.Fatalf("incremental timeline = %+v (limited %v)", jr.Timeline.Events, jr.Timeline.Limited)
		}
		// Nothing new: the room is absent.
		idle := doSync(t, alice, "?timeout=0&since="+next.NextBatch)
		if _, ok := idle.Rooms.Join[room]; ok {
			t.Fatalf("idle incremental sync returned the room again")
		}
		// full_state brings the whole state back even with a since token.
		full := doSync(t, alice, "?full_state=true&since="+next.NextBatch)
		if jr := full.Rooms.Join[room]; jr.State == nil || !hasState(jr.State.Events, "m.room.create", "") {
			t.Fatalf("full_state sync lacks the create event")
		}
		// use_state_after: state_after instead of state.
		after := doSync(t, alice, "?use_state_after=true")
		if jr := after.Rooms.Join[room]; jr.State != nil || jr.StateAfter == nil || !hasState(jr.StateAfter.Events, "m.room.name", "") {
			t.Fatalf("use_state_after: state %v, state_after %v", jr.State, jr.StateAfter)
		}
		alice.MustErr(t, 400, "M_INVALID_PARAM", "GET", "/_matrix/client/v3/sync?since=garbage", nil)

		// A state change carries what it replaced.
		alice.Must(t, 200, "PUT", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/state/m.room.name/", map[string]any{"name": "Renamed"})
		renamed := doSync(t, alice, "?since="+next.NextBatch)
		var found bool
		for _, e := range renamed.Rooms.Join[room].Timeline.Events {
			if e.Type != "m.room.name" {
				continue
			}
			found = true
			prev, _ := e.Unsigned["prev_content"].(map[string]any)
			if e.Unsigned["replaces_state"] == nil || prev["name"] != "Sync room" {
				t.Fatalf("renamed event unsigned = %+v", e.Unsigned)
			}
		}
		if !found {
			t.Fatalf("rename not in the timeline")
		}
	})
}

func TestSyncLongPollWakesOnSend(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		bob := Register(t, s, "bob", "correct horse battery")
		room := syncCreateRoom(t, alice, map[string]any{"preset": "public_chat"})
		bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{})
		since := doSync(t, bob, "").NextBatch

		done := make(chan syncResp, 1)
		go func() {
			// t.Fatal must not run off the test goroutine: decode by hand.
			r := bob.Do(t, "GET", "/_matrix/client/v3/sync?timeout=10000&since="+since, nil)
			var sr syncResp
			_ = json.Unmarshal(r.Raw, &sr)
			done <- sr
		}()
		time.Sleep(300 * time.Millisecond)
		syncSend(t, alice, room, "wake up")
		sr := <-done
		if got := syncBodies(sr.Rooms.Join[room].Timeline.Events); fmt.Sprint(got) != "[wake up]" {
			t.Fatalf("long-poll returned %v", got)
		}
	})
}

func TestSyncFilters(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		bob := Register(t, s, "bob", "correct horse battery")
		room := syncCreateRoom(t, alice, nil)
		for i := 1; i <= 5; i++ {
			syncSend(t, alice, room, fmt.Sprint("m", i))
		}
		filter := map[string]any{"room": map[string]any{"timeline": map[string]any{"limit": 2, "types": []string{"m.room.message"}}}}
		base := "/_matrix/client/v3/user/" + url.PathEscape(alice.UserID) + "/filter"
		id := alice.Must(t, 200, "POST", base, filter).Str("filter_id")
		got := alice.Must(t, 200, "GET", base+"/"+id, nil)
		if tl := got.Body["room"].(map[string]any)["timeline"].(map[string]any); tl["limit"] != float64(2) {
			t.Fatalf("stored filter = %s", got.Raw)
		}
		bob.MustErr(t, 403, "M_FORBIDDEN", "GET", base+"/"+id, nil)
		alice.MustErr(t, 404, "M_NOT_FOUND", "GET", base+"/999", nil)
		alice.MustErr(t, 400, "M_BAD_JSON", "POST", base, map[string]any{"room": map[string]any{"timeline": map[string]any{"limit": -1}}})
		alice.MustErr(t, 400, "M_NOT_JSON", "POST", base, "{not json")

		for _, q := range []string{"?filter=" + id, "?filter=" + url.QueryEscape(`{"room":{"timeline":{"limit":2,"types":["m.room.message"]}}}`)} {
			sr := doSync(t, alice, q)
			jr := sr.Rooms.Join[room]
			if got := syncBodies(jr.Timeline.Events); fmt.Sprint(got) != "[m4 m5]" || !jr.Timeline.Limited || jr.Timeline.PrevBatch == "" {
				t.Fatalf("%s: timeline %v limited %v prev_batch %q", q, got, jr.Timeline.Limited, jr.Timeline.PrevBatch)
			}
			msgs := alice.Must(t, 200, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/messages?dir=b&limit=3&from="+url.QueryEscape(jr.Timeline.PrevBatch), nil)
			var chunk struct {
				Chunk []syncEvent `json:"chunk"`
			}
			_ = json.Unmarshal(msgs.Raw, &chunk)
			if got := syncBodies(chunk.Chunk); fmt.Sprint(got) != "[m3 m2 m1]" {
				t.Fatalf("/messages from prev_batch = %v: %s", got, msgs.Raw)
			}
		}
		// not_types with a wildcard.
		sr := doSync(t, alice, "?filter="+url.QueryEscape(`{"room":{"timeline":{"not_types":["m.room.*"]}}}`))
		if n := len(sr.Rooms.Join[room].Timeline.Events); n != 0 {
			t.Fatalf("not_types m.room.* left %d events", n)
		}
	})
}

func TestSyncLazyLoadMembers(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		bob := Register(t, s, "bob", "correct horse battery")
		carol := Register(t, s, "carol", "correct horse battery")
		// A named room: heroes, whose memberships lazy-loading would send too, are not needed.
		room := syncCreateRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Lazy"})
		bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{})
		carol.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{})
		syncSend(t, carol, room, "from carol")
		syncSend(t, bob, room, "from bob")

		lazy := "?filter=" + url.QueryEscape(`{"room":{"state":{"lazy_load_members":true},"timeline":{"limit":1}}}`)
		sr := doSync(t, alice, lazy)
		st := sr.Rooms.Join[room].State.Events
		if !hasState(st, "m.room.member", bob.UserID) || !hasState(st, "m.room.member", alice.UserID) {
			t.Fatalf("lazy state lacks the sender's or own membership: %+v", st)
		}
		if hasState(st, "m.room.member", carol.UserID) {
			t.Fatalf("lazy state holds carol, who sent nothing in the timeline")
		}
		if !hasState(st, "m.room.create", "") {
			t.Fatalf("lazy loading dropped non-member state")
		}

		// Bob speaks again: his membership was sent already and is not repeated.
		syncSend(t, bob, room, "bob again")
		next := doSync(t, alice, lazy+"&since="+sr.NextBatch)
		if jr := next.Rooms.Join[room]; jr.State != nil && hasState(jr.State.Events, "m.room.member", bob.UserID) {
			t.Fatalf("redundant membership of bob resent")
		}
		// Carol speaks: her membership is sent now.
		syncSend(t, carol, room, "carol again")
		third := doSync(t, alice, lazy+"&since="+next.NextBatch)
		if jr := third.Rooms.Join[room]; jr.State == nil || !hasState(jr.State.Events, "m.room.member", carol.UserID) {
			t.Fatalf("carol's membership not sent with her message")
		}
	})
}

func TestSyncInviteAndLeave(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		bob := Register(t, s, "bob", "correct horse battery")
		room := syncCreateRoom(t, alice, map[string]any{"name": "Secret plans"})
		since := doSync(t, bob, "").NextBatch
		alice.Must(t, 200, "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/invite", map[string]any{"user_id": bob.UserID})

		sr := doSync(t, bob, "?since="+since)
		inv, ok := sr.Rooms.Invite[room]
		if !ok {
			t.Fatalf("invite not in rooms.invite")
		}
		st := inv.InviteState.Events
		for _, want := range [][2]string{{"m.room.create", ""}, {"m.room.name", ""}, {"m.room.join_rules", ""}, {"m.room.member", bob.UserID}} {
			if !hasState(st, want[0], want[1]) {
				t.Errorf("invite_state lacks %s %q: %+v", want[0], want[1], st)
			}
		}
		for _, e := range st {
			if e.EventID != "" {
				t.Errorf("stripped state carries an event id: %+v", e)
			}
		}
		if _, ok := sr.Rooms.Join[room]; ok {
			t.Fatalf("invited user sees the room as joined")
		}

		bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{})
		joined := doSync(t, bob, "?since="+sr.NextBatch)
		if _, ok := joined.Rooms.Join[room]; !ok {
			t.Fatalf("joined room not in rooms.join")
		}
		syncSend(t, alice, room, "before leave")
		bob.Must(t, 200, "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/leave", map[string]any{})
		syncSend(t, alice, room, "after leave")
		left := doSync(t, bob, "?since="+joined.NextBatch)
		lr, ok := left.Rooms.Leave[room]
		if !ok {
			t.Fatalf("left room not in rooms.leave")
		}
		if got := syncBodies(lr.Timeline.Events); fmt.Sprint(got) != "[before leave]" {
			t.Fatalf("left room timeline = %v", got)
		}
		if last := lr.Timeline.Events[len(lr.Timeline.Events)-1]; last.Type != "m.room.member" {
			t.Fatalf("left room timeline does not end with the leave: %+v", last)
		}
		syncSend(t, alice, room, "much later")
		later := doSync(t, bob, "?since="+left.NextBatch)
		if _, ok := later.Rooms.Leave[room]; ok {
			t.Fatalf("left user still receives the room")
		}
		if _, ok := later.Rooms.Join[room]; ok {
			t.Fatalf("left user still receives the room as joined")
		}
	})
}

func TestSyncTokenSurvivesRestart(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		room := syncCreateRoom(t, alice, nil)
		syncSend(t, alice, room, "before restart")
		since := doSync(t, alice, "").NextBatch
		s.Restart(t)
		syncSend(t, alice, room, "after restart")
		sr := doSync(t, alice, "?since="+since)
		if got := syncBodies(sr.Rooms.Join[room].Timeline.Events); fmt.Sprint(got) != "[after restart]" {
			t.Fatalf("after restart, incremental timeline = %v", got)
		}
	})
}

func TestSyncAccountData(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		bob := Register(t, s, "bob", "correct horse battery")
		room := syncCreateRoom(t, alice, nil)
		since := doSync(t, alice, "").NextBatch

		user := "/_matrix/client/v3/user/" + url.PathEscape(alice.UserID)
		alice.Must(t, 200, "PUT", user+"/account_data/org.example.settings", map[string]any{"theme": "dark"})
		alice.Must(t, 200, "PUT", user+"/rooms/"+url.PathEscape(room)+"/account_data/m.tag", map[string]any{"tags": map[string]any{"u.work": map[string]any{}}})
		if got := alice.Must(t, 200, "GET", user+"/account_data/org.example.settings", nil); got.Str("theme") != "dark" {
			t.Fatalf("GET account data = %s", got.Raw)
		}
		alice.MustErr(t, 404, "M_NOT_FOUND", "GET", user+"/account_data/org.example.unset", nil)
		bob.MustErr(t, 403, "M_FORBIDDEN", "PUT", user+"/account_data/org.example.settings", map[string]any{})
		alice.MustErr(t, 405, "M_BAD_JSON", "PUT", user+"/rooms/"+url.PathEscape(room)+"/account_data/m.fully_read", map[string]any{"event_id": "$x"})
		alice.MustErr(t, 400, "M_INVALID_PARAM", "PUT", user+"/rooms/not-a-room/account_data/m.tag", map[string]any{})

		sr := doSync(t, alice, "?since="+since)
		if len(sr.AccountData.Events) != 1 || sr.AccountData.Events[0].Type != "org.example.settings" {
			t.Fatalf("global account data = %+v", sr.AccountData.Events)
		}
		jr, ok := sr.Rooms.Join[room]
		if !ok || len(jr.AccountData.Events) != 1 || jr.AccountData.Events[0].Type != "m.tag" {
			t.Fatalf("room account data = %+v", jr.AccountData.Events)
		}
		// A long-poll wakes for account data too.
		done := make(chan syncResp, 1)
		go func() {
			r := alice.Do(t, "GET", "/_matrix/client/v3/sync?timeout=10000&since="+sr.NextBatch, nil)
			var out syncResp
			_ = json.Unmarshal(r.Raw, &out)
			done <- out
		}()
		time.Sleep(300 * time.Millisecond)
		alice.Must(t, 200, "PUT", user+"/account_data/org.example.settings", map[string]any{"theme": "light"})
		if woke := <-done; len(woke.AccountData.Events) != 1 {
			t.Fatalf("long-poll did not return the account data change: %+v", woke.AccountData)
		}
	})
}
