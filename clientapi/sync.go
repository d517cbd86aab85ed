package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"myelin/keys/e2e"
	"myelin/mxhttp"
	"myelin/storage"
)

// GET /sync (client-server API, "Syncing"). A sync token is a vector of stream positions read
// from the database (tokens.go). An incremental sync asks storage which of the user's rooms
// have events past the token (one query over the range of the events stream) and reads only
// those rooms; an initial sync reads every room the user has a membership of.
//
// Choices the spec leaves open, or that wait for other parts of the server:
//   - presence is off by default (privacy): set_presence is then accepted and ignored, and no
//     presence is sent; on, sync_presence.go and presence_state.go;
//   - unread_notifications are counted from what the notification worker recorded
//     (notifications.go); ephemeral holds typing notifications and receipts (receipts.go),
//     others' private receipts never;
//   - a timeline holds the last `limit` events of the range that pass the filter, read back
//     through a bounded number of events (sync_timeline.go);
//   - event_format and event_fields are applied to the finished response (sync_eventshape.go);
//   - device_lists counts every shared room, encrypted or not (sync_devicelists.go).

// Timeouts of long-polling: the client's timeout is capped, and a waiting request also looks
// at the database now and then, for changes no in-process notification reports.
const (
	maxSyncTimeout      = 5 * time.Minute
	syncRecheckInterval = 15 * time.Second
	// maxSyncHeroes is how many users m.heroes lists, as the spec suggests.
	maxSyncHeroes = 5
)

// SyncKeys is what /sync reads from the end-to-end encryption key store.
type SyncKeys interface {
	ToDeviceSince(ctx context.Context, userID, deviceID string, since int64, limit int) ([]e2e.ToDeviceEvent, error)
	AckToDevice(ctx context.Context, userID, deviceID string, upTo int64) error
	DeviceListChanges(ctx context.Context, userID string, from, to int64) (e2e.DeviceListChanges, error)
	OneTimeKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, error)
	UnusedFallbackKeyTypes(ctx context.Context, userID, deviceID string) ([]string, error)
}

var _ SyncKeys = (*e2e.Store)(nil)

// syncHandlers serve /sync, filters and account data.
type syncHandlers struct {
	*API
	keys     SyncKeys
	notifier *Notifier
	now      func() time.Time
}

// syncRoutes registers /sync, the filter and the account data endpoints, and subscribes the
// notifier to the room server.
func (a *API) syncRoutes(r *mux.Router) {
	n := a.cfg.SyncNotifier
	if n == nil {
		n = NewNotifier()
	}
	h := &syncHandlers{API: a, notifier: n, now: time.Now}
	if a.cfg.E2E != nil {
		h.keys = a.cfg.E2E
	} else {
		h.keys = e2e.New(a.db, a.cfg.ServerName, e2e.Options{Notifier: n, Log: a.log})
	}
	if a.cfg.Rooms != nil {
		a.cfg.Rooms.Subscribe(n.RoomEvent)
	}
	a.filterRoutes(r)
	h.accountDataRoutes(r)
	mxhttp.Route(r, "/_matrix/client/v3/sync").Handler(mxhttp.Handle(a.authed(h.sync))).Methods(http.MethodGet)
}

// syncRequest is the parsed query of GET /sync.
type syncRequest struct {
	since         *SyncToken
	timeout       time.Duration
	fullState     bool
	useStateAfter bool
	filter        Filter
	// setPresence is set_presence ("" for the default, online).
	setPresence string
}

