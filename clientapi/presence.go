package clientapi

import (
	"net/http"

	"github.com/gorilla/mux"

	"myelin/mxhttp"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Presence (client-server API "Presence"). It is off unless the operator sets
// presence.enabled: whether someone is online, and since when, is a trace of their day that
// nobody else needs by default. Off, the endpoints still answer as the spec defines them, so
// that clients work unchanged: PUT is accepted and forgotten, GET says "offline" for
// everyone, /sync carries no presence, and no m.presence EDU is sent or taken.
//
// On, presence_state.go tracks it (in memory) and the rules of who sees what are the
// spec's: a user's presence is shown to the users who share a room with them, in /sync and
// through GET, and sent to the servers of those rooms.

var presenceStates = map[string]bool{presenceOnline: true, presenceOffline: true, presenceUnavailable: true}

// presenceEnabled reports whether presence is tracked and shared.
func (a *API) presenceEnabled() bool { return a.cfg.PresenceEnabled && a.cfg.Ephemeral.presenceOn() }

func (a *API) presenceRoutes(r *mux.Router) {
	handle := func(path string, h authedFunc, methods ...string) {
		mxhttp.Route(r, "/_matrix/client/v3"+path).Handler(mxhttp.Handle(a.authed(h))).Methods(methods...)
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
	if a.presenceEnabled() {
		a.cfg.Ephemeral.SetLocalPresence(who.UserID, req.Presence, req.StatusMsg)
	}
	return mxhttp.Empty(), nil
}

// getPresence is GET /presence/{userId}/status. One's own presence is always shown; another
// user's only to someone who shares a room with them (403 otherwise, as the spec's example
// says). A user id that does not parse is 404: there is no presence for it.
func (a *API) getPresence(r *http.Request, who Requester) (mxhttp.Response, error) {
	userID, err := roomPathVar(r, "userId")
	if err != nil {
		return mxhttp.Response{}, err
	}
	offline := map[string]any{"presence": presenceOffline}
	if !a.presenceEnabled() {
		return mxhttp.OK(offline), nil
	}
	if _, err := event.ParseUserID(userID); err != nil {
		return mxhttp.Response{}, mxhttp.NotFound("there is no presence for %q", userID)
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
	st, ok := a.cfg.Ephemeral.presenceOf(userID)
	if !ok {
		return mxhttp.OK(offline), nil
	}
	return mxhttp.OK(presenceContent(st, a.now())), nil
}
