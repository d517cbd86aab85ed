package clientapi

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Presence tracking, when presence.enabled is set (presence.go has the endpoints, sync_presence.go
// the /sync section, federation/edu_presence.go the inbound EDU). Everything is kept in memory:
// presence says what is happening now, and a restart that forgets it shows everyone offline
// until they come back, which is true of a restarted server anyway.
//
// The rules, close to Synapse's:
//   - A /sync without set_presence (or with "online") marks an offline user online; with
//     "unavailable" it marks them unavailable; with "offline" it does not touch presence and
//     does not count as the user being connected.
//   - A user stays connected while a /sync is in progress and for presenceSyncTimeout (30 s)
//     after the last one ended (or after their last PUT /presence or sent event); then they
//     go offline.
//   - last_active is bumped by pro-active actions (sending a non-membership event, PUT presence "online",
//     a sync that brings an offline user online), which also make an unavailable user
//     online. A sync alone does not bump it, so a client left open goes unavailable after
//     presenceIdleTimeout (5 min) without activity, as the spec's "idle timeout" asks.
//   - currently_active is true while an online user was active within presenceActiveWindow.
//   - Clients and servers are told of a change of presence, status_msg or currently_active;
//     a bump of last_active alone is not news while currently_active holds (the spec's rule).
//   - A remote user not heard of for presenceRemoteTimeout goes offline; this server re-sends
//     its users' presence every presencePingInterval so that other servers do not do that to
//     them.
//   - Inbound presence is taken only for users who share a room with a local user; outbound
//     goes only to servers that share a room with the user.
const (
	presenceIdleTimeout   = 5 * time.Minute
	presenceSyncTimeout   = 30 * time.Second
	presenceActiveWindow  = time.Minute
	presenceRemoteTimeout = 30 * time.Minute
	presencePingInterval  = 25 * time.Minute
	// presenceForget drops offline users from memory after this long without a change.
	presenceForget = time.Hour
	// presenceFlushDelay batches changes before waking /sync and queueing EDUs.
	presenceFlushDelay = 100 * time.Millisecond
	// presenceCheckInterval is how often RunPresence looks for timeouts.
	presenceCheckInterval = 5 * time.Second
	// maxPresencePush bounds the updates in one m.presence EDU.
	maxPresencePush = 100
)

const (
	presenceOnline      = "online"
	presenceOffline     = "offline"
	presenceUnavailable = "unavailable"
)

// presenceTable holds the presence of local and remote users while presence is enabled.
type presenceTable struct {
	mu    sync.Mutex
	users map[string]*presenceEntry
	// pos is the position of the latest change; it starts at the clock in milliseconds so
	// that tokens stay ordered across a restart, as typing's does.
	pos int64
	// pending are the users whose change waits for the next flush; the value says whether
	// the user is local (their presence goes to other servers).
	pending   map[string]bool
	scheduled bool
}

// presenceEntry is one user's presence.
type presenceEntry struct {
	local           bool
	presence        string
	statusMsg       *string
	lastActive      time.Time // zero: never seen active
	currentlyActive bool
	pos             int64     // position of the last change clients were told of
	changed         time.Time // when that change happened
	// syncs counts the local user's /sync requests in progress that affect presence.
	syncs int
	// lastSeen: local, end of the last sync or other request; remote, the last EDU.
	lastSeen time.Time
	// lastSent is when the local user's presence last went to other servers.
	lastSent time.Time
}

// presenceSnapshot is a copy of an entry, read outside the lock.
type presenceSnapshot struct {
	userID          string
	presence        string
	statusMsg       *string
	lastActive      time.Time
	currentlyActive bool
	pos             int64
}

func newPresenceTable() presenceTable {
	return presenceTable{users: map[string]*presenceEntry{}, pending: map[string]bool{}, pos: time.Now().UnixMilli()}
}

// presenceOn reports whether presence is tracked.
func (e *Ephemeral) presenceOn() bool { return e != nil && e.cfg.Presence }

// updatePresence applies change to userID's entry; if clients or servers must hear of the
// result, it moves the position and schedules a flush.
func (e *Ephemeral) updatePresence(userID string, local bool, change func(p *presenceEntry, now time.Time)) {
	t := &e.presence
	now := e.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e.applyPresenceLocked(userID, local, now, change)
}

func (e *Ephemeral) applyPresenceLocked(userID string, local bool, now time.Time, change func(p *presenceEntry, now time.Time)) {
	t := &e.presence
	p := t.users[userID]
	if p == nil {
		p = &presenceEntry{local: local, presence: presenceOffline}
		t.users[userID] = p
	}
	before := *p
	change(p, now)
	if p.local {
		p.currentlyActive = p.presence == presenceOnline && !p.lastActive.IsZero() && now.Sub(p.lastActive) < presenceActiveWindow
	}
	if !presenceNews(before, *p) {
		return
	}
	t.pos = max(t.pos+1, now.UnixMilli())
	p.pos, p.changed = t.pos, now
	e.schedulePresenceFlushLocked(userID, p.local)
}

// presenceNews reports whether the change from a to b is one clients are told of.
func presenceNews(a, b presenceEntry) bool {
	sameMsg := a.statusMsg == nil && b.statusMsg == nil || a.statusMsg != nil && b.statusMsg != nil && *a.statusMsg == *b.statusMsg
	if a.presence != b.presence || !sameMsg || a.currentlyActive != b.currentlyActive {
		return true
	}
	return !b.currentlyActive && b.presence != presenceOffline && !a.lastActive.Equal(b.lastActive)
}

func (e *Ephemeral) schedulePresenceFlushLocked(userID string, local bool) {
	t := &e.presence
	t.pending[userID] = local
	if !t.scheduled {
		t.scheduled = true
		time.AfterFunc(presenceFlushDelay, e.flushPresence)
	}
}

// SetLocalPresence records what a local user said of themself (PUT /presence): the status
// message is replaced (cleared when absent), and "online" counts as activity.
func (e *Ephemeral) SetLocalPresence(userID, presence string, statusMsg *string) {
	if !e.presenceOn() {
		return
	}
	e.updatePresence(userID, true, func(p *presenceEntry, now time.Time) {
		p.presence, p.statusMsg, p.lastSeen = presence, statusMsg, now
		if presence == presenceOnline {
			p.lastActive = now
		}
	})
}

// PresenceActive records a pro-active action of a local user (an event they sent): they are
// online and active now.
func (e *Ephemeral) PresenceActive(userID string) {
	if !e.presenceOn() {
		return
	}
	e.updatePresence(userID, true, func(p *presenceEntry, now time.Time) {
		p.presence, p.lastActive, p.lastSeen = presenceOnline, now, now
	})
}

// PresenceSyncStarted records that a local user's /sync began with set_presence setPresence
// ("" is "online") and returns what records its end.
func (e *Ephemeral) PresenceSyncStarted(userID, setPresence string) (done func()) {
	if !e.presenceOn() || setPresence == presenceOffline {
		return func() {}
	}
	e.updatePresence(userID, true, func(p *presenceEntry, now time.Time) {
		p.syncs++
		p.lastSeen = now
		switch {
		case setPresence == presenceUnavailable:
			p.presence = presenceUnavailable
		case p.presence == presenceOffline:
			p.presence, p.lastActive = presenceOnline, now
		}
	})
	return func() {
		e.updatePresence(userID, true, func(p *presenceEntry, now time.Time) {
			p.syncs = max(p.syncs-1, 0)
			p.lastSeen = now
		})
	}
}

// OnNewEvent counts an event sent by a local user as activity. It has the shape
// roomserver.Server.Subscribe wants and does no I/O. Membership events are not activity (as
// in Synapse): a join, or a profile change copied into every room, says nothing about being
// at the keyboard. Events older than a minute (imported, backfilled) are not activity now.
func (e *Ephemeral) OnNewEvent(ev roomserver.NewEvent) {
	if !e.presenceOn() || ev.Event == nil || string(ev.Event.SenderDomain()) != e.cfg.ServerName ||
		ev.Event.Type() == "m.room.member" {
		return
	}
	if e.now().UnixMilli()-ev.Event.OriginServerTS() > time.Minute.Milliseconds() {
		return
	}
	e.PresenceActive(ev.Event.Sender())
}

// RemotePresence records the presence of a remote user that their server reported (an
// m.presence EDU): ignored unless presence is on and the user shares a room with a user of
// this server. lastActiveAgo < 0 means the server did not say.
func (e *Ephemeral) RemotePresence(ctx context.Context, userID, presence string, statusMsg *string, lastActiveAgo int64, currentlyActive bool) error {
	if !e.presenceOn() {
		return nil
	}
	u, err := event.ParseUserID(userID)
	if err != nil || string(u.Domain()) == e.cfg.ServerName {
		return nil
	}
	shared, err := storage.ServerSharesRoom(ctx, e.cfg.DB, userID, e.cfg.ServerName)
	if err != nil || !shared {
		return err
	}
	e.updatePresence(userID, false, func(p *presenceEntry, now time.Time) {
		p.presence, p.statusMsg, p.currentlyActive, p.lastSeen = presence, statusMsg, currentlyActive, now
		if lastActiveAgo >= 0 {
			p.lastActive = now.Add(-time.Duration(lastActiveAgo) * time.Millisecond)
		}
	})
	return nil
}

// PresencePosition is the latest position of presence changes, for sync tokens.
func (e *Ephemeral) PresencePosition() int64 {
	t := &e.presence
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pos
}

// presenceOf returns userID's presence, false if nothing is known.
func (e *Ephemeral) presenceOf(userID string) (presenceSnapshot, bool) {
	t := &e.presence
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.users[userID]
	if p == nil {
		return presenceSnapshot{}, false
	}
	return snapshotOf(userID, p), true
}

// presenceSince returns the users whose presence changed after since, oldest change first;
// offline users only if includeOffline.
func (e *Ephemeral) presenceSince(since int64, includeOffline bool) []presenceSnapshot {
	t := &e.presence
	t.mu.Lock()
	var out []presenceSnapshot
	for u, p := range t.users {
		if p.pos > since && (includeOffline || p.presence != presenceOffline) {
			out = append(out, snapshotOf(u, p))
		}
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b presenceSnapshot) int { return cmp.Compare(a.pos, b.pos) })
	return out
}