func (h *syncHandlers) parseSyncRequest(r *http.Request, who Requester) (syncRequest, error) {
	q := r.URL.Query()
	var req syncRequest
	if s := q.Get("since"); s != "" {
		t, err := ParseSyncToken(s)
		if err != nil {
			return req, mxhttp.InvalidParam("invalid since token").Because(err)
		}
		req.since = &t
	}
	if s := q.Get("timeout"); s != "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil || ms < 0 {
			return req, mxhttp.InvalidParam("timeout must be a non-negative integer")
		}
		req.timeout = min(time.Duration(ms)*time.Millisecond, maxSyncTimeout)
	}
	var err error
	if req.fullState, err = boolParam(q.Get("full_state")); err != nil {
		return req, mxhttp.InvalidParam("full_state must be true or false")
	}
	if req.useStateAfter, err = boolParam(q.Get("use_state_after")); err != nil {
		return req, mxhttp.InvalidParam("use_state_after must be true or false")
	}
	switch q.Get("set_presence") {
	case "", "online", "offline", "unavailable":
		req.setPresence = q.Get("set_presence") // recorded only when presence is on
	default:
		return req, mxhttp.InvalidParam("set_presence must be online, offline or unavailable")
	}
	if req.filter, err = h.filterParam(r, who.UserID, q.Get("filter")); err != nil {
		return req, err
	}
	return req, nil
}

