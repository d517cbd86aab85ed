package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	"myelin/mxhttp"
	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Typing notifications (client-server API "Typing Notifications", server-server API "Typing
// Notifications"). They are kept in memory only: they say what is happening now, and a
// restart that forgets them loses nothing a client would miss.
//
// Choices the spec leaves open:
//   - a client's timeout is capped at maxTypingTimeout and defaults to defaultTypingTimeout;
//   - a remote user's typing expires after remoteTypingTimeout unless their server says it
//     stopped or repeats it (the EDU carries no timeout), as Synapse does;
//   - when a local user's typing times out, the servers of the room are told it stopped.

const (
	defaultTypingTimeout = 30 * time.Second
	maxTypingTimeout     = 2 * time.Minute
	remoteTypingTimeout  = 60 * time.Second
)

// EDUSender queues EDUs for other servers; *federation.Sender is one.
type EDUSender interface {
	SendEDU(ctx context.Context, destinations []string, eduType string, content any) error
}

// EphemeralRooms is what typing and receipts need from the room server.
type EphemeralRooms interface {
	Membership(ctx context.Context, roomID, userID string) (string, error)
	Members(ctx context.Context, roomID, membership string) ([]string, error)
}

// EphemeralConfig is what an Ephemeral needs.
type EphemeralConfig struct {
	ServerName string
	DB         *storage.DB
	Rooms      EphemeralRooms
	// Notifier wakes /sync when typing or receipts change; use the client API's SyncNotifier.
	Notifier *Notifier
	// EDUs sends typing notifications and public receipts to the other servers of a room;
	// nil: nothing leaves this server.
	EDUs EDUSender
	Log  *logrus.Entry
	// Presence tracks presence (presence.enabled; presence_state.go); off, nothing is kept.
	Presence bool
}

// Ephemeral holds typing notifications (in memory) and receipts (in the database) of local
// and remote users, and tells waiting /sync requests and other servers about changes.
type Ephemeral struct {
	cfg EphemeralConfig
	now func() time.Time

	mu sync.Mutex
	// typing maps room id to user id to the typing entry.
	typing map[string]map[string]*typingEntry
	// roomPos is the typing position of each room's last change; pos the latest of all. It
	// starts at the clock in milliseconds so that tokens stay ordered across a restart.
	roomPos map[string]int64
	pos     int64

	// presence holds users' presence while presence is enabled (presence_state.go).
	presence presenceTable
}

type typingEntry struct {
	until time.Time
	timer *time.Timer
}

// NewEphemeral returns the typing and receipt tracker.
func NewEphemeral(cfg EphemeralConfig) *Ephemeral {
	if cfg.Notifier == nil {
		cfg.Notifier = NewNotifier()
	}
	if cfg.Log == nil {
		cfg.Log = logrus.NewEntry(logrus.StandardLogger())
	}
	cfg.Log = cfg.Log.WithField("component", "ephemeral")
	return &Ephemeral{
		cfg: cfg, now: time.Now,
		typing: map[string]map[string]*typingEntry{}, roomPos: map[string]int64{},
		pos:      time.Now().UnixMilli(),
		presence: newPresenceTable(),
	}
}

// RoomEphemeral wakes the /sync requests of a room's members: its typing list or receipts
// changed.
func (n *Notifier) RoomEphemeral(roomID string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	wakeAll(n.byRoom[roomID])
}

// setTyping records that userID is typing in roomID until timeout passes (typing true), or has
// stopped; it reports whether the room's typing list changed. onExpire runs when the entry
// times out.
func (e *Ephemeral) setTyping(roomID, userID string, typing bool, timeout time.Duration, onExpire func()) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	users := e.typing[roomID]
	old := users[userID]
	if old != nil {
		old.timer.Stop()
	}
	if !typing {
		if old == nil {
			return false
		}
		delete(users, userID)
		if len(users) == 0 {
			delete(e.typing, roomID)
		}
		e.bumpLocked(roomID)
		return true
	}
	if users == nil {
		users = map[string]*typingEntry{}
		e.typing[roomID] = users
	}
	entry := &typingEntry{until: e.now().Add(timeout)}
	entry.timer = time.AfterFunc(timeout, func() { e.expire(roomID, userID, entry, onExpire) })
	users[userID] = entry
	if old != nil {
		return false // still typing: the list is unchanged
	}
	e.bumpLocked(roomID)
	return true
}

func (e *Ephemeral) expire(roomID, userID string, entry *typingEntry, onExpire func()) {
	e.mu.Lock()
	if e.typing[roomID][userID] != entry {
		e.mu.Unlock()
		return // replaced or stopped meanwhile
	}
	delete(e.typing[roomID], userID)
	if len(e.typing[roomID]) == 0 {
		delete(e.typing, roomID)
	}
	e.bumpLocked(roomID)
	e.mu.Unlock()
	e.cfg.Notifier.RoomEphemeral(roomID)
	if onExpire != nil {
		onExpire()
	}
}

func (e *Ephemeral) bumpLocked(roomID string) {
	e.pos = max(e.pos+1, e.now().UnixMilli())
	e.roomPos[roomID] = e.pos
}

// TypingPosition is the latest position of typing changes, for sync tokens.
func (e *Ephemeral) TypingPosition() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pos
}

