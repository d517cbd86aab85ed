package sytest

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// Black-box tests of relations: edits, threads, references and reactions, as /relations,
// /threads and the bundled aggregations of every read path show them.

func sendEvent(t *testing.T, c *Client, roomID, typ string, content map[string]any) string {
	t.Helper()
	txn := fmt.Sprintf("rel%d", txnCounter.Add(1))
	r := c.Must(t, 200, "PUT", v3+"/rooms/"+esc(roomID)+"/send/"+typ+"/"+txn, content)
	return r.Str("event_id")
}

func relatesTo(relType, parent string) map[string]any {
	return map[string]any{"rel_type": relType, "event_id": parent}
}

func sendEdit(t *testing.T, c *Client, roomID, original, body string) string {
	t.Helper()
	return sendEvent(t, c, roomID, "m.room.message", map[string]any{
		"msgtype": "m.text", "body": "* " + body,
		"m.new_content": map[string]any{"msgtype": "m.text", "body": body},
		"m.relates_to":  relatesTo("m.replace", original),
	})
}

func sendThreadReply(t *testing.T, c *Client, roomID, root, body string) string {
	t.Helper()
	rel := relatesTo("m.thread", root)
	rel["is_falling_back"] = true
	rel["m.in_reply_to"] = map[string]any{"event_id": root}
	return sendEvent(t, c, roomID, "m.room.message", map[string]any{"msgtype": "m.text", "body": body, "m.relates_to": rel})
}

// relationsOf returns unsigned["m.relations"] of a client event.
func relationsOf(ev map[string]any) map[string]any {
	u, _ := ev["unsigned"].(map[string]any)
	rels, _ := u["m.relations"].(map[string]any)
	return rels
}

// bundledEdit is the event id of the m.replace bundled with ev, "" if none.
func bundledEdit(ev map[string]any) string {
	r, _ := relationsOf(ev)["m.replace"].(map[string]any)
	id, _ := r["event_id"].(string)
	return id
}

func getEventJSON(t *testing.T, c *Client, roomID, eventID string) map[string]any {
	t.Helper()
	return c.Must(t, 200, "GET", v3+"/rooms/"+esc(roomID)+"/event/"+esc(eventID), nil).Body
}

// findEvent returns the event with this id among evs, nil if absent.
func findEvent(evs []map[string]any, id string) map[string]any {
	for _, e := range evs {
		if e["event_id"] == id {
			return e
		}
	}
	return nil
}

func eventIDs(evs []map[string]any) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i], _ = e["event_id"].(string)
	}
	return out
}

func relationsPath(roomID, eventID string, rest ...string) string {
	p := v1 + "/rooms/" + esc(roomID) + "/relations/" + esc(eventID)
	for _, r := range rest {
		p += "/" + esc(r)
	}
	return p
}

func TestRelations(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "alice password")
		bob := Register(t, s, "bob", "bob password")
		carol := Register(t, s, "carol", "carol password")
		eve := Register(t, s, "eve", "eve password")
		room := createRoom(t, alice, map[string]any{"preset": "public_chat"})
		for _, c := range []*Client{bob, carol} {
			c.Must(t, 200, "POST", v3+"/join/"+esc(room), map[string]any{})
		}

		t.Run("edits", func(t *testing.T) { testEdits(t, alice, bob, room) })
		t.Run("threads", func(t *testing.T) { testThreads(t, alice, bob, carol, room) })
		t.Run("relations", func(t *testing.T) { testRelationsPaging(t, alice, bob, carol, room) })
		t.Run("visibility", func(t *testing.T) { testRelationsVisibility(t, alice, eve, room) })
		t.Run("bad input", func(t *testing.T) {
			msg := sendText(t, alice, room, "x")
			alice.MustErr(t, 400, "M_INVALID_PARAM", "GET", relationsPath(room, msg)+"?dir=sideways", nil)
			alice.MustErr(t, 400, "M_INVALID_PARAM", "GET", relationsPath(room, msg)+"?from=nonsense", nil)
			alice.MustErr(t, 400, "M_INVALID_PARAM", "GET", relationsPath(room, msg)+"?recurse=maybe", nil)
			alice.MustErr(t, 400, "M_INVALID_PARAM", "GET", v1+"/rooms/"+esc(room)+"/threads?limit=0", nil)
			alice.MustErr(t, 400, "M_INVALID_PARAM", "GET", v1+"/rooms/"+esc(room)+"/threads?include=some", nil)
			alice.MustErr(t, 400, "M_INVALID_PARAM", "GET", v1+"/rooms/"+esc(room)+"/threads?from=nonsense", nil)
			alice.MustErr(t, 404, "M_NOT_FOUND", "GET", relationsPath(room, "$nosuchevent"), nil)
		})
	})
}

