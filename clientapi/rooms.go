package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/gorilla/mux"

	"myelin/mxhttp"
	"myelin/roomserver"
	"myelin/roomserver/auth"
	"myelin/roomserver/event"
)

// Rooms is what the client API needs of the room server.
type Rooms interface {
	CreateRoom(ctx context.Context, req roomserver.CreateRoomRequest) (string, error)
	SendEvent(ctx context.Context, p event.Proto) (*event.Event, error)
	SendEventAlso(ctx context.Context, p event.Proto, also roomserver.AlsoInTx) (*event.Event, error)
	SearchIndexed(ctx context.Context) error
	JoinVia(ctx context.Context, roomID, userID, reason string, via []string) (*event.Event, error)
	Leave(ctx context.Context, roomID, userID, reason string) (*event.Event, error)
	Invite(ctx context.Context, roomID, sender, target, reason string, isDirect bool) (*event.Event, error)
	Kick(ctx context.Context, roomID, sender, target, reason string) (*event.Event, error)
	Ban(ctx context.Context, roomID, sender, target, reason string) (*event.Event, error)
	Unban(ctx context.Context, roomID, sender, target, reason string) (*event.Event, error)
	Knock(ctx context.Context, roomID, userID, reason string) (*event.Event, error)
	Redact(ctx context.Context, roomID, sender, eventID, reason string) (*event.Event, error)
	Upgrade(ctx context.Context, roomID, sender, newVersion string, additionalCreators []string) (string, error)

	RoomVersion(ctx context.Context, roomID string) (event.RoomVersion, error)
	Event(ctx context.Context, eventID string) (*event.Event, error)
	CurrentState(ctx context.Context, roomID string, types ...string) ([]*event.Event, error)
	CurrentStateEvent(ctx context.Context, roomID, typ, stateKey string) (*event.Event, error)
	StateAfter(ctx context.Context, eventID string) ([]*event.Event, error)
	Membership(ctx context.Context, roomID, userID string) (string, error)
	Members(ctx context.Context, roomID, membership string) ([]string, error)
	JoinedRooms(ctx context.Context, userID string) ([]string, error)
	VisibleEvents(ctx context.Context, userID string, evs []*event.Event) ([]*event.Event, error)
	// VisibleEventsWithMembership also gives userID's membership at each event (membership_at.go).
	VisibleEventsWithMembership(ctx context.Context, userID string, evs []*event.Event) ([]*event.Event, map[string]string, error)
	RedactionsFor(ctx context.Context, eventIDs []string) (map[string]*event.Event, error)
	UnappliedRedactions(ctx context.Context, eventIDs []string) (map[string]bool, error)
	EventNearTimestamp(ctx context.Context, roomID string, ts int64, backwards bool) (*event.Event, error)
	// BackfillBefore fetches history from other servers for /messages (messages_backfill.go).
	BackfillBefore(ctx context.Context, roomID string, minDepth, maxDepth int64, limit int) (int, error)
	// Subscribe feeds the /sync notifier (sync.go).
	Subscribe(fn func(roomserver.NewEvent)) (unsubscribe func())
}

var _ Rooms = (*roomserver.Server)(nil)

// roomError maps the room server's errors to Matrix errors. The auth rule that refused an event
// is named to the client: it is the room's public policy, not a secret.
func roomError(err error) error {
	var mx *mxhttp.Error
	var unsupported event.ErrUnsupportedRoomVersion
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mx):
		return mx
	case errors.Is(err, roomserver.ErrRemoteJoinUnsupported):
		return mxhttp.NotFound("this server is not in the room and knows no server to join it through").Because(err)
	case errors.Is(err, roomserver.ErrRemoteFailed):
		return &mxhttp.Error{Status: http.StatusBadGateway, Code: "M_UNKNOWN",
			Message: "no server in the room could be reached to complete the request", Cause: err}
	case errors.Is(err, roomserver.ErrNotFound):
		return mxhttp.NotFound("room or event not found").Because(err)
	case errors.Is(err, roomserver.ErrNotAllowed):
		msg := "not allowed"
		var re *auth.RuleError
		if errors.As(err, &re) {
			msg = re.Error()
		} else if _, after, ok := strings.Cut(err.Error(), roomserver.ErrNotAllowed.Error()+": "); ok {
			msg = after
		}
		return mxhttp.Forbidden("%s", msg).Because(err)
	case errors.Is(err, event.ErrTooLarge):
		return mxhttp.TooLarge("event too large").Because(err)
	case errors.As(err, &unsupported):
		return unsupportedRoomVersion(string(unsupported))
	case errors.Is(err, roomserver.ErrInvalid):
		msg := strings.TrimPrefix(err.Error(), roomserver.ErrInvalid.Error()+": ")
		return mxhttp.InvalidParam("%s", msg).Because(err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return mxhttp.Internal(err)
	}
	return mxhttp.Internal(err)
}

