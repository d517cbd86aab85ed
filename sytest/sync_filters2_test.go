package sytest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
)

// Black-box tests of the finer points of /sync filters: the timeline limit counted after
// filtering, event_fields and event_format, the room summary, and the filter fields around
// them.

// sendNoise sends n events of a type that message filters drop.
func sendNoise(t *testing.T, c *Client, roomID string, n int) {
	t.Helper()
	for i := range n {
		txn := fmt.Sprintf("noise%d", syncTxn.Add(1))
		c.Must(t, 200, "PUT", "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/send/org.example.noise/"+txn,
			map[string]any{"n": i})
	}
}

func setTopic(t *testing.T, c *Client, roomID, topic string) string {
	t.Helper()
	return c.Must(t, 200, "PUT", "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/state/m.room.topic/",
		map[string]any{"topic": topic}).Str("event_id")
}

// messagesPage reads /messages and returns its chunk and end token.
func messagesPage(t *testing.T, c *Client, roomID, query string) ([]syncEvent, string) {
	t.Helper()
	r := c.Must(t, 200, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/messages?"+query, nil)
	var page struct {
		Chunk []syncEvent `json:"chunk"`
		End   string      `json:"end"`
	}
	if err := json.Unmarshal(r.Raw, &page); err != nil {
		t.Fatalf("/messages: %v: %s", err, r.Raw)
	}
	return page.Chunk, page.End
}

func stateTopic(evs []syncEvent) string {
	for _, e := range evs {
		if e.Type == "m.room.topic" {
			var c struct {
				Topic string `json:"topic"`
			}
			_ = json.Unmarshal(e.Content, &c)
			return c.Topic
		}
	}
	return ""
}

func filterQuery(f string) string { return "filter=" + url.QueryEscape(f) }

// The timeline's limit counts the events left after filtering: the timeline reads back past
// the events the filter drops, and limited, prev_batch and the state section describe what it
// read.
func TestSyncTimelineLimitAfterFilter(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		room := syncCreateRoom(t, alice, nil)
		setTopic(t, alice, room, "first topic")
		syncSend(t, alice, room, "m1")
		syncSend(t, alice, room, "m2")
		sendNoise(t, alice, room, 12)
		setTopic(t, alice, room, "second topic")
		sendNoise(t, alice, room, 3)
		syncSend(t, alice, room, "m3")
		syncSend(t, alice, room, "m4")

		msgs := `{"room":{"timeline":{"limit":3,"types":["m.room.message"]}}}`
		sr := doSync(t, alice, "?"+filterQuery(msgs))
		jr := sr.Rooms.Join[room]
		if got := fmt.Sprint(syncBodies(jr.Timeline.Events)); got != "[m2 m3 m4]" || !jr.Timeline.Limited {
			t.Fatalf("timeline %v limited %v, want [m2 m3 m4] limited", got, jr.Timeline.Limited)
		}
		// The state is the state before m2, the first event shown.
		if jr.State == nil || stateTopic(jr.State.Events) != "first topic" {
			t.Fatalf("state before the timeline: topic %q", stateTopic(jr.State.Events))
		}
		// Paginating back from prev_batch finds what comes before m2, and only that.
		chunk, _ := messagesPage(t, alice, room, "dir=b&limit=50&from="+url.QueryEscape(jr.Timeline.PrevBatch))
		if len(chunk) == 0 || chunk[0].body() != "m1" {
			t.Fatalf("/messages from prev_batch starts with %+v, want m1", chunk)
		}
		for _, e := range chunk {
			if b := e.body(); b == "m2" || b == "m3" || b == "m4" {
				t.Fatalf("/messages from prev_batch repeats %s", b)
			}
		}

		// A limit above what passes: everything that passes, not limited.
		all := doSync(t, alice, "?"+filterQuery(`{"room":{"timeline":{"limit":8,"types":["m.room.message"]}}}`))
		ajr := all.Rooms.Join[room]
		if got := fmt.Sprint(syncBodies(ajr.Timeline.Events)); got != "[m1 m2 m3 m4]" || ajr.Timeline.Limited {
			t.Fatalf("timeline %v limited %v, want [m1 m2 m3 m4] not limited", got, ajr.Timeline.Limited)
		}

		// An incremental sync whose gap holds a state change: the timeline reaches back past
		// the noise, and the state section carries the change made before its first event.
		since := sr.NextBatch
		setTopic(t, alice, room, "gap topic")
		sendNoise(t, alice, room, 10)
		syncSend(t, alice, room, "m5")
		sendNoise(t, alice, room, 6)
		syncSend(t, alice, room, "m6")
		two := `{"room":{"timeline":{"limit":2,"types":["m.room.message"]}}}`
		inc := doSync(t, alice, "?"+filterQuery(two)+"&since="+url.QueryEscape(since))
		ijr := inc.Rooms.Join[room]
		if got := fmt.Sprint(syncBodies(ijr.Timeline.Events)); got != "[m5 m6]" || !ijr.Timeline.Limited {
			t.Fatalf("incremental timeline %v limited %v, want [m5 m6] limited", got, ijr.Timeline.Limited)
		}
		if ijr.State == nil || stateTopic(ijr.State.Events) != "gap topic" {
			t.Fatalf("incremental state lacks the gap's topic: %+v", ijr.State)
		}
		// The gap, from since to prev_batch, is exactly the topic and the first noise.
		gap, _ := messagesPage(t, alice, room, "dir=b&limit=50&from="+url.QueryEscape(ijr.Timeline.PrevBatch)+"&to="+url.QueryEscape(since))
		if len(gap) != 11 || gap[0].Type != "org.example.noise" || gap[10].Type != "m.room.topic" {
			t.Fatalf("gap holds %d events: %+v", len(gap), gap)
		}
		// Three messages ask for more than the range holds: not limited, since everything
		// that passes was returned.
		three := `{"room":{"timeline":{"limit":3,"types":["m.room.message"]}}}`
		inc3 := doSync(t, alice, "?"+filterQuery(three)+"&since="+url.QueryEscape(since))
		if jr3 := inc3.Rooms.Join[room]; fmt.Sprint(syncBodies(jr3.Timeline.Events)) != "[m5 m6]" || jr3.Timeline.Limited {
			t.Fatalf("incremental timeline %v limited %v, want [m5 m6] not limited", syncBodies(jr3.Timeline.Events), jr3.Timeline.Limited)
		}
	})
}