// testEdits: the most recent valid edit is bundled as m.replace wherever the original is
// served, an edit by someone else is not, redacting an edit reverts it, and a redacted
// original shows no edit.
func testEdits(t *testing.T, alice, bob *Client, room string) {
	orig := sendText(t, alice, room, "hello")
	edit1 := sendEdit(t, alice, room, orig, "hello there")
	time.Sleep(5 * time.Millisecond) // edits are ordered by origin_server_ts
	edit2 := sendEdit(t, alice, room, orig, "hello there, world")
	time.Sleep(5 * time.Millisecond)
	// Not valid: another sender, and an m.replace without m.new_content.
	sendEdit(t, bob, room, orig, "hijacked")
	sendEvent(t, alice, room, "m.room.message", map[string]any{"msgtype": "m.text", "body": "* nothing",
		"m.relates_to": relatesTo("m.replace", orig)})

	ev := getEventJSON(t, bob, room, orig)
	if got := bundledEdit(ev); got != edit2 {
		t.Fatalf("/event: m.replace = %q, want %s: %v", got, edit2, ev["unsigned"])
	}
	rep := relationsOf(ev)["m.replace"].(map[string]any)
	if c, _ := rep["content"].(map[string]any); c == nil || c["m.new_content"] == nil || rep["sender"] != alice.UserID {
		t.Errorf("/event: m.replace is not the whole edit event: %v", rep)
	}
	if c, _ := ev["content"].(map[string]any); c["body"] != "hello" {
		t.Errorf("/event: the original's content was replaced: %v", c)
	}
	if e := findEvent(roomEvents(messages(t, bob, room, "dir=b&limit=50"), "chunk"), orig); e == nil || bundledEdit(e) != edit2 {
		t.Errorf("/messages: original %v lacks m.replace %s", e, edit2)
	}
	ctx := bob.Must(t, 200, "GET", v3+"/rooms/"+esc(room)+"/context/"+esc(orig)+"?limit=2", nil)
	if got := bundledEdit(asMap(t, ctx.Body["event"])); got != edit2 {
		t.Errorf("/context: m.replace = %q, want %s", got, edit2)
	}
	filter := url.QueryEscape(`{"room":{"timeline":{"limit":50}}}`)
	var inSync bool
	for _, e := range doSync(t, bob, "?filter="+filter).Rooms.Join[room].Timeline.Events {
		if e.EventID == orig {
			inSync = true
			if got := bundledEdit(asMap(t, e)); got != edit2 {
				t.Errorf("/sync: m.replace = %q, want %s", got, edit2)
			}
		}
	}
	if !inSync {
		t.Errorf("/sync lacks the original")
	}

	// Redacting the latest edit reverts to the one before; redacting that leaves none.
	redact(t, alice, room, edit2, "", 200)
	if got := bundledEdit(getEventJSON(t, bob, room, orig)); got != edit1 {
		t.Errorf("after redacting the latest edit: m.replace = %q, want %s", got, edit1)
	}
	redact(t, alice, room, edit1, "", 200)
	if got := bundledEdit(getEventJSON(t, bob, room, orig)); got != "" {
		t.Errorf("after redacting every edit: m.replace = %q", got)
	}
	if e := findEvent(roomEvents(messages(t, bob, room, "dir=b&limit=50"), "chunk"), orig); e == nil || bundledEdit(e) != "" {
		t.Errorf("/messages after redacting every edit: %v", e)
	}

	// A redacted original shows no edit.
	other := sendText(t, alice, room, "to be removed")
	sendEdit(t, alice, room, other, "to be removed, edited")
	redact(t, alice, room, other, "", 200)
	if got := bundledEdit(getEventJSON(t, bob, room, other)); got != "" {
		t.Errorf("redacted original has m.replace %q", got)
	}

	// Encrypted edits: m.relates_to is in the cleartext and is what counts.
	enc := func(rel map[string]any) map[string]any {
		c := map[string]any{"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEn...", "sender_key": "key",
			"device_id": alice.DeviceID, "session_id": "session"}
		if rel != nil {
			c["m.relates_to"] = rel
		}
		return c
	}
	encOrig := sendEvent(t, alice, room, "m.room.encrypted", enc(nil))
	encEdit := sendEvent(t, alice, room, "m.room.encrypted", enc(relatesTo("m.replace", encOrig)))
	if got := bundledEdit(getEventJSON(t, bob, room, encOrig)); got != encEdit {
		t.Errorf("encrypted edit: m.replace = %q, want %s", got, encEdit)
	}
}

