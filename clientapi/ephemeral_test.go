package clientapi

import (
	"encoding/json"
	"testing"
	"time"

	"myelin/storage"
)

// Private receipts are shown to their owner only.
func TestReceiptEventHidesOthersPrivateReceipts(t *testing.T) {
	rcs := []storage.Receipt{
		{RoomID: "!r:x", UserID: "@a:x", Type: "m.read", EventID: "$1", TS: 1},
		{RoomID: "!r:x", UserID: "@b:x", Type: "m.read.private", EventID: "$2", TS: 2},
		{RoomID: "!r:x", UserID: "@a:x", Type: "m.read", ThreadID: "$root", EventID: "$3", TS: 3},
	}
	for _, tc := range []struct {
		viewer string
		want   string
	}{
		{"@a:x", `{"$1":{"m.read":{"@a:x":{"ts":1}}},"$3":{"m.read":{"@a:x":{"thread_id":"$root","ts":3}}}}`},
		{"@b:x", `{"$1":{"m.read":{"@a:x":{"ts":1}}},"$2":{"m.read.private":{"@b:x":{"ts":2}}},"$3":{"m.read":{"@a:x":{"thread_id":"$root","ts":3}}}}`},
	} {
		ev, ok := receiptEvent(rcs, tc.viewer)
		if !ok || ev.Type != "m.receipt" || string(ev.Content) != tc.want {
			t.Errorf("as %s: %s %s", tc.viewer, ev.Type, ev.Content)
		}
	}
	if _, ok := receiptEvent(rcs[1:2], "@a:x"); ok {
		t.Error("a room with only someone else's private receipt has an m.receipt event")
	}
}

// Typing entries change the room's position when they start, stop and expire, not when
// refreshed.
func TestTypingPositions(t *testing.T) {
	e := NewEphemeral(EphemeralConfig{})
	start := e.TypingPosition()
	if !e.setTyping("!r", "@a", true, time.Minute, nil) {
		t.Fatal("starting to type changed nothing")
	}
	p1 := e.TypingPosition()
	if e.setTyping("!r", "@a", true, time.Minute, nil) {
		t.Error("refreshing changed the list")
	}
	expired := make(chan struct{})
	e.setTyping("!r", "@b", true, 20*time.Millisecond, func() { close(expired) })
	<-expired
	got := e.typingChanges([]string{"!r", "!other"}, start)
	if b, _ := json.Marshal(got); string(b) != `{"!r":["@a"]}` {
		t.Errorf("after @b expired: %s", b)
	}
	if len(e.typingChanges([]string{"!r"}, e.TypingPosition())) != 0 {
		t.Error("changes reported at the current position")
	}
	if !e.setTyping("!r", "@a", false, 0, nil) || e.TypingPosition() <= p1 {
		t.Error("stopping did not move the position")
	}
	if got := e.typingChanges([]string{"!r"}, 0); len(got) != 0 {
		t.Errorf("initial sync with nobody typing: %v", got)
	}
}