// typingChanges returns, for the rooms among roomIDs whose typing list changed after since
// (every room with someone typing when since is 0), who is typing there now.
func (e *Ephemeral) typingChanges(roomIDs []string, since int64) map[string][]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string][]string{}
	for _, r := range roomIDs {
		pos, ok := e.roomPos[r]
		if !ok || since > 0 && pos <= since || since == 0 && len(e.typing[r]) == 0 {
			continue
		}
		users := make([]string, 0, len(e.typing[r]))
		for u := range e.typing[r] {
			users = append(users, u)
		}
		slices.Sort(users)
		out[r] = users
	}
	return out
}

// roomServers are the servers of the members joined to a room, other than this one.
func (e *Ephemeral) roomServers(ctx context.Context, roomID string) ([]string, error) {
	if e.cfg.Rooms == nil {
		return nil, nil
	}
	members, err := e.cfg.Rooms.Members(ctx, roomID, "join")
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

func (e *Ephemeral) joined(ctx context.Context, roomID, userID string) (bool, error) {
	if e.cfg.Rooms == nil {
		return false, nil
	}
	m, err := e.cfg.Rooms.Membership(ctx, roomID, userID)
	if errors.Is(err, roomserver.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return m == "join", nil
}

// sendEDU hands an EDU for the servers of a room to federation; the local change has been
// made, so a failure is logged.
func (e *Ephemeral) sendEDU(ctx context.Context, roomID, eduType string, content any) {
	if e.cfg.EDUs == nil {
		return
	}
	log := e.cfg.Log.WithFields(logrus.Fields{"room_id": roomID, "edu_type": eduType})
	dests, err := e.roomServers(ctx, roomID)
	if err != nil {
		log.WithError(err).Warn("could not find the servers of a room")
		return
	}
	if len(dests) == 0 {
		return
	}
	if err := e.cfg.EDUs.SendEDU(ctx, dests, eduType, content); err != nil {
		log.WithError(err).Warn("could not queue an EDU")
	}
}

// SetLocalTyping records a local user's typing (PUT /typing) and tells the room's other
// servers.
func (e *Ephemeral) SetLocalTyping(ctx context.Context, roomID, userID string, typing bool, timeout time.Duration) {
	edu := func(typing bool) map[string]any {
		return map[string]any{"room_id": roomID, "user_id": userID, "typing": typing}
	}
	onExpire := func() {
		e.sendEDU(context.Background(), roomID, "m.typing", edu(false))
	}
	if e.setTyping(roomID, userID, typing, timeout, onExpire) {
		e.cfg.Notifier.RoomEphemeral(roomID)
	}
	e.sendEDU(context.WithoutCancel(ctx), roomID, "m.typing", edu(typing))
}

// RemoteTyping records the typing of a remote user that their server reported (an m.typing
// EDU): ignored unless the user is joined to the room.
func (e *Ephemeral) RemoteTyping(ctx context.Context, roomID, userID string, typing bool) error {
	if ok, err := e.joined(ctx, roomID, userID); err != nil || !ok {
		return err
	}
	if e.setTyping(roomID, userID, typing, remoteTypingTimeout, nil) {
		e.cfg.Notifier.RoomEphemeral(roomID)
	}
	return nil
}

// putTyping is PUT /rooms/{roomId}/typing/{userId}.
func (a *API) putTyping(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, err := pathRoomID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	userID, err := roomPathVar(r, "userId")
	if err != nil {
		return mxhttp.Response{}, err
	}
	if userID != who.UserID {
		return mxhttp.Response{}, mxhttp.Forbidden("you can only set your own typing state")
	}
	var req struct {
		Typing  *bool  `json:"typing"`
		Timeout *int64 `json:"timeout"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	if req.Typing == nil {
		return mxhttp.Response{}, mxhttp.MissingParam("typing is required")
	}
	timeout := defaultTypingTimeout
	if req.Timeout != nil {
		if *req.Timeout < 0 {
			return mxhttp.Response{}, mxhttp.InvalidParam("timeout must not be negative")
		}
		timeout = min(time.Duration(*req.Timeout)*time.Millisecond, maxTypingTimeout)
	}
	ctx := r.Context()
	eph := a.cfg.Ephemeral
	ok, err := eph.joined(ctx, roomID, who.UserID)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	if !ok {
		return mxhttp.Response{}, mxhttp.Forbidden("you are not in this room")
	}
	eph.SetLocalTyping(ctx, roomID, who.UserID, *req.Typing, timeout)
	return mxhttp.Empty(), nil
}

// typingEvent is the m.typing ephemeral event of a room.
func typingEvent(users []string) basicEvent {
	content, _ := json.Marshal(map[string][]string{"user_ids": users})
	return basicEvent{Type: "m.typing", Content: content}
}

// ephemeralRoutes registers the endpoints of typing, receipts and read markers, profiles and
// presence.
func (a *API) ephemeralRoutes(r *mux.Router) {
	handle := func(path string, h authedFunc, methods ...string) {
		mxhttp.Route(r, "/_matrix/client/v3"+path).Handler(mxhttp.Handle(a.authed(h))).Methods(methods...)
	}
	if a.cfg.Rooms != nil {
		handle("/rooms/{roomId}/typing/{userId}", a.putTyping, http.MethodPut)
		handle("/rooms/{roomId}/receipt/{receiptType}/{eventId}", a.postReceipt, http.MethodPost)
		handle("/rooms/{roomId}/read_markers", a.postReadMarkers, http.MethodPost)
	}
	a.profileRoutes(r)
	a.presenceRoutes(r)
}