// The read back is bounded: past the bound the timeline answers with what it found, limited,
// and prev_batch lets the client page on without missing anything.
func TestSyncTimelineFilterScanBound(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		room := syncCreateRoom(t, alice, nil)
		syncSend(t, alice, room, "old")
		sendNoise(t, alice, room, 110) // more than the 100 events one timeline examines

		sr := doSync(t, alice, "?"+filterQuery(`{"room":{"timeline":{"limit":1,"types":["m.room.message"]}}}`))
		jr := sr.Rooms.Join[room]
		if len(jr.Timeline.Events) != 0 || !jr.Timeline.Limited || jr.Timeline.PrevBatch == "" {
			t.Fatalf("timeline %d events limited %v prev_batch %q, want none, limited", len(jr.Timeline.Events), jr.Timeline.Limited, jr.Timeline.PrevBatch)
		}
		// The filtered /messages reads on from prev_batch and finds the message.
		chunk, _ := messagesPage(t, alice, room, "dir=b&limit=1&from="+url.QueryEscape(jr.Timeline.PrevBatch)+"&"+
			filterQuery(`{"types":["m.room.message"]}`))
		if got := fmt.Sprint(syncBodies(chunk)); got != "[old]" {
			t.Fatalf("/messages from prev_batch = %v, want [old]", got)
		}
		// Unfiltered, the page before prev_batch ends with the newest noise not examined: the
		// ten oldest noise events and the message are all there.
		chunk, _ = messagesPage(t, alice, room, "dir=b&limit=50&from="+url.QueryEscape(jr.Timeline.PrevBatch))
		noise := 0
		for _, e := range chunk {
			if e.Type == "org.example.noise" {
				noise++
			}
		}
		if noise != 10 {
			t.Fatalf("%d noise events before prev_batch, want 10", noise)
		}
	})
}