// threadOf returns unsigned["m.relations"]["m.thread"] of ev.
func threadOf(ev map[string]any) map[string]any {
	th, _ := relationsOf(ev)["m.thread"].(map[string]any)
	return th
}

func threadsList(t *testing.T, c *Client, room, query string) Reply {
	t.Helper()
	return c.Must(t, 200, "GET", v1+"/rooms/"+esc(room)+"/threads?"+query, nil)
}

// testThreads: the m.thread aggregation (count, latest event with its own edit, participation)
// and /threads with include and pagination.
func testThreads(t *testing.T, alice, bob, carol *Client, room string) {
	root := sendText(t, alice, room, "thread root")
	sendThreadReply(t, bob, room, root, "reply 1")
	sendThreadReply(t, alice, room, root, "reply 2")
	last := sendThreadReply(t, bob, room, root, "reply 3")
	lastEdit := sendEdit(t, bob, room, last, "reply 3, edited")

	check := func(who *Client, participated bool) {
		t.Helper()
		th := threadOf(getEventJSON(t, who, room, root))
		if th == nil {
			t.Fatalf("%s: no m.thread on the root", who.UserID)
		}
		if th["count"] != float64(3) || th["current_user_participated"] != participated {
			t.Errorf("%s: m.thread = count %v, participated %v; want 3, %v", who.UserID, th["count"], th["current_user_participated"], participated)
		}
		latest, _ := th["latest_event"].(map[string]any)
		if latest["event_id"] != last || latest["room_id"] != room {
			t.Errorf("%s: latest_event = %v, want %s", who.UserID, latest["event_id"], last)
		}
		if got := bundledEdit(latest); got != lastEdit {
			t.Errorf("%s: latest_event's m.replace = %q, want %s", who.UserID, got, lastEdit)
		}
	}
	check(alice, true) // sent the root
	check(bob, true)   // replied
	check(carol, false)

	// A second, more recent thread.
	root2 := sendText(t, bob, room, "second thread")
	sendThreadReply(t, bob, room, root2, "only reply")

	all := eventIDs(roomEvents(threadsList(t, carol, room, ""), "chunk"))
	if !slices.Equal(all, []string{root2, root}) {
		t.Errorf("/threads = %v, want [%s %s]", all, root2, root)
	}
	// Pages of one.
	p1 := threadsList(t, carol, room, "limit=1")
	if ids := eventIDs(roomEvents(p1, "chunk")); !slices.Equal(ids, []string{root2}) || p1.Str("next_batch") == "" {
		t.Fatalf("/threads page 1 = %v, next_batch %q", ids, p1.Str("next_batch"))
	}
	if th := threadOf(roomEvents(p1, "chunk")[0]); th == nil || th["count"] != float64(1) {
		t.Errorf("/threads: root without its aggregation: %v", roomEvents(p1, "chunk")[0]["unsigned"])
	}
	p2 := threadsList(t, carol, room, "limit=1&from="+url.QueryEscape(p1.Str("next_batch")))
	if ids := eventIDs(roomEvents(p2, "chunk")); !slices.Equal(ids, []string{root}) {
		t.Errorf("/threads page 2 = %v, want [%s]", ids, root)
	}
	if next := p2.Str("next_batch"); next != "" {
		if p3 := threadsList(t, carol, room, "limit=1&from="+url.QueryEscape(next)); len(roomEvents(p3, "chunk")) != 0 {
			t.Errorf("/threads page 3 = %v", eventIDs(roomEvents(p3, "chunk")))
		}
	}
	// Participation.
	if ids := eventIDs(roomEvents(threadsList(t, carol, room, "include=participated"), "chunk")); len(ids) != 0 {
		t.Errorf("carol participated in %v", ids)
	}
	if ids := eventIDs(roomEvents(threadsList(t, alice, room, "include=participated"), "chunk")); !slices.Equal(ids, []string{root}) {
		t.Errorf("alice participated in %v, want [%s]", ids, root)
	}
	if ids := eventIDs(roomEvents(threadsList(t, bob, room, "include=all"), "chunk")); !slices.Equal(ids, []string{root2, root}) {
		t.Errorf("bob include=all: %v", ids)
	}

	// The whole thread through /relations.
	rel := alice.Must(t, 200, "GET", relationsPath(room, root, "m.thread"), nil)
	if n := len(roomEvents(rel, "chunk")); n != 3 {
		t.Errorf("/relations m.thread: %d events, want 3", n)
	}

	// Redacting the root keeps the thread; redacting its only reply ends it.
	redact(t, bob, room, root2, "", 200)
	if ids := eventIDs(roomEvents(threadsList(t, carol, room, ""), "chunk")); !slices.Equal(ids, []string{root2, root}) {
		t.Errorf("after redacting a root: /threads = %v", ids)
	}
	reply2 := eventIDs(roomEvents(alice.Must(t, 200, "GET", relationsPath(room, root2), nil), "chunk"))
	if len(reply2) != 1 {
		t.Fatalf("relations of root2: %v", reply2)
	}
	redact(t, bob, room, reply2[0], "", 200)
	if ids := eventIDs(roomEvents(threadsList(t, carol, room, ""), "chunk")); !slices.Equal(ids, []string{root}) {
		t.Errorf("after redacting the only reply: /threads = %v", ids)
	}

	// related_by_rel_types on /messages keeps only the events with such children.
	filter := url.QueryEscape(`{"related_by_rel_types":["m.thread"]}`)
	if ids := eventIDs(roomEvents(messages(t, carol, room, "dir=b&limit=50&filter="+filter), "chunk")); !slices.Equal(ids, []string{root}) {
		t.Errorf("/messages related_by_rel_types m.thread = %v, want [%s]", ids, root)
	}
	filter = url.QueryEscape(`{"related_by_rel_types":["m.thread"],"related_by_senders":["` + carol.UserID + `"]}`)
	if ids := eventIDs(roomEvents(messages(t, carol, room, "dir=b&limit=50&filter="+filter), "chunk")); len(ids) != 0 {
		t.Errorf("/messages related_by_senders carol = %v, want none", ids)
	}
}

