package federation

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/gorilla/mux"

	"myelin/mxhttp"
	"myelin/roomserver"
	"myelin/roomserver/event"
)

// RoomServer is what the inbound room endpoints need of the room server.
type RoomServer interface {
	RoomVersion(ctx context.Context, roomID string) (event.RoomVersion, error)
	Event(ctx context.Context, eventID string) (*event.Event, error)
	// FederationEvent is Event, with the stub of an event that retention purged.
	FederationEvent(ctx context.Context, eventID string) (*event.Event, error)
	CurrentState(ctx context.Context, roomID string, types ...string) ([]*event.Event, error)
	CurrentStateEvent(ctx context.Context, roomID, typ, stateKey string) (*event.Event, error)
	ForwardExtremities(ctx context.Context, roomID string) ([]*event.Event, error)

	InputRemote(ctx context.Context, ev *event.Event) (roomserver.InputStatus, error)
	InputOutlier(ctx context.Context, ev *event.Event) (roomserver.InputStatus, error)
	InputRemoteAfterGap(ctx context.Context, server string, ev *event.Event) (roomserver.InputStatus, error)

	JoinedServers(ctx context.Context, roomID string) ([]string, error)
	ServerInRoom(ctx context.Context, roomID, server string) (bool, error)
	ServerVisibleEvents(ctx context.Context, server string, evs []*event.Event) ([]*event.Event, error)
	StateForFederation(ctx context.Context, roomID, eventID string) (state, authChain []*event.Event, err error)
	AuthChainForFederation(ctx context.Context, roomID, eventID string) ([]*event.Event, error)
	AuthChain(ctx context.Context, eventIDs []string) ([]*event.Event, error)
	Backfill(ctx context.Context, roomID string, from []string, limit int) ([]*event.Event, error)
	MissingEvents(ctx context.Context, roomID string, earliest, latest []string, limit int, minDepth int64) ([]*event.Event, error)
	EventNearTimestamp(ctx context.Context, roomID string, ts int64, backwards bool) (*event.Event, error)

	MakeMembership(ctx context.Context, roomID, userID, membership string) (roomserver.MembershipTemplate, error)
	AcceptRemoteMembership(ctx context.Context, ev *event.Event, membership string) (*event.Event, error)
	ReceiveInvite(ctx context.Context, ev *event.Event, inviteState json.RawMessage) (*event.Event, error)
}

var _ RoomServer = (*roomserver.Server)(nil)

// EventForwarder sends an event of another server to the other servers of its room, as a
// resident server must after send_join, send_leave and send_knock; *Sender is one.
type EventForwarder interface {
	Forward(ctx context.Context, eventID string, exclude ...string) error
}

var _ EventForwarder = (*Sender)(nil)

// EDUHandler takes the EDUs of one edu_type from a transaction. The origin has been
// authenticated and server ACLs applied (for m.typing and m.receipt); an error is logged and
// does not fail the transaction.
type EDUHandler interface {
	HandleEDU(ctx context.Context, origin string, content json.RawMessage) error
}

// EDUHandlerFunc is an EDUHandler as a function.
type EDUHandlerFunc func(ctx context.Context, origin string, content json.RawMessage) error

// HandleEDU calls f.
func (f EDUHandlerFunc) HandleEDU(ctx context.Context, origin string, content json.RawMessage) error {
	return f(ctx, origin, content)
}

// pathVar returns a path parameter, unescaped (the router matches encoded paths).
func pathVar(r *http.Request, name string) (string, error) {
	v, err := url.PathUnescape(mux.Vars(r)[name])
	if err != nil || v == "" {
		return "", mxhttp.InvalidParam("invalid %s in path", name)
	}
	return v, nil
}

// pathRoom returns the {roomID} of a request about a room, once this server serves rooms.
func (s *Server) pathRoom(r *http.Request) (string, error) {
	if _, err := s.rooms(); err != nil {
		return "", err
	}
	return pathVar(r, "roomID")
}

// pathRoomEvent returns the room server, and the {roomID} and {eventID} of a request about an
// event of a room.
func (s *Server) pathRoomEvent(r *http.Request) (rooms RoomServer, roomID, eventID string, err error) {
	if rooms, err = s.rooms(); err != nil {
		return nil, "", "", err
	}
	if roomID, err = pathVar(r, "roomID"); err != nil {
		return nil, "", "", err
	}
	if eventID, err = pathVar(r, "eventID"); err != nil {
		return nil, "", "", err
	}
	return rooms, roomID, eventID, nil
}

// roomError maps the room server's errors to Matrix errors.
func roomError(err error) error {
	var me *mxhttp.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &me):
		return err
	case errors.Is(err, roomserver.ErrNotFound):
		return mxhttp.NotFound("not found").Because(err)
	case errors.Is(err, roomserver.ErrStateUnknown):
		return mxhttp.NotFound("the state at that event is unknown").Because(err)
	case errors.Is(err, roomserver.ErrUnableToAuthoriseJoin):
		return (&mxhttp.Error{Status: http.StatusBadRequest, Code: "M_UNABLE_TO_AUTHORISE_JOIN",
			Message: "this server cannot check the conditions of the room's join rule"}).Because(err)
	case errors.Is(err, roomserver.ErrUnableToGrantJoin):
		return (&mxhttp.Error{Status: http.StatusBadRequest, Code: "M_UNABLE_TO_GRANT_JOIN",
			Message: "no user of this server can authorise the join; try another server"}).Because(err)
	case errors.Is(err, roomserver.ErrNotAllowed), errors.Is(err, roomserver.ErrRejected):
		return mxhttp.Forbidden("not allowed by the rules of the room").Because(err)
	case errors.Is(err, roomserver.ErrInvalid):
		return mxhttp.InvalidParam("invalid event").Because(err)
	}
	return mxhttp.Internal(err)
}

// pdus renders events as the PDU list of a response.
func pdus(evs []*event.Event) []json.RawMessage {
	out := make([]json.RawMessage, len(evs))
	for i, ev := range evs {
		out[i] = ev.JSON()
	}
	return out
}

// rooms returns the room server or a 404 when this server was started without one.
func (s *Server) rooms() (RoomServer, error) {
	if s.cfg.Rooms == nil {
		return nil, mxhttp.Unrecognized("this server does not serve rooms over federation")
	}
	return s.cfg.Rooms, nil
}
