package clientapi

import (
	"testing"
	"time"
)

// presenceAt returns an Ephemeral with presence on and a clock the test moves.
func presenceAt(t *testing.T) (*Ephemeral, *time.Time) {
	t.Helper()
	e := NewEphemeral(EphemeralConfig{ServerName: "x", Presence: true})
	clock := time.Unix(1_700_000_000, 0)
	e.now = func() time.Time { return clock }
	return e, &clock
}

func mustPresence(t *testing.T, e *Ephemeral, user, want string, active bool) presenceSnapshot {
	t.Helper()
	s, ok := e.presenceOf(user)
	if !ok || s.presence != want || s.currentlyActive != active {
		t.Fatalf("%s: got %+v (known %v), want %s active=%v", user, s, ok, want, active)
	}
	return s
}

// A sync brings a user online; they go offline presenceSyncTimeout after their last sync ends.
func TestPresenceSyncAndOffline(t *testing.T) {
	e, clock := presenceAt(t)
	start := e.PresencePosition()
	done := e.PresenceSyncStarted("@a:x", "")
	mustPresence(t, e, "@a:x", presenceOnline, true)
	if e.PresencePosition() <= start {
		t.Fatal("coming online did not move the position")
	}
	*clock = clock.Add(10 * time.Minute) // a long sync keeps the user connected...
	e.presenceTimeouts()
	mustPresence(t, e, "@a:x", presenceUnavailable, false) // ...but idle
	done()
	*clock = clock.Add(presenceSyncTimeout - time.Second)
	e.presenceTimeouts()
	mustPresence(t, e, "@a:x", presenceUnavailable, false)
	*clock = clock.Add(2 * time.Second)
	e.presenceTimeouts()
	mustPresence(t, e, "@a:x", presenceOffline, false)
	// Offline for long, the user is forgotten.
	*clock = clock.Add(presenceForget + time.Minute)
	e.presenceTimeouts()
	if _, ok := e.presenceOf("@a:x"); ok {
		t.Error("an offline user is remembered past presenceForget")
	}
}

// Activity makes an idle user online and active; currently_active lapses after a minute,
// and repeated activity within it is no news.
func TestPresenceActivity(t *testing.T) {
	e, clock := presenceAt(t)
	defer e.PresenceSyncStarted("@a:x", "unavailable")()
	mustPresence(t, e, "@a:x", presenceUnavailable, false)
	e.PresenceActive("@a:x")
	mustPresence(t, e, "@a:x", presenceOnline, true)
	pos := e.PresencePosition()
	*clock = clock.Add(10 * time.Second)
	e.PresenceActive("@a:x")
	if e.PresencePosition() != pos {
		t.Error("activity while currently active moved the position")
	}
	*clock = clock.Add(presenceActiveWindow)
	e.presenceTimeouts()
	mustPresence(t, e, "@a:x", presenceOnline, false)
	if e.PresencePosition() == pos {
		t.Error("currently_active lapsing is not news")
	}
	if c := presenceContent(mustPresence(t, e, "@a:x", presenceOnline, false), *clock); c["last_active_ago"] != presenceActiveWindow.Milliseconds() {
		t.Errorf("content %v", c)
	}
}

// set_presence=offline leaves presence alone; PUT sets and clears the status message.
func TestPresenceSetAndOfflineSync(t *testing.T) {
	e, _ := presenceAt(t)
	e.PresenceSyncStarted("@b:x", presenceOffline)()
	if _, ok := e.presenceOf("@b:x"); ok {
		t.Fatal("a set_presence=offline sync recorded presence")
	}
	msg := "in a meeting"
	e.SetLocalPresence("@b:x", presenceUnavailable, &msg)
	s := mustPresence(t, e, "@b:x", presenceUnavailable, false)
	if s.statusMsg == nil || *s.statusMsg != msg {
		t.Fatalf("status_msg %v", s.statusMsg)
	}
	if _, ok := presenceContent(s, time.Now())["last_active_ago"]; ok {
		t.Error("last_active_ago for a user never active")
	}
	pos := e.PresencePosition()
	e.SetLocalPresence("@b:x", presenceUnavailable, nil)
	if s := mustPresence(t, e, "@b:x", presenceUnavailable, false); s.statusMsg != nil || e.PresencePosition() == pos {
		t.Error("clearing the status message is not news")
	}
	// presenceSince: offline users only when asked, oldest change first.
	e.SetLocalPresence("@d:x", presenceOnline, nil)
	e.SetLocalPresence("@c:x", presenceOnline, nil)
	e.SetLocalPresence("@d:x", presenceOffline, nil)
	got := e.presenceSince(pos, false)
	if len(got) != 2 || got[0].userID != "@b:x" || got[1].userID != "@c:x" {
		t.Errorf("presenceSince without offline: %+v", got)
	}
	if got := e.presenceSince(pos, true); len(got) != 3 || got[2].userID != "@d:x" || got[2].presence != presenceOffline {
		t.Errorf("presenceSince with offline: %+v", got)
	}
}

// Off, nothing is tracked.
func TestPresenceOff(t *testing.T) {
	e := NewEphemeral(EphemeralConfig{})
	e.SetLocalPresence("@a:x", presenceOnline, nil)
	e.PresenceSyncStarted("@a:x", "")()
	e.PresenceActive("@a:x")
	if _, ok := e.presenceOf("@a:x"); ok {
		t.Error("presence tracked while off")
	}
}
