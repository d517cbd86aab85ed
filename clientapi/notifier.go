package clientapi

import (
	"sync"

	"myelin/roomserver"
)

// Notifier wakes /sync requests that are long-polling. It is keyed by room (an event wakes the
// requests of users in that room) and by user (their invites, account data, to-device
// messages). A wake-up only says "look again": the request recomputes from the database and
// waits on if nothing it may see changed, so a spurious wake-up costs a query, never a wrong
// answer.
//
// It lives in this process. Several processes sharing one PostgreSQL database would carry
// these wake-ups over LISTEN/NOTIFY; until then a waiting request also looks again every
// syncRecheckInterval.
type Notifier struct {
	mu     sync.Mutex
	byRoom map[string]map[*syncWaiter]struct{}
	byUser map[string]map[*syncWaiter]struct{}
}

// syncWaiter is one waiting /sync request.
type syncWaiter struct {
	userID string
	rooms  []string
	wake   chan struct{} // buffered 1: a wake-up before the wait is not lost
}

// NewNotifier returns a notifier with nobody waiting. It is created on its own so that the
// room server and the key store can be given it before the client API exists.
func NewNotifier() *Notifier {
	return &Notifier{byRoom: map[string]map[*syncWaiter]struct{}{}, byUser: map[string]map[*syncWaiter]struct{}{}}
}

// register adds a waiter for userID, woken by events in rooms and by anything about the user.
// Registering before reading the database closes the window in which an event committed
// after the read and before the wait would be missed.
func (n *Notifier) register(userID string, rooms []string) *syncWaiter {
	w := &syncWaiter{userID: userID, rooms: rooms, wake: make(chan struct{}, 1)}
	n.mu.Lock()
	defer n.mu.Unlock()
	add := func(m map[string]map[*syncWaiter]struct{}, k string) {
		set := m[k]
		if set == nil {
			set = map[*syncWaiter]struct{}{}
			m[k] = set
		}
		set[w] = struct{}{}
	}
	add(n.byUser, userID)
	for _, r := range rooms {
		add(n.byRoom, r)
	}
	return w
}

func (n *Notifier) unregister(w *syncWaiter) {
	n.mu.Lock()
	defer n.mu.Unlock()
	del := func(m map[string]map[*syncWaiter]struct{}, k string) {
		if set := m[k]; set != nil {
			delete(set, w)
			if len(set) == 0 {
				delete(m, k)
			}
		}
	}
	del(n.byUser, w.userID)
	for _, r := range w.rooms {
		del(n.byRoom, r)
	}
}

func wakeAll(set map[*syncWaiter]struct{}) {
	for w := range set {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// RoomEvent wakes the users in a room, and the target of a membership event, who may not be
// in the room yet (an invite). It has the shape roomserver.Server.Subscribe wants and does
// no I/O.
func (n *Notifier) RoomEvent(ev roomserver.NewEvent) {
	n.mu.Lock()
	defer n.mu.Unlock()
	wakeAll(n.byRoom[ev.RoomID])
	if ev.Event != nil && ev.Event.Type() == "m.room.member" && ev.Event.StateKey() != nil {
		wakeAll(n.byUser[*ev.Event.StateKey()])
	}
}

// UserChanged wakes the requests of users (their account data changed, ...).
func (n *Notifier) UserChanged(userIDs ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, u := range userIDs {
		wakeAll(n.byUser[u])
	}
}

// ToDeviceQueued wakes the recipient of send-to-device messages (e2e.Notifier).
func (n *Notifier) ToDeviceQueued(userID string, _ []string, _ int64) { n.UserChanged(userID) }

// DeviceListsChanged wakes every waiting request (e2e.Notifier): who shares a room with the
// users whose devices changed is a database question, and device changes are rare enough
// that the recheck is cheaper than asking.
func (n *Notifier) DeviceListsChanged(_ []string, _ int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, set := range n.byUser {
		wakeAll(set)
	}
}