// /messages counts its limit after filtering too.
func TestMessagesLimitAfterFilter(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		room := syncCreateRoom(t, alice, nil)
		syncSend(t, alice, room, "a1")
		sendNoise(t, alice, room, 30)
		syncSend(t, alice, room, "a2")
		sendNoise(t, alice, room, 30)
		syncSend(t, alice, room, "a3")
		f := filterQuery(`{"types":["m.room.message"]}`)
		chunk, end := messagesPage(t, alice, room, "dir=b&limit=2&"+f)
		if got := fmt.Sprint(syncBodies(chunk)); got != "[a3 a2]" || end == "" {
			t.Fatalf("/messages = %v end %q, want [a3 a2] and an end", got, end)
		}
		chunk, _ = messagesPage(t, alice, room, "dir=b&limit=2&"+f+"&from="+url.QueryEscape(end))
		if got := fmt.Sprint(syncBodies(chunk)); got != "[a1]" {
			t.Fatalf("next page = %v, want [a1]", got)
		}
	})
}

// syncTree returns the decoded /sync response as a tree.
func syncTree(t *testing.T, c *Client, query string) map[string]any {
	t.Helper()
	r := c.Must(t, 200, "GET", "/_matrix/client/v3/sync"+query, nil)
	return r.Body
}