func snapshotOf(userID string, p *presenceEntry) presenceSnapshot {
	return presenceSnapshot{
		userID: userID, presence: p.presence, statusMsg: p.statusMsg, lastActive: p.lastActive,
		currentlyActive: p.currentlyActive, pos: p.pos,
	}
}

// presenceContent is the content of an m.presence event, and (with user_id) an entry of an
// m.presence EDU's push list. last_active_ago is left out for a user never seen active, as
// Synapse does.
func presenceContent(s presenceSnapshot, now time.Time) map[string]any {
	out := map[string]any{"presence": s.presence}
	if !s.lastActive.IsZero() {
		out["last_active_ago"] = max(now.Sub(s.lastActive).Milliseconds(), 0)
	}
	if s.presence == presenceOnline {
		out["currently_active"] = s.currentlyActive
	}
	if s.statusMsg != nil {
		out["status_msg"] = *s.statusMsg
	}
	return out
}

// RunPresence applies the timeouts until ctx ends; it returns at once when presence is off.
func (e *Ephemeral) RunPresence(ctx context.Context) {
	if !e.presenceOn() {
		return
	}
	tick := time.NewTicker(presenceCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			e.presenceTimeouts()
		}
	}
}

// presenceTimeouts moves idle users to unavailable, disconnected ones to offline, expires
// currently_active, re-sends local presence that other servers would otherwise time out,
// and forgets users offline for long.
func (e *Ephemeral) presenceTimeouts() {
	t := &e.presence
	now := e.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for userID, p := range t.users {
		if p.presence == presenceOffline {
			if p.syncs == 0 && now.Sub(p.changed) > presenceForget {
				delete(t.users, userID)
			}
			continue
		}
		e.applyPresenceLocked(userID, p.local, now, func(p *presenceEntry, now time.Time) {
			switch {
			case !p.local:
				if now.Sub(p.lastSeen) > presenceRemoteTimeout {
					p.presence, p.currentlyActive = presenceOffline, false
				}
			case p.syncs == 0 && now.Sub(p.lastSeen) > presenceSyncTimeout:
				p.presence = presenceOffline
			case p.presence == presenceOnline && now.Sub(p.lastActive) > presenceIdleTimeout:
				p.presence = presenceUnavailable
			}
		})
		if p.local && p.presence != presenceOffline && now.Sub(p.lastSent) > presencePingInterval {
			e.schedulePresenceFlushLocked(userID, true)
		}
	}
}

