package sytest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
)

// Black-box tests of redactions: what clients see of a redacted event on every read path.

func redact(t *testing.T, c *Client, roomID, eventID, reason string, want int) string {
	t.Helper()
	txn := fmt.Sprintf("redact%d", txnCounter.Add(1))
	r := c.Do(t, "PUT", v3+"/rooms/"+esc(roomID)+"/redact/"+esc(eventID)+"/"+txn, map[string]any{"reason": reason})
	if r.Status != want {
		t.Fatalf("redact %s: %d %s", eventID, r.Status, r.Raw)
	}
	return r.Str("event_id")
}

// checkRedactedEvent checks a client event as JSON: empty content (for a message), and
// unsigned.redacted_because naming the redaction.
func checkRedactedEvent(t *testing.T, where string, ev map[string]any, redactionID string) {
	t.Helper()
	if c, _ := ev["content"].(map[string]any); len(c) != 0 {
		t.Errorf("%s: redacted event has content %v", where, c)
	}
	u, _ := ev["unsigned"].(map[string]any)
	because, _ := u["redacted_because"].(map[string]any)
	if because["event_id"] != redactionID || because["type"] != "m.room.redaction" {
		t.Errorf("%s: redacted_because = %v, want %s", where, u["redacted_because"], redactionID)
	}
}

func asMap(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRedaction(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		bob := Register(t, s, "bob", "correct horse battery")
		carol := Register(t, s, "carol", "correct horse battery")
		room := createRoom(t, alice, map[string]any{"preset": "public_chat", "topic": "topic plugh"})
		for _, c := range []*Client{bob, carol} {
			c.Must(t, 200, "POST", v3+"/join/"+esc(room), map[string]any{})
		}
		msg := sendText(t, bob, room, "secret xyzzy")
		other := sendText(t, alice, room, "alice speaks")
		since := doSync(t, alice, "").NextBatch

		// Someone without the redact level may not redact others' events.
		redact(t, carol, room, other, "", 403)

		red := redact(t, bob, room, msg, "oops", 200)

		// Incremental sync: the redaction itself arrives.
		next := doSync(t, alice, "?since="+since)
		var seen bool
		for _, e := range next.Rooms.Join[room].Timeline.Events {
			if e.Type == "m.room.redaction" && e.EventID == red {
				seen = true
				var c map[string]any
				_ = json.Unmarshal(e.Content, &c)
				if c["redacts"] != msg {
					t.Errorf("redaction content %s, want redacts %s", e.Content, msg)
				}
			}
		}
		if !seen {
			t.Fatalf("incremental sync lacks the redaction: %+v", next.Rooms.Join[room].Timeline.Events)
		}

		// Initial sync afterwards: the message is shown redacted.
		filter := url.QueryEscape(`{"room":{"timeline":{"limit":50}}}`)
		full := doSync(t, alice, "?filter="+filter)
		var found bool
		for _, e := range full.Rooms.Join[room].Timeline.Events {
			if e.EventID == msg {
				found = true
				checkRedactedEvent(t, "initial sync", asMap(t, e), red)
			}
		}
		if !found {
			t.Fatalf("initial sync lacks the redacted message")
		}

		// /event, /messages, /context.
		ev := alice.Must(t, 200, "GET", v3+"/rooms/"+esc(room)+"/event/"+esc(msg), nil)
		checkRedactedEvent(t, "/event", ev.Body, red)
		found = false
		for _, e := range roomEvents(messages(t, alice, room, "dir=b&limit=50"), "chunk") {
			if e["event_id"] == msg {
				found = true
				checkRedactedEvent(t, "/messages", e, red)
			}
		}
		if !found {
			t.Errorf("/messages lacks the redacted message")
		}
		ctxReply := alice.Must(t, 200, "GET", v3+"/rooms/"+esc(room)+"/context/"+esc(msg)+"?limit=4", nil)
		checkRedactedEvent(t, "/context", asMap(t, ctxReply.Body["event"]), red)

		// A redacted state event stays in the state, without its content.
		topic := alice.Must(t, 200, "GET", v3+"/rooms/"+esc(room)+"/state/m.room.topic/?format=event", nil)
		topicID, _ := topic.Body["event_id"].(string)
		redTopic := redact(t, alice, room, topicID, "", 200)
		if c := stateContent(t, alice, room, "m.room.topic", ""); len(c) != 0 {
			t.Errorf("topic content after redaction: %v", c)
		}
		var inState bool
		for _, e := range getStateList(t, alice, room, 200) {
			if e["event_id"] == topicID {
				inState = true
				checkRedactedEvent(t, "/state", e, redTopic)
			}
		}
		if !inState {
			t.Errorf("the redacted topic left the room state")
		}

		// PUT /send/m.room.redaction is a redaction too, with the same checks.
		txn := fmt.Sprintf("redact%d", txnCounter.Add(1))
		carol.MustErr(t, 403, "M_FORBIDDEN", "PUT", v3+"/rooms/"+esc(room)+"/send/m.room.redaction/"+txn, map[string]any{"redacts": other})
		txn = fmt.Sprintf("redact%d", txnCounter.Add(1))
		r := alice.Must(t, 200, "PUT", v3+"/rooms/"+esc(room)+"/send/m.room.redaction/"+txn, map[string]any{"redacts": other})
		ev = alice.Must(t, 200, "GET", v3+"/rooms/"+esc(room)+"/event/"+esc(other), nil)
		checkRedactedEvent(t, "/event after /send", ev.Body, r.Str("event_id"))

		// Redacted for good: still so after a restart.
		s.Restart(t)
		ev = alice.Must(t, 200, "GET", v3+"/rooms/"+esc(room)+"/event/"+esc(msg), nil)
		checkRedactedEvent(t, "/event after restart", ev.Body, red)
	})
}
