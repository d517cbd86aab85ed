package federation

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"myelin/mxhttp"
	"myelin/roomserver"
	"myelin/roomserver/event"
)

// singlePDUTransaction is definitions/single_pdu_transaction.yaml, the answer of /event.
type singlePDUTransaction struct {
	Origin         string            `json:"origin"`
	OriginServerTS int64             `json:"origin_server_ts"`
	PDUs           []json.RawMessage `json:"pdus"`
}

// visibleEvent returns an event that origin may see: 404 M_NOT_FOUND if this server does
// not have it (or, when roomID is not empty, it is not in that room), 403 M_FORBIDDEN if no
// user of origin could see it.
func (s *Server) visibleEvent(ctx context.Context, origin, roomID, eventID string) (*event.Event, error) {
	// A purged event is served as its redacted stub: other servers' DAG walks go through it.
	ev, err := s.cfg.Rooms.FederationEvent(ctx, eventID)
	if errors.Is(err, roomserver.ErrNotFound) || (err == nil && roomID != "" && ev.RoomID() != roomID) {
		return nil, mxhttp.NotFound("could not find event %s", eventID)
	}
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	visible, err := s.cfg.Rooms.ServerVisibleEvents(ctx, origin, []*event.Event{ev})
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	if len(visible) == 0 {
		return nil, mxhttp.Forbidden("you do not have permission to see event %s", eventID)
	}
	return ev, nil
}

// getEvent is GET /_matrix/federation/v1/event/{eventId}.
func (s *Server) getEvent(r *http.Request) (mxhttp.Response, error) {
	if _, err := s.rooms(); err != nil {
		return mxhttp.Response{}, err
	}
	eventID, err := pathVar(r, "eventID")
	if err != nil {
		return mxhttp.Response{}, err
	}
	ctx, origin := r.Context(), OriginFromContext(r.Context())
	ev, err := s.visibleEvent(ctx, origin, "", eventID)
	if err != nil {
		return mxhttp.Response{}, err
	}
	// Not a protected endpoint, but a denied server gets nothing of the room either.
	if err := s.checkACL(ctx, ev.RoomID(), origin); err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK(singlePDUTransaction{Origin: s.cfg.ServerName, OriginServerTS: s.now().UnixMilli(),
		PDUs: []json.RawMessage{ev.JSON()}}), nil
}

// stateAt reads the state before the event_id query parameter for /state and /state_ids.
func (s *Server) stateAt(r *http.Request) (state, authChain []*event.Event, err error) {
	if _, err := s.rooms(); err != nil {
		return nil, nil, err
	}
	roomID, err := pathVar(r, "roomID")
	if err != nil {
		return nil, nil, err
	}
	eventID := r.URL.Query().Get("event_id")
	if eventID == "" {
		return nil, nil, mxhttp.MissingParam("event_id is required")
	}
	ctx := r.Context()
	if _, err := s.visibleEvent(ctx, OriginFromContext(ctx), roomID, eventID); err != nil {
		return nil, nil, err
	}
	state, authChain, err = s.cfg.Rooms.StateForFederation(ctx, roomID, eventID)
	return state, authChain, roomError(err)
}

// getState is GET /_matrix/federation/v1/state/{roomId}?event_id=.
func (s *Server) getState(r *http.Request) (mxhttp.Response, error) {
	state, chain, err := s.stateAt(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK(map[string]any{"pdus": pdus(state), "auth_chain": pdus(chain)}), nil
}

// getStateIDs is GET /_matrix/federation/v1/state_ids/{roomId}?event_id=.
func (s *Server) getStateIDs(r *http.Request) (mxhttp.Response, error) {
	state, chain, err := s.stateAt(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK(map[string]any{"pdu_ids": eventIDs(state), "auth_chain_ids": eventIDs(chain)}), nil
}

func eventIDs(evs []*event.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID()
	}
	return out
}

// getEventAuth is GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}.
func (s *Server) getEventAuth(r *http.Request) (mxhttp.Response, error) {
	roomID, err := s.pathRoom(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	eventID, err := pathVar(r, "eventID")
	if err != nil {
		return mxhttp.Response{}, err
	}
	ctx := r.Context()
	if _, err := s.visibleEvent(ctx, OriginFromContext(ctx), roomID, eventID); err != nil {
		return mxhttp.Response{}, err
	}
	chain, err := s.cfg.Rooms.AuthChainForFederation(ctx, roomID, eventID)
	if err != nil {
		return mxhttp.Response{}, roomError(err)
	}
	return mxhttp.OK(map[string]any{"auth_chain": pdus(chain)}), nil
}

// timestampToEvent is GET /_matrix/federation/v1/timestamp_to_event/{roomId}?ts=&dir=.
func (s *Server) timestampToEvent(r *http.Request) (mxhttp.Response, error) {
	roomID, err := s.pathRoom(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	q := r.URL.Query()
	if q.Get("ts") == "" {
		return mxhttp.Response{}, mxhttp.MissingParam("ts is required")
	}
	ts, err := strconv.ParseInt(q.Get("ts"), 10, 64)
	if err != nil {
		return mxhttp.Response{}, mxhttp.InvalidParam("ts must be an integer")
	}
	var backwards bool
	switch q.Get("dir") {
	case "f":
	case "b":
		backwards = true
	case "":
		return mxhttp.Response{}, mxhttp.MissingParam("dir is required")
	default:
		return mxhttp.Response{}, mxhttp.InvalidParam("dir must be f or b")
	}
	ctx := r.Context()
	ev, err := s.cfg.Rooms.EventNearTimestamp(ctx, roomID, ts, backwards)
	if errors.Is(err, roomserver.ErrNotFound) {
		return mxhttp.Response{}, mxhttp.NotFound("unable to find an event from %d in that direction", ts)
	}
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	visible, err := s.cfg.Rooms.ServerVisibleEvents(ctx, OriginFromContext(ctx), []*event.Event{ev})
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	if len(visible) == 0 {
		return mxhttp.Response{}, mxhttp.NotFound("unable to find an event from %d in that direction", ts)
	}
	return mxhttp.OK(map[string]any{"event_id": ev.ID(), "origin_server_ts": ev.OriginServerTS()}), nil
}