// treeAt walks a decoded JSON tree.
func treeAt(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// treeEvents returns the events list at rooms.join.<room>.<section>.events.
func treeEvents(tree map[string]any, room, section string) []map[string]any {
	list, _ := treeAt(tree, "rooms", "join", room, section, "events").([]any)
	var out []map[string]any
	for _, v := range list {
		if m, ok := v.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// event_fields keeps only the listed paths, dots in names escaped, of every event the filter
// governs; event_format "federation" returns the PDUs.
func TestSyncEventFieldsAndFormat(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		room := syncCreateRoom(t, alice, nil)
		msgID := alice.Must(t, 200, "PUT", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/send/m.room.message/fields1",
			map[string]any{"msgtype": "m.text", "body": "hello", "org.example.dotted": "dots"}).Str("event_id")
		goneID := syncSend(t, alice, room, "to be redacted")
		alice.Must(t, 200, "PUT", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/redact/"+url.PathEscape(goneID)+"/red1",
			map[string]any{"reason": "oops"})
		alice.Must(t, 200, "PUT", "/_matrix/client/v3/user/"+url.PathEscape(alice.UserID)+"/account_data/org.example.ad",
			map[string]any{"body": "kept", "other": "dropped"})

		fields := `{"event_fields":["type","content.body","content.org\\.example\\.dotted"],"room":{"timeline":{"limit":20}}}`
		tree := syncTree(t, alice, "?"+filterQuery(fields))
		var msg map[string]any
		for _, ev := range treeEvents(tree, room, "timeline") {
			for k := range ev {
				if k != "type" && k != "content" {
					t.Fatalf("event_fields left %q in %v", k, ev)
				}
			}
			if treeAt(ev, "content", "body") == "hello" {
				msg = ev
			}
		}
		if msg == nil {
			t.Fatalf("message not in the timeline: %v", treeEvents(tree, room, "timeline"))
		}
		if content := msg["content"].(map[string]any); len(content) != 2 || content["org.example.dotted"] != "dots" {
			t.Fatalf("content = %v, want body and org.example.dotted only", content)
		}
		for _, ev := range treeEvents(tree, room, "state") {
			if _, ok := ev["state_key"]; ok || ev["type"] == nil {
				t.Fatalf("state event not reduced to type: %v", ev)
			}
		}
		var ad map[string]any
		for _, v := range treeAt(tree, "account_data", "events").([]any) {
			if m := v.(map[string]any); m["type"] == "org.example.ad" {
				ad = m
			}
		}
		if ad == nil || fmt.Sprint(ad["content"]) != "map[body:kept]" {
			t.Fatalf("global account data = %v, want content {body: kept}", ad)
		}

		// The federation format: the stored PDU, with its id and the server's unsigned.
		server := alice.UserID[len("@alice:"):]
		tree = syncTree(t, alice, "?"+filterQuery(`{"event_format":"federation","room":{"timeline":{"limit":20}}}`))
		var pdu, redacted map[string]any
		for _, ev := range treeEvents(tree, room, "timeline") {
			switch ev["event_id"] {
			case msgID:
				pdu = ev
			case goneID:
				redacted = ev
			}
		}
		if pdu == nil || redacted == nil {
			t.Fatalf("federation timeline lacks the events: %v", treeEvents(tree, room, "timeline"))
		}
		for _, k := range []string{"auth_events", "prev_events", "depth", "hashes", "signatures", "room_id", "origin_server_ts"} {
			if _, ok := pdu[k]; !ok {
				t.Fatalf("federation event lacks %s: %v", k, pdu)
			}
		}
		if treeAt(pdu, "signatures", server) == nil || treeAt(pdu, "content", "body") != "hello" {
			t.Fatalf("federation event: %v", pdu)
		}
		if treeAt(pdu, "unsigned", "transaction_id") != "fields1" || treeAt(pdu, "unsigned", "age") == nil {
			t.Fatalf("federation event unsigned = %v", pdu["unsigned"])
		}
		if treeAt(redacted, "content", "body") != nil || treeAt(redacted, "unsigned", "redacted_because", "signatures", server) == nil {
			t.Fatalf("redacted federation event: %v", redacted)
		}
		for _, ev := range treeEvents(tree, room, "state") {
			if ev["hashes"] == nil || ev["event_id"] == nil {
				t.Fatalf("federation state event: %v", ev)
			}
		}

		// Both at once: the fields of the PDU.
		tree = syncTree(t, alice, "?"+filterQuery(`{"event_format":"federation","event_fields":["event_id","hashes.sha256"],"room":{"timeline":{"limit":20}}}`))
		for _, ev := range treeEvents(tree, room, "timeline") {
			if len(ev) != 2 || treeAt(ev, "hashes", "sha256") == nil {
				t.Fatalf("federation event with fields: %v", ev)
			}
		}
		// The client format is the default, and also asked for by name.
		tree = syncTree(t, alice, "?"+filterQuery(`{"event_format":"client"}`))
		for _, ev := range treeEvents(tree, room, "timeline") {
			if ev["hashes"] != nil || ev["signatures"] != nil {
				t.Fatalf("client event with PDU fields: %v", ev)
			}
		}
	})
}

// membershipCounts replays state then timeline and counts the joined and invited members.
func membershipCounts(state, timeline []syncEvent) (joined, invited int, members map[string]string) {
	members = map[string]string{}
	for _, evs := range [][]syncEvent{state, timeline} {
		for _, e := range evs {
			if e.Type != "m.room.member" || e.StateKey == nil {
				continue
			}
			var c struct {
				Membership string `json:"membership"`
			}
			_ = json.Unmarshal(e.Content, &c)
			members[*e.StateKey] = c.Membership
		}
	}
	for _, m := range members {
		switch m {
		case "join":
			joined++
		case "invite":
			invited++
		}
	}
	return joined, invited, members
}

// The room summary describes the state the sync returns, also while members join and are
// invited during the sync: the counts match the state and timeline sent, and the heroes are
// members in them.
func TestSyncSummaryMatchesState(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		room := syncCreateRoom(t, alice, map[string]any{"preset": "public_chat"})
		var others []*Client
		for i := range 6 {
			others = append(others, Register(t, s, fmt.Sprintf("member%d", i), "correct horse battery"))
		}
		done := make(chan int, 1)
		go func() {
			failed := 0
			for i, c := range others {
				if i%2 == 0 {
					r := c.Do(t, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{})
					if r.Status != 200 {
						failed++
					}
				} else {
					r := alice.Do(t, "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/invite", map[string]any{"user_id": c.UserID})
					if r.Status != 200 {
						failed++
					}
				}
			}
			done <- failed
		}()
		check := func() {
			t.Helper()
			sr := doSync(t, alice, "?"+filterQuery(`{"room":{"timeline":{"limit":3}}}`))
			jr := sr.Rooms.Join[room]
			if jr.State == nil || jr.Summary == nil {
				t.Fatalf("initial sync without state or summary")
			}
			joined, invited, members := membershipCounts(jr.State.Events, jr.Timeline.Events)
			if fmt.Sprint(jr.Summary["m.joined_member_count"]) != fmt.Sprint(joined) ||
				fmt.Sprint(jr.Summary["m.invited_member_count"]) != fmt.Sprint(invited) {
				t.Fatalf("summary %v, but state and timeline hold %d joined, %d invited", jr.Summary, joined, invited)
			}
			heroes, _ := jr.Summary["m.heroes"].([]any)
			for _, h := range heroes {
				if m := members[h.(string)]; m != "join" && m != "invite" {
					t.Fatalf("hero %v is %q in the state sent", h, m)
				}
			}
		}
		for running := true; running; {
			select {
			case failed := <-done:
				if failed > 0 {
					t.Fatalf("%d joins or invites failed", failed)
				}
				running = false
			default:
			}
			check()
		}
		check()
	})
}