func unsupportedRoomVersion(v string) *mxhttp.Error {
	return &mxhttp.Error{Status: http.StatusBadRequest, Code: "M_UNSUPPORTED_ROOM_VERSION",
		Message: "this server does not support room version " + v}
}

// roomPathVar returns a path variable, unescaped: the router matches encoded paths so that ids
// with '/' or '#' survive.
func roomPathVar(r *http.Request, name string) (string, error) {
	v, err := url.PathUnescape(mux.Vars(r)[name])
	if err != nil {
		return "", mxhttp.InvalidParam("%s is not correctly escaped", name)
	}
	return v, nil
}

// pathRoomID returns the {roomId} of the path, checked to be a room id.
func pathRoomID(r *http.Request) (string, error) {
	id, err := roomPathVar(r, "roomId")
	if err != nil {
		return "", err
	}
	if _, err := event.ParseRoomID(id); err != nil {
		return "", mxhttp.InvalidParam("%q is not a room id", id)
	}
	return id, nil
}

// pathVars returns the named path variables, unescaped, in order.
func pathVars(r *http.Request, names ...string) ([]string, error) {
	out := make([]string, len(names))
	for i, name := range names {
		v, err := roomPathVar(r, name)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// pathRoomVars returns the {roomId} of the path, checked to be a room id, and the named path
// variables after it, unescaped, in order.
func pathRoomVars(r *http.Request, names ...string) (string, []string, error) {
	roomID, err := pathRoomID(r)
	if err != nil {
		return "", nil, err
	}
	vs, err := pathVars(r, names...)
	if err != nil {
		return "", nil, err
	}
	return roomID, vs, nil
}

// checkUserID checks a user id of a request body.
func checkUserID(id string) error {
	if _, err := event.ParseUserID(id); err != nil {
		return mxhttp.InvalidParam("%q is not a user id", id)
	}
	return nil
}

// readAccess is what a user may read of a room: everything up to now for members (and anyone
// when the room is world readable), or up to their departure for users who left.
type readAccess struct {
	// Until is the membership event that ended the user's presence (leave or ban); nil when
	// the user may read the room as it is now.
	Until *event.Event
	// Membership is the user's current membership, "" if none.
	Membership string
}

// roomReadAccess decides whether userID may read roomID at all: 404 for a room this server
// does not know, 403 for a user who never was in it (unless it is world readable).
func (a *API) roomReadAccess(ctx context.Context, roomID, userID string) (readAccess, error) {
	rooms := a.cfg.Rooms
	m, err := rooms.Membership(ctx, roomID, userID)
	if err != nil {
		return readAccess{}, roomError(err)
	}
	switch m {
	case "join":
		return readAccess{Membership: m}, nil
	case "leave", "ban":
		if worldReadable(ctx, rooms, roomID) {
			return readAccess{Membership: m}, nil
		}
		ev, err := rooms.CurrentStateEvent(ctx, roomID, auth.TypeMember, userID)
		if err != nil {
			return readAccess{}, roomError(err)
		}
		return readAccess{Until: ev, Membership: m}, nil
	}
	if worldReadable(ctx, rooms, roomID) {
		return readAccess{Membership: m}, nil
	}
	return readAccess{}, mxhttp.Forbidden("you are not a member of this room")
}

func worldReadable(ctx context.Context, rooms Rooms, roomID string) bool {
	ev, err := rooms.CurrentStateEvent(ctx, roomID, "m.room.history_visibility", "")
	if err != nil {
		return false
	}
	var c struct {
		HistoryVisibility string `json:"history_visibility"`
	}
	return json.Unmarshal(ev.Content(), &c) == nil && c.HistoryVisibility == roomserver.VisibilityWorldReadable
}
