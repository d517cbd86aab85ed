package clientapi

import (
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"myelin/mxhttp"
	"myelin/storage"
)

// Presence (client-server API "Presence"). It is off unless the operator sets
// presence.enabled: whether someone is online, and since when, is a trace of their day that
// nobody else needs by default. Off, the endpoints still answer as the spec defines them, so
// that clients work unchanged: PUT is accepted and forgotten, GET says "offline" for
// everyone, /sync carries no presence, and no m.presence EDU is ever sent.
//
// On, a user's own status is kept in memory (a restart forgets it) and shown to the user and
// to users who share a room with them. Presence in /sync and over federation is not
// implemented yet.

var presenceStates = map[string]bool{"online": true, "offline": true, "unavailable": true}

// presenceStatus is what a user last said about themself.
type presenceStatus struct {
	presence  string
	statusMsg *string
	at        time.Time
}

// presenceTable holds the statuses of local users while presence is enabled.
type presenceTable struct {
	mu    sync.Mutex
	users map[string]presenceStatus
}

func (a *API) presence() *presenceTable { return &a.cfg.Ephemeral.presence }

func (a *API) presenceRoutes(r *mux.Router) {
	handle := func(path string, h authedFunc, methods ...string) {
		r.Handle("/_matrix/client/v3"+path, mxhttp.Handle(a.authed(h))).Methods(methods...)
	}
	handle("/presence/{userId}/status", a.getPresence, http.MethodGet)
	handle("/presence/{userId}/status", a.putPresence, http.MethodPut)
}

// putPresence is PUT /presence/{userId}/status.
func (a *API) putPresence(r *http.Request, who Requester) (mxhttp.Response, error) {
	userID, err := roomPathVar(r, "userId")
	if err != nil {
		return mxhttp.Response{}, err
	}
	if userID != who.UserID {
		return mxhttp.Response{}, mxhttp.Forbidden("you can only set your own presence")
	}
	var req struct {
		Presence  string  `json:"presence"`
		StatusMsg *string `json:"status_msg"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	if req.Presence == "" {
		return mxhttp.Response{}, mxhttp.MissingParam("presence is required")
	}
	if !presenceStates[req.Presence] {
		return mxhttp.Response{}, mxhttp.InvalidParam("presence must be online, offline or unavailable")
	}
	if !a.cfg.PresenceEnabled {
		return mxhttp.Empty(), nil
	}
	t := a.presence()
	t.mu.Lock()
	t.users[who.UserID] = presenceStatus{presence: req.Presence, statusMsg: req.StatusMsg, at: a.now()}
	t.mu.Unlock()
	return mxhttp.Empty(), nil
}

// getPresence is GET /presence/{userId}/status.
func (a *API) getPresence(r *http.Request, who Requester) (mxhttp.Response, error) {
	userID, err := roomPathVar(r, "userId")
	if err != nil {
		return mxhttp.Response{}, err
	}
	offline := map[string]any{"presence": "offline"}
	if !a.cfg.PresenceEnabled {
		return mxhttp.OK(offline), nil
	}
	if userID != who.UserID {
		shared, err := storage.UsersShareRoom(r.Context(), a.db, who.UserID, userID)
		if err != nil {
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
		if !shared {
			return mxhttp.Response{}, mxhttp.Forbidden("you do not share a room with this user")
		}
	}
	t := a.presence()
	t.mu.Lock()
	st, ok := t.users[userID]
	t.mu.Unlock()
	if !ok {
		return mxhttp.OK(offline), nil
	}
	out := map[string]any{"presence": st.presence, "last_active_ago": a.now().Sub(st.at).Milliseconds()}
	if st.statusMsg != nil {
		out["status_msg"] = *st.statusMsg
	}
	if st.presence == "online" {
		out["currently_active"] = a.now().Sub(st.at) < 5*time.Minute
	}
	return mxhttp.OK(out), nil
}