// full_state=true sends the whole state with an incremental sync, whose timeline still
// starts at since.
func TestSyncFullStateIncremental(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		quiet := syncCreateRoom(t, alice, map[string]any{"name": "Quiet"})
		busy := syncCreateRoom(t, alice, map[string]any{"name": "Busy"})
		syncSend(t, alice, busy, "old")
		since := doSync(t, alice, "").NextBatch
		syncSend(t, alice, busy, "new")

		sr := doSync(t, alice, "?full_state=true&since="+url.QueryEscape(since))
		for _, room := range []string{quiet, busy} {
			jr, ok := sr.Rooms.Join[room]
			if !ok || jr.State == nil || !hasState(jr.State.Events, "m.room.create", "") || !hasState(jr.State.Events, "m.room.name", "") {
				t.Fatalf("full_state sync lacks the full state of %s: %+v", room, jr.State)
			}
		}
		if got := syncBodies(sr.Rooms.Join[busy].Timeline.Events); fmt.Sprint(got) != "[new]" {
			t.Fatalf("full_state timeline = %v, want [new]", got)
		}
		if n := len(sr.Rooms.Join[quiet].Timeline.Events); n != 0 {
			t.Fatalf("full_state timeline of a quiet room holds %d events", n)
		}
		// Without full_state, the quiet room is not sent.
		if _, ok := doSync(t, alice, "?since="+url.QueryEscape(since)).Rooms.Join[quiet]; ok {
			t.Fatalf("incremental sync sends a quiet room")
		}
	})
}

// include_leave shows left rooms in an initial sync, except those forgotten.
func TestSyncIncludeLeaveForgotten(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		bob := Register(t, s, "bob", "correct horse battery")
		kept := syncCreateRoom(t, alice, map[string]any{"preset": "public_chat"})
		forgot := syncCreateRoom(t, alice, map[string]any{"preset": "public_chat"})
		for _, room := range []string{kept, forgot} {
			bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{})
			syncSend(t, bob, room, "hello from bob")
			bob.Must(t, 200, "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/leave", map[string]any{})
		}
		bob.Must(t, 200, "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(forgot)+"/forget", map[string]any{})

		if sr := doSync(t, bob, ""); len(sr.Rooms.Leave) != 0 {
			t.Fatalf("initial sync without include_leave shows left rooms: %v", sr.Rooms.Leave)
		}
		sr := doSync(t, bob, "?"+filterQuery(`{"room":{"include_leave":true}}`))
		lr, ok := sr.Rooms.Leave[kept]
		if !ok || fmt.Sprint(syncBodies(lr.Timeline.Events)) != "[hello from bob]" {
			t.Fatalf("include_leave: left room missing or wrong: %+v", sr.Rooms.Leave)
		}
		if _, ok := sr.Rooms.Leave[forgot]; ok {
			t.Fatalf("include_leave shows a forgotten room")
		}
		// Rejoining ends the forgetting.
		bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(forgot), map[string]any{})
		if _, ok := doSync(t, bob, "").Rooms.Join[forgot]; !ok {
			t.Fatalf("rejoined room not in rooms.join")
		}
	})
}

// include_redundant_members sends the memberships of the timeline's senders every time.
func TestSyncLazyRedundantMembers(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		bob := Register(t, s, "bob", "correct horse battery")
		room := syncCreateRoom(t, alice, map[string]any{"preset": "public_chat", "name": "Lazy"})
		bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{})
		syncSend(t, bob, room, "one")
		lazy := `{"room":{"state":{"lazy_load_members":true},"timeline":{"limit":1}}}`
		redundant := `{"room":{"state":{"lazy_load_members":true,"include_redundant_members":true},"timeline":{"limit":1}}}`
		sr := doSync(t, alice, "?"+filterQuery(lazy))
		if !hasState(sr.Rooms.Join[room].State.Events, "m.room.member", bob.UserID) {
			t.Fatalf("lazy initial sync lacks bob's membership")
		}
		syncSend(t, bob, room, "two")
		next := doSync(t, alice, "?"+filterQuery(redundant)+"&since="+url.QueryEscape(sr.NextBatch))
		if jr := next.Rooms.Join[room]; jr.State == nil || !hasState(jr.State.Events, "m.room.member", bob.UserID) {
			t.Fatalf("include_redundant_members did not resend bob's membership")
		}
		syncSend(t, bob, room, "three")
		third := doSync(t, alice, "?"+filterQuery(lazy)+"&since="+url.QueryEscape(next.NextBatch))
		if jr := third.Rooms.Join[room]; jr.State != nil && hasState(jr.State.Events, "m.room.member", bob.UserID) {
			t.Fatalf("without include_redundant_members bob's membership was resent")
		}
		// Members not in the timeline are never sent, redundant or not.
		carol := Register(t, s, "carol", "correct horse battery")
		carol.Must(t, 200, "POST", "/_matrix/client/v3/join/"+url.PathEscape(room), map[string]any{})
		syncSend(t, bob, room, "four")
		full := doSync(t, alice, "?"+filterQuery(redundant))
		if st := full.Rooms.Join[room].State.Events; hasState(st, "m.room.member", carol.UserID) || !hasState(st, "m.room.member", bob.UserID) {
			t.Fatalf("redundant lazy state: carol present or bob missing: %+v", st)
		}
	})
}

