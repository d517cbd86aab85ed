package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"myelin/mxhttp"
	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Notifications (client-server API "Push notifications"): the unread counts of /sync, GET
// /notifications, and the pusher endpoints (pushers.go). The push rules of each local member
// are evaluated for every new event by the notification worker (push/pusher), which records
// the events that notify or highlight; this file reads what it recorded. The worker holds
// what it evaluated last in memory before writing it in large batches, so counts are read
// through it, and GET /notifications has it write first.
//
// Counts are the recorded notifications after the user's furthest m.read or m.read.private
// receipt, per thread: an unthreaded receipt covers every thread, a threaded one its thread
// ("main" for the main timeline). Notifications older than the worker's retention (30 days)
// are pruned and no longer counted.

// NotificationWorker is what the client API needs of the notification worker;
// *pusher.Worker is one.
type NotificationWorker interface {
	countReader
	// WaitFor waits until the push actions of the events up to pos are evaluated (at most
	// limit) and returns the position reached; the counts read through the worker include
	// them.
	WaitFor(ctx context.Context, pos int64, limit time.Duration) int64
	// Flush writes the push actions the worker holds in memory.
	Flush(ctx context.Context) error
	// PusherChanged tells the worker that a user's pushers changed.
	PusherChanged(userID string)
	// ReadChanged tells the worker that a user's read receipts moved, so that their pushers
	// get the new unread count (a badge update).
	ReadChanged(userID string)
}

// countReader reads unread counts: the storage functions of the same names, plus, through the
// worker, the actions it has evaluated and not yet written.
type countReader interface {
	UnreadCounts(ctx context.Context, userID string, rooms []string) ([]storage.UnreadCount, error)
	RoomsWithCountChanges(ctx context.Context, userID string, fromEvents, toEvents, fromReceipts, toReceipts int64) ([]string, error)
}

// recordedCounts reads the counts as recorded in the database, without a worker.
type recordedCounts struct{ db *storage.DB }

func (r recordedCounts) UnreadCounts(ctx context.Context, userID string, rooms []string) ([]storage.UnreadCount, error) {
	return storage.UnreadCounts(ctx, r.db, userID, rooms, math.MaxInt64)
}

func (r recordedCounts) RoomsWithCountChanges(ctx context.Context, userID string, fromEvents, toEvents, fromReceipts, toReceipts int64) ([]string, error) {
	return storage.RoomsWithCountChanges(ctx, r.db, userID, fromEvents, toEvents, fromReceipts, toReceipts)
}

// maxCountWait bounds how long /sync waits for the counts of the events it returns: the worker
// normally follows within milliseconds; a stalled worker must not stall /sync.
const maxCountWait = 2 * time.Second

// Limits of GET /notifications.
const (
	defaultNotificationsLimit = 20
	maxNotificationsLimit     = 100
)

func (a *API) notificationRoutes(r *mux.Router) {
	if a.cfg.Rooms != nil {
		mxhttp.Route(r, "/_matrix/client/v3/notifications").Handler(mxhttp.Handle(a.authed(a.getNotifications))).Methods(http.MethodGet)
	}
	mxhttp.Route(r, "/_matrix/client/v3/pushers").Handler(mxhttp.Handle(a.authed(a.getPushers))).Methods(http.MethodGet)
	mxhttp.Route(r, "/_matrix/client/v3/pushers/set").Handler(mxhttp.Handle(a.authed(a.setPusher))).Methods(http.MethodPost)
}

