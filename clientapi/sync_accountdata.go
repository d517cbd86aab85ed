package clientapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"myelin/mxhttp"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Account data (client-server API, "Client Config"). The server stores each value as given and
// never reads it; /sync hands changes out on the account_data stream.

// serverControlledAccountData are the types the server sets itself: clients use their own
// endpoints (read markers, push rules) for them, and PUT answers 405 M_BAD_JSON.
var serverControlledAccountData = map[string]bool{"m.fully_read": true, "m.push_rules": true}

func (h *syncHandlers) accountDataRoutes(r *mux.Router) {
	handle := func(path string, f mxhttp.HandlerFunc, methods ...string) {
		mxhttp.Route(r, "/_matrix/client/v3"+path).Handler(mxhttp.Handle(f)).Methods(methods...)
	}
	handle("/user/{userId}/account_data/{type}", h.authed(h.putAccountData), http.MethodPut)
	handle("/user/{userId}/account_data/{type}", h.authed(h.getAccountData), http.MethodGet)
	handle("/user/{userId}/rooms/{roomId}/account_data/{type}", h.authed(h.putAccountData), http.MethodPut)
	handle("/user/{userId}/rooms/{roomId}/account_data/{type}", h.authed(h.getAccountData), http.MethodGet)
}

// accountDataTarget reads the path: the data type and the room ("" for global data).
func accountDataTarget(r *http.Request, who Requester) (roomID, dataType string, err error) {
	if err := requireOwnUser(r, who); err != nil {
		return "", "", mxhttp.Forbidden("cannot access account data of another user")
	}
	dataType = userDataVar(r, "type")
	if dataType == "" {
		return "", "", mxhttp.InvalidParam("missing account data type")
	}
	if _, ok := mux.Vars(r)["roomId"]; ok {
		roomID = userDataVar(r, "roomId")
		if _, err := event.ParseRoomID(roomID); err != nil {
			return "", "", mxhttp.InvalidParam("invalid room id")
		}
	}
	return roomID, dataType, nil
}

func (h *syncHandlers) putAccountData(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, dataType, err := accountDataTarget(r, who)
	if err != nil {
		return mxhttp.Response{}, err
	}
	var content map[string]json.RawMessage
	if err := mxhttp.ReadJSON(r, &content); err != nil {
		return mxhttp.Response{}, err
	}
	if content == nil {
		return mxhttp.Response{}, mxhttp.BadJSON("account data must be a JSON object")
	}
	if serverControlledAccountData[dataType] {
		e := mxhttp.BadJSON("%s is set by the server, not by clients", dataType)
		e.Status = http.StatusMethodNotAllowed
		return mxhttp.Response{}, e
	}
	raw, err := json.Marshal(content)
	if err != nil {
		return mxhttp.Response{}, mxhttp.BadJSON("account data must be a JSON object")
	}
	err = h.db.WithTx(r.Context(), func(tx *storage.Tx) error {
		_, err := tx.SetAccountData(r.Context(), who.UserID, roomID, dataType, raw)
		return err
	})
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	h.notifier.UserChanged(who.UserID)
	return mxhttp.Empty(), nil
}

func (h *syncHandlers) getAccountData(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, dataType, err := accountDataTarget(r, who)
	if err != nil {
		return mxhttp.Response{}, err
	}
	if roomID == "" && dataType == "m.push_rules" {
		return h.pushRulesAccountData(r, who) // rendered from the rules (sync_pushrules.go)
	}
	d, err := storage.GetAccountData(r.Context(), h.db, who.UserID, roomID, dataType)
	if errors.Is(err, storage.ErrNotFound) {
		return mxhttp.Response{}, mxhttp.NotFound("no account data of type %s", dataType)
	}
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.OK(d.Content), nil
}