// flushPresence tells waiting /sync requests and other servers of the pending changes.
func (e *Ephemeral) flushPresence() {
	t := &e.presence
	t.mu.Lock()
	pending := t.pending
	t.pending, t.scheduled = map[string]bool{}, false
	now := e.now()
	var local []presenceSnapshot
	for _, u := range slices.Sorted(maps.Keys(pending)) {
		if p := t.users[u]; p != nil && pending[u] {
			p.lastSent = now
			local = append(local, snapshotOf(u, p))
		} else if p == nil && pending[u] {
			local = append(local, presenceSnapshot{userID: u, presence: presenceOffline})
		}
	}
	t.mu.Unlock()

	if e.cfg.DB == nil {
		return // unit tests: no rooms, no servers
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := e.cfg.Log.WithField("edu_type", "m.presence")
	for u := range pending {
		rooms, err := storage.RoomsOfUser(ctx, e.cfg.DB, u, "join")
		if err != nil {
			log.WithError(err).Warn("could not find the rooms of a user whose presence changed")
		}
		for _, r := range rooms {
			e.cfg.Notifier.RoomEphemeral(r)
		}
		e.cfg.Notifier.UserChanged(u)
	}
	if e.cfg.EDUs == nil || len(local) == 0 {
		return
	}
	byDest := map[string][]map[string]any{}
	for _, s := range local {
		servers, err := e.presenceServers(ctx, s.userID)
		if err != nil {
			log.WithError(err).Warn("could not find the servers to send presence to")
			continue
		}
		item := presenceContent(s, now)
		item["user_id"] = s.userID
		for _, d := range servers {
			byDest[d] = append(byDest[d], item)
		}
	}
	for dest, push := range byDest {
		for chunk := range slices.Chunk(push, maxPresencePush) {
			if err := e.cfg.EDUs.SendEDU(ctx, []string{dest}, "m.presence", map[string]any{"push": chunk}); err != nil {
				log.WithError(err).WithField("destination", dest).Warn("could not queue a presence EDU")
			}
		}
	}
}

// presenceServers are the other servers with a user joined to a room userID is joined to.
func (e *Ephemeral) presenceServers(ctx context.Context, userID string) ([]string, error) {
	members, err := storage.JoinedCoMembers(ctx, e.cfg.DB, userID)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range members {
		u, err := event.ParseUserID(m)
		if err != nil {
			continue
		}
		if d := string(u.Domain()); d != e.cfg.ServerName && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out, nil
}