// testRelationsPaging: /relations with from/limit/dir, rel_type and event type filters,
// recursion, reactions, and the m.reference aggregation.
func testRelationsPaging(t *testing.T, alice, bob, carol *Client, room string) {
	parent := sendText(t, alice, room, "parent")
	var children []string // oldest first
	for i := range 3 {
		children = append(children, sendEvent(t, alice, room, "m.room.message", map[string]any{
			"msgtype": "m.text", "body": fmt.Sprintf("ref %d", i), "m.relates_to": relatesTo("m.reference", parent)}))
	}
	thumbs := sendEvent(t, bob, room, "m.reaction", map[string]any{
		"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": parent, "key": "👍"}})
	heart := sendEvent(t, carol, room, "m.reaction", map[string]any{
		"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": parent, "key": "❤️"}})
	children = append(children, thumbs, heart)
	// A grandchild, only reached with recurse.
	grandchild := sendEvent(t, bob, room, "m.reaction", map[string]any{
		"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": children[0], "key": "👀"}})
	// Noise: an event of another parent, and one relating to nothing valid.
	sendEvent(t, alice, room, "m.room.message", map[string]any{"msgtype": "m.text", "body": "x",
		"m.relates_to": map[string]any{"rel_type": "m.reference", "event_id": 42}})
	sendEvent(t, alice, room, "m.room.message", map[string]any{"msgtype": "m.text", "body": "y", "m.relates_to": "nonsense"})

	newestFirst := slices.Clone(children)
	slices.Reverse(newestFirst)

	r := alice.Must(t, 200, "GET", relationsPath(room, parent), nil)
	if ids := eventIDs(roomEvents(r, "chunk")); !slices.Equal(ids, newestFirst) {
		t.Errorf("/relations = %v, want %v", ids, newestFirst)
	}
	if _, ok := r.Body["recursion_depth"]; ok {
		t.Errorf("recursion_depth without recurse: %s", r.Raw)
	}

	// Backwards in pages of two, then forwards.
	for _, dir := range []string{"b", "f"} {
		want := newestFirst
		if dir == "f" {
			want = children
		}
		var got []string
		from := ""
		for page := 0; ; page++ {
			if page > 5 {
				t.Fatalf("dir=%s: pagination does not end", dir)
			}
			q := "?limit=2&dir=" + dir
			if from != "" {
				q += "&from=" + url.QueryEscape(from)
			}
			p := alice.Must(t, 200, "GET", relationsPath(room, parent)+q, nil)
			ids := eventIDs(roomEvents(p, "chunk"))
			if len(ids) > 2 {
				t.Fatalf("dir=%s: page of %d", dir, len(ids))
			}
			if from != "" && p.Str("prev_batch") == "" {
				t.Errorf("dir=%s: a later page has no prev_batch", dir)
			}
			got = append(got, ids...)
			from = p.Str("next_batch")
			if from == "" {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("dir=%s pages = %v, want %v", dir, got, want)
		}
	}
	// from and to: the next_batch of a first page both continues it and, as to, bounds a
	// page to what the first page held.
	first := alice.Must(t, 200, "GET", relationsPath(room, parent)+"?limit=2", nil)
	next := url.QueryEscape(first.Str("next_batch"))
	rest := alice.Must(t, 200, "GET", relationsPath(room, parent)+"?from="+next, nil)
	if ids := eventIDs(roomEvents(rest, "chunk")); !slices.Equal(ids, newestFirst[2:]) {
		t.Errorf("second page = %v, want %v", ids, newestFirst[2:])
	}
	upTo := alice.Must(t, 200, "GET", relationsPath(room, parent)+"?to="+next, nil)
	if ids := eventIDs(roomEvents(upTo, "chunk")); !slices.Equal(ids, newestFirst[:2]) {
		t.Errorf("page up to the first next_batch = %v, want %v", ids, newestFirst[:2])
	}
	// A /messages token works as from.
	start := messages(t, alice, room, "dir=b&limit=1").Str("start")
	if ids := eventIDs(roomEvents(alice.Must(t, 200, "GET", relationsPath(room, parent)+"?from="+url.QueryEscape(start), nil), "chunk")); len(ids) != len(children) {
		t.Errorf("from a /messages start token: %v", ids)
	}

	// Filters by rel_type and event type.
	cases := []struct {
		path []string
		want []string
	}{
		{[]string{"m.annotation"}, []string{heart, thumbs}},
		{[]string{"m.annotation", "m.reaction"}, []string{heart, thumbs}},
		{[]string{"m.reference"}, []string{children[2], children[1], children[0]}},
		{[]string{"m.reference", "m.room.message"}, []string{children[2], children[1], children[0]}},
		{[]string{"m.reference", "m.reaction"}, nil},
		{[]string{"m.replace"}, nil},
	}
	for _, tc := range cases {
		ids := eventIDs(roomEvents(alice.Must(t, 200, "GET", relationsPath(room, parent, tc.path...), nil), "chunk"))
		if !slices.Equal(ids, tc.want) && !(len(ids) == 0 && len(tc.want) == 0) {
			t.Errorf("/relations/%s = %v, want %v", strings.Join(tc.path, "/"), ids, tc.want)
		}
	}

	// Recursion follows children of children, through matching events only.
	rec := alice.Must(t, 200, "GET", relationsPath(room, parent)+"?recurse=true", nil)
	if ids := eventIDs(roomEvents(rec, "chunk")); !slices.Contains(ids, grandchild) || len(ids) != len(children)+1 {
		t.Errorf("recurse=true = %v, want the %d children and %s", ids, len(children), grandchild)
	}
	if d, ok := rec.Body["recursion_depth"].(float64); !ok || d < 3 {
		t.Errorf("recursion_depth = %v", rec.Body["recursion_depth"])
	}
	rec = alice.Must(t, 200, "GET", relationsPath(room, parent, "m.annotation")+"?recurse=true", nil)
	if ids := eventIDs(roomEvents(rec, "chunk")); slices.Contains(ids, grandchild) {
		t.Errorf("recurse through a non-matching reference reached %s", grandchild)
	}
	norec := alice.Must(t, 200, "GET", relationsPath(room, parent)+"?recurse=false", nil)
	if d := norec.Body["recursion_depth"]; d != float64(1) || slices.Contains(eventIDs(roomEvents(norec, "chunk")), grandchild) {
		t.Errorf("recurse=false: depth %v, chunk %v", d, eventIDs(roomEvents(norec, "chunk")))
	}

	// The m.reference aggregation lists the references; annotations are not aggregated.
	rels := relationsOf(getEventJSON(t, carol, room, parent))
	ref, _ := rels["m.reference"].(map[string]any)
	var refs []string
	for _, e := range ref["chunk"].([]any) {
		refs = append(refs, e.(map[string]any)["event_id"].(string))
	}
	if !slices.Equal(refs, children[:3]) {
		t.Errorf("m.reference chunk = %v, want %v", refs, children[:3])
	}
	if _, ok := rels["m.annotation"]; ok {
		t.Errorf("m.annotation was aggregated: %v", rels)
	}
	// A second identical annotation is refused; a retry of the first is not; after a
	// redaction the annotation may be sent again.
	dupTxn := fmt.Sprintf("rel%d", txnCounter.Add(1))
	react := map[string]any{"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": children[1], "key": "🎉"}}
	firstReact := bob.Must(t, 200, "PUT", v3+"/rooms/"+esc(room)+"/send/m.reaction/"+dupTxn, react).Str("event_id")
	if again := bob.Must(t, 200, "PUT", v3+"/rooms/"+esc(room)+"/send/m.reaction/"+dupTxn, react).Str("event_id"); again != firstReact {
		t.Errorf("retried annotation: %s, want %s", again, firstReact)
	}
	bob.MustErr(t, 400, "M_DUPLICATE_ANNOTATION", "PUT", v3+"/rooms/"+esc(room)+"/send/m.reaction/dup"+dupTxn, react)
	sendEvent(t, carol, room, "m.reaction", react) // another sender may
	redact(t, bob, room, firstReact, "", 200)
	sendEvent(t, bob, room, "m.reaction", react)
	// A thread may not start from an event that relates to another.
	bob.MustErr(t, 400, "M_UNKNOWN", "PUT", v3+"/rooms/"+esc(room)+"/send/m.room.message/thr"+dupTxn,
		map[string]any{"msgtype": "m.text", "body": "no", "m.relates_to": relatesTo("m.thread", children[0])})

	// Redacting a reaction removes it from /relations.
	redact(t, bob, room, thumbs, "", 200)
	if ids := eventIDs(roomEvents(alice.Must(t, 200, "GET", relationsPath(room, parent, "m.annotation"), nil), "chunk")); !slices.Equal(ids, []string{heart}) {
		t.Errorf("after redacting a reaction: %v", ids)
	}
}