// rooms and not_rooms at the top of the room filter choose the rooms; in the timeline filter
// they empty a room's timeline; contains_url keeps or drops events with a url.
func TestSyncRoomFiltersAndContainsURL(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		a := syncCreateRoom(t, alice, nil)
		b := syncCreateRoom(t, alice, nil)
		syncSend(t, alice, a, "in a")
		syncSend(t, alice, b, "in b")
		for _, c := range []struct {
			filter string
			want   map[string]bool
		}{
			{fmt.Sprintf(`{"room":{"rooms":[%q]}}`, a), map[string]bool{a: true}},
			{fmt.Sprintf(`{"room":{"not_rooms":[%q]}}`, a), map[string]bool{b: true}},
			{fmt.Sprintf(`{"room":{"rooms":[%q,%q],"not_rooms":[%q]}}`, a, b, b), map[string]bool{a: true}},
			{`{"room":{"rooms":[]}}`, map[string]bool{}},
		} {
			sr := doSync(t, alice, "?"+filterQuery(c.filter))
			if len(sr.Rooms.Join) != len(c.want) {
				t.Fatalf("%s: %d rooms, want %v", c.filter, len(sr.Rooms.Join), c.want)
			}
			for room := range c.want {
				if _, ok := sr.Rooms.Join[room]; !ok {
					t.Fatalf("%s: room %s missing", c.filter, room)
				}
			}
		}
		sr := doSync(t, alice, "?"+filterQuery(fmt.Sprintf(`{"room":{"timeline":{"not_rooms":[%q]}}}`, a)))
		ja, jb := sr.Rooms.Join[a], sr.Rooms.Join[b]
		if len(ja.Timeline.Events) != 0 || ja.Timeline.Limited || ja.State == nil || !hasState(ja.State.Events, "m.room.create", "") {
			t.Fatalf("timeline.not_rooms: room a timeline %d events limited %v, state %+v", len(ja.Timeline.Events), ja.Timeline.Limited, ja.State)
		}
		if fmt.Sprint(syncBodies(jb.Timeline.Events)) != "[in b]" {
			t.Fatalf("timeline.not_rooms: room b timeline %v", syncBodies(jb.Timeline.Events))
		}

		alice.Must(t, 200, "PUT", "/_matrix/client/v3/rooms/"+url.PathEscape(a)+"/send/m.room.message/url1",
			map[string]any{"msgtype": "m.image", "body": "picture", "url": "mxc://example.org/abc"})
		sendNoise(t, alice, a, 15)
		syncSend(t, alice, a, "plain")
		withURL := doSync(t, alice, "?"+filterQuery(`{"room":{"timeline":{"limit":1,"contains_url":true}}}`))
		if got := fmt.Sprint(syncBodies(withURL.Rooms.Join[a].Timeline.Events)); got != "[picture]" {
			t.Fatalf("contains_url true: %v", got)
		}
		noURL := doSync(t, alice, "?"+filterQuery(`{"room":{"timeline":{"limit":2,"contains_url":false,"types":["m.room.message"]}}}`))
		if got := fmt.Sprint(syncBodies(noURL.Rooms.Join[a].Timeline.Events)); got != "[in a plain]" {
			t.Fatalf("contains_url false: %v", got)
		}
	})
}