func boolParam(s string) (bool, error) {
	switch s {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, errors.New("not a boolean")
}

func (h *syncHandlers) sync(r *http.Request, who Requester) (mxhttp.Response, error) {
	req, err := h.parseSyncRequest(r, who)
	if err != nil {
		return mxhttp.Response{}, err
	}
	ctx := r.Context()
	if h.presenceEnabled() {
		defer h.cfg.Ephemeral.PresenceSyncStarted(who.UserID, req.setPresence)()
	}
	resp, err := h.syncWait(ctx, who, req)
	if err != nil {
		if ctx.Err() != nil {
			return mxhttp.Response{}, ctx.Err()
		}
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	body, err := shapeSyncResponse(resp, req.filter)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.OK(body), nil
}

// syncWait answers at once unless the sync is incremental, finds nothing and may wait; then it
// waits for the notifier (or the deadline) and looks again.
func (h *syncHandlers) syncWait(ctx context.Context, who Requester, req syncRequest) (*syncResponse, error) {
	mayWait := req.since != nil && !req.fullState && req.timeout > 0
	var w *syncWaiter
	if mayWait {
		rooms, err := h.wakeRooms(ctx, who.UserID)
		if err != nil {
			return nil, err
		}
		w = h.notifier.register(who.UserID, rooms)
		defer h.notifier.unregister(w)
	}
	deadline := h.now().Add(req.timeout)
	for {
		resp, err := h.computeSync(ctx, who, req)
		if err != nil {
			return nil, err
		}
		if !mayWait || !resp.empty() || !h.now().Before(deadline) {
			if err := h.syncKeyCounts(ctx, who, resp); err != nil {
				return nil, err
			}
			return resp, nil
		}
		left := deadline.Sub(h.now())
		t := time.NewTimer(min(left, syncRecheckInterval))
		select {
		case <-w.wake:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		t.Stop()
	}
}

// wakeRooms are the rooms whose events should wake a waiting sync of userID.
func (h *syncHandlers) wakeRooms(ctx context.Context, userID string) ([]string, error) {
	rooms, err := storage.RoomsOfUserAll(ctx, h.db, userID)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rooms {
		switch r.Membership {
		case "join", "invite", "knock":
			out = append(out, r.RoomID)
		}
	}
	return out, nil
}

// Response shapes of GET /sync.
type (
	syncResponse struct {
		NextBatch        string                 `json:"next_batch"`
		Rooms            syncRooms              `json:"rooms"`
		Presence         presenceEvents         `json:"presence"`
		AccountData      eventList              `json:"account_data"`
		ToDevice         toDeviceList           `json:"to_device"`
		DeviceLists      *e2e.DeviceListChanges `json:"device_lists,omitempty"`
		OneTimeKeysCount map[string]int         `json:"device_one_time_keys_count"`
		UnusedFallback   []string               `json:"device_unused_fallback_key_types"`
	}
	syncRooms struct {
		Join   map[string]*joinedRoom  `json:"join"`
		Invite map[string]*invitedRoom `json:"invite"`
		Leave  map[string]*leftRoom    `json:"leave"`
		Knock  map[string]*knockedRoom `json:"knock"`
	}
	joinedRoom struct {
		Summary             *roomSummary `json:"summary,omitempty"`
		State               *stateEvents `json:"state,omitempty"`
		StateAfter          *stateEvents `json:"state_after,omitempty"`
		Timeline            timeline     `json:"timeline"`
		Ephemeral           eventList    `json:"ephemeral"`
		AccountData         eventList    `json:"account_data"`
		UnreadNotifications unreadCounts `json:"unread_notifications"`
		// UnreadThreadNotifications: per thread root, when the timeline filter asks for it
		// (notifications.go).
		UnreadThreadNotifications map[string]unreadCounts `json:"unread_thread_notifications,omitempty"`
	}
	leftRoom struct {
		State       *stateEvents `json:"state,omitempty"`
		StateAfter  *stateEvents `json:"state_after,omitempty"`
		Timeline    timeline     `json:"timeline"`
		AccountData eventList    `json:"account_data"`
	}
	invitedRoom struct {
		InviteState strippedState `json:"invite_state"`
	}
	knockedRoom struct {
		KnockState strippedState `json:"knock_state"`
	}
	strippedState struct {
		Events []StrippedStateEvent `json:"events"`
	}
	roomSummary struct {
		Heroes             []string `json:"m.heroes"`
		JoinedMemberCount  int      `json:"m.joined_member_count"`
		InvitedMemberCount int      `json:"m.invited_member_count"`
	}
	stateEvents struct {
		Events []ClientEvent `json:"events"`
	}
	timeline struct {
		Events    []ClientEvent `json:"events"`
		Limited   bool          `json:"limited"`
		PrevBatch string        `json:"prev_batch,omitempty"`
	}
	unreadCounts struct {
		HighlightCount    int `json:"highlight_count"`
		NotificationCount int `json:"notification_count"`
	}
	// basicEvent is an event with only a type and content: account data, ephemeral events.
	basicEvent struct {
		Type    string          `json:"type"`
		Content json.RawMessage `json:"content"`
	}
	eventList struct {
		Events []basicEvent `json:"events"`
	}
	toDeviceList struct {
		Events []e2e.ToDeviceEvent `json:"events"`
	}
)

func newSyncResponse() *syncResponse {
	return &syncResponse{
		Rooms: syncRooms{
			Join: map[string]*joinedRoom{}, Invite: map[string]*invitedRoom{},
			Leave: map[string]*leftRoom{}, Knock: map[string]*knockedRoom{},
		},
		Presence:         presenceEvents{Events: []presenceEvent{}},
		AccountData:      eventList{Events: []basicEvent{}},
		ToDevice:         toDeviceList{Events: []e2e.ToDeviceEvent{}},
		OneTimeKeysCount: map[string]int{},
		UnusedFallback:   []string{},
	}
}

func newJoinedRoom() *joinedRoom {
	return &joinedRoom{
		Timeline:    timeline{Events: []ClientEvent{}},
		Ephemeral:   eventList{Events: []basicEvent{}},
		AccountData: eventList{Events: []basicEvent{}},
	}
}

// empty reports whether a long-poll has nothing to return yet. Key counts are always sent and
// do not count as news.
func (s *syncResponse) empty() bool {
	return len(s.Rooms.Join) == 0 && len(s.Rooms.Invite) == 0 && len(s.Rooms.Leave) == 0 && len(s.Rooms.Knock) == 0 &&
		len(s.AccountData.Events) == 0 && len(s.ToDevice.Events) == 0 && len(s.Presence.Events) == 0 &&
		(s.DeviceLists == nil || len(s.DeviceLists.Changed) == 0 && len(s.DeviceLists.Left) == 0)
}