// testRelationsVisibility: a user who may not see the room gets 404 from /relations and 403
// from /threads; one who joined later does not see children from before.
func testRelationsVisibility(t *testing.T, alice, eve *Client, publicRoom string) {
	room := createRoom(t, alice, map[string]any{"preset": "private_chat", "initial_state": []any{
		map[string]any{"type": "m.room.history_visibility", "content": map[string]any{"history_visibility": "joined"}},
	}})
	parent := sendText(t, alice, room, "secret parent")
	early := sendThreadReply(t, alice, room, parent, "secret reply")

	eve.MustErr(t, 404, "M_NOT_FOUND", "GET", relationsPath(room, parent), nil)
	eve.MustErr(t, 404, "M_NOT_FOUND", "GET", relationsPath(room, parent, "m.thread"), nil)
	eve.MustErr(t, 403, "M_FORBIDDEN", "GET", v1+"/rooms/"+esc(room)+"/threads", nil)
	eve.MustErr(t, 403, "M_FORBIDDEN", "GET", v1+"/rooms/"+esc("!nosuchroom:localhost")+"/threads", nil)

	// Eve joins: the parent is still before her time.
	alice.Must(t, 200, "POST", v3+"/rooms/"+esc(room)+"/invite", map[string]any{"user_id": eve.UserID})
	eve.Must(t, 200, "POST", v3+"/rooms/"+esc(room)+"/join", nil)
	eve.MustErr(t, 404, "M_NOT_FOUND", "GET", relationsPath(room, parent), nil)
	if ids := eventIDs(roomEvents(threadsList(t, eve, room, ""), "chunk")); len(ids) != 0 {
		t.Errorf("eve sees threads from before she joined: %v", ids)
	}
	// A new parent after her join, with one reply before and after her join.
	later := sendText(t, alice, room, "after eve joined")
	reply := sendThreadReply(t, alice, room, later, "visible reply")
	ids := eventIDs(roomEvents(eve.Must(t, 200, "GET", relationsPath(room, later), nil), "chunk"))
	if !slices.Equal(ids, []string{reply}) {
		t.Errorf("eve's /relations = %v, want [%s]", ids, reply)
	}
	// Alice, there all along, sees the early thread; eve only the later one.
	if th := threadOf(getEventJSON(t, alice, room, parent)); th == nil || th["latest_event"].(map[string]any)["event_id"] != early {
		t.Errorf("alice's m.thread on the early root: %v", th)
	}
	if ids := eventIDs(roomEvents(threadsList(t, eve, room, ""), "chunk")); !slices.Equal(ids, []string{later}) {
		t.Errorf("eve's /threads = %v, want [%s]", ids, later)
	}
	_ = publicRoom
}