// syncUnreadCounts sets unread_notifications (and unread_thread_notifications when the
// timeline filter asks for them) in every joined room of the response, and adds the rooms
// whose counts changed since the token though nothing else did: new notifications, or the
// user's own read receipts. It records the notifications position in to.
func (h *syncHandlers) syncUnreadCounts(ctx context.Context, who Requester, initial bool, since SyncToken, to *SyncToken, resp *syncResponse, req syncRequest) error {
	if h.cfg.Rooms == nil {
		return nil
	}
	// The counts of the events in this response belong in it (the spec says so): wait for the
	// worker to have evaluated them.
	to.Notifications = to.Events
	var counts countReader = recordedCounts{h.db}
	if w := h.cfg.Notifications; w != nil {
		to.Notifications = min(w.WaitFor(ctx, to.Events, maxCountWait), to.Events)
		counts = w
	}
	if since.Notifications > to.Notifications {
		// The worker restarted behind the token (it re-reads from its last stored position
		// and records nothing twice), or the token is from another database: nothing new.
		since.Notifications = to.Notifications
	}
	if !initial && (since.Notifications < to.Notifications || since.Receipts < to.Receipts) {
		changed, err := counts.RoomsWithCountChanges(ctx, who.UserID,
			since.Notifications, to.Notifications, since.Receipts, to.Receipts)
		if err != nil {
			return err
		}
		for _, roomID := range changed {
			if _, ok := resp.Rooms.Join[roomID]; ok || !req.filter.Room.AllowsRoom(roomID) {
				continue
			}
			joined, err := h.isJoined(ctx, roomID, who.UserID)
			if err != nil {
				return err
			}
			if joined {
				jr := newJoinedRoom()
				if req.useStateAfter {
					jr.StateAfter = &stateEvents{Events: []ClientEvent{}}
				} else {
					jr.State = &stateEvents{Events: []ClientEvent{}}
				}
				jr.Timeline.PrevBatch = RoomToken{Stream: to.Events}.String()
				resp.Rooms.Join[roomID] = jr
			}
		}
	}
	if len(resp.Rooms.Join) == 0 {
		return nil
	}
	rooms := make([]string, 0, len(resp.Rooms.Join))
	for roomID := range resp.Rooms.Join {
		rooms = append(rooms, roomID)
	}
	unread, err := counts.UnreadCounts(ctx, who.UserID, rooms)
	if err != nil {
		return err
	}
	threaded := req.filter.Room.Timeline.UnreadThreadNotifications
	for _, c := range unread {
		jr := resp.Rooms.Join[c.RoomID]
		if jr == nil {
			continue
		}
		if threaded && c.ThreadID != storage.ThreadMain {
			if jr.UnreadThreadNotifications == nil {
				jr.UnreadThreadNotifications = map[string]unreadCounts{}
			}
			jr.UnreadThreadNotifications[c.ThreadID] = unreadCounts{HighlightCount: c.Highlights, NotificationCount: c.Notifications}
			continue
		}
		jr.UnreadNotifications.HighlightCount += c.Highlights
		jr.UnreadNotifications.NotificationCount += c.Notifications
	}
	return nil
}

// notificationItem is one entry of GET /notifications.
type notificationItem struct {
	Actions    json.RawMessage `json:"actions"`
	Event      ClientEvent     `json:"event"`
	ProfileTag string          `json:"profile_tag,omitempty"`
	Read       bool            `json:"read"`
	RoomID     string          `json:"room_id"`
	TS         int64           `json:"ts"`
}

// getNotifications is GET /notifications: the events the user was notified about, newest
// first. The token is the stream position of the last event returned. profile_tag is left
// out: this server has no device-specific rules, so no tag ever matched.
func (a *API) getNotifications(r *http.Request, who Requester) (mxhttp.Response, error) {
	q := r.URL.Query()
	query := storage.NotificationsQuery{UserID: who.UserID, Limit: defaultNotificationsLimit}
	if from := q.Get("from"); from != "" {
		pos, err := strconv.ParseInt(from, 10, 64)
		if err != nil || pos <= 0 {
			return mxhttp.Response{}, mxhttp.InvalidParam("invalid from token")
		}
		query.Before = pos
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return mxhttp.Response{}, mxhttp.InvalidParam("limit must be a non-negative integer")
		}
		query.Limit = min(max(n, 1), maxNotificationsLimit)
	}
	query.OnlyHighlight = q.Get("only") == "highlight"
	ctx := r.Context()
	if w := a.cfg.Notifications; w != nil {
		// The list is read from the database: have the worker write what it holds.
		if err := w.Flush(ctx); err != nil {
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
	}
	acts, err := storage.PushActions(ctx, a.db, query)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	next := ""
	if len(acts) == query.Limit {
		next = strconv.FormatInt(acts[len(acts)-1].StreamPos, 10)
	}
	var (
		evs  []*event.Event
		kept []storage.PushAction
	)
	for _, act := range acts {
		ev, err := a.cfg.Rooms.Event(ctx, act.EventID)
		if errors.Is(err, roomserver.ErrNotFound) {
			continue
		}
		if err != nil {
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
		evs = append(evs, ev)
		kept = append(kept, act)
	}
	formatted, err := a.formatEvents(ctx, evs, FormatSync, a.now())
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	items := make([]notificationItem, 0, len(kept))
	for i, act := range kept {
		items = append(items, notificationItem{
			Actions: act.Actions, Event: formatted[i], Read: act.Read, RoomID: act.RoomID, TS: act.TS,
		})
	}
	out := map[string]any{"notifications": items}
	if next != "" {
		out["next_token"] = next
	}
	return mxhttp.OK(out), nil
}
