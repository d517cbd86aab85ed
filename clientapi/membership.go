package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"myelin/mxhttp"
	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Membership endpoints: join, knock, invite, leave, forget, kick, ban, unban, joined_rooms.

type membershipRequest struct {
	UserID           string          `json:"user_id"`
	Reason           string          `json:"reason"`
	ThirdPartySigned json.RawMessage `json:"third_party_signed"`
	// The third-party form of /invite.
	IDServer string `json:"id_server"`
	Medium   string `json:"medium"`
	Address  string `json:"address"`
}

// readMembershipRequest reads an optional body: /join, /leave and /knock may come without one.
func readMembershipRequest(r *http.Request) (membershipRequest, error) {
	var req membershipRequest
	err := readOptionalJSON(r, &req)
	return req, err
}

func roomIDResponse(roomID string) mxhttp.Response {
	return mxhttp.OK(map[string]string{"room_id": roomID})
}

// remoteRooms is what /join and /knock need from the room server for rooms on other servers:
// resolving another server's alias, and knocking through named servers. roomserver.Server has
// both; a Rooms without them (tests) makes remote aliases unknown and ignores knock hints.
type remoteRooms interface {
	ResolveRemoteAlias(ctx context.Context, alias string) (roomID string, servers []string, err error)
	KnockVia(ctx context.Context, roomID, userID, reason string, via []string) (*event.Event, error)
}

// resolveRoomIDOrAlias resolves the {roomIdOrAlias} of /join and /knock, and returns the
// servers to try for a room this server is not in: the via and server_name parameters first,
// then the servers the alias's server named.
func (a *API) resolveRoomIDOrAlias(r *http.Request) (roomID string, via []string, err error) {
	s, err := roomPathVar(r, "roomIdOrAlias")
	if err != nil {
		return "", nil, err
	}
	q := r.URL.Query()
	for _, v := range append(q["via"], q["server_name"]...) {
		if _, err := event.ParseServerName(v); err != nil {
			return "", nil, mxhttp.InvalidParam("%q is not a server name", v)
		}
		via = append(via, v)
	}
	switch {
	case strings.HasPrefix(s, "!"):
		if _, err := event.ParseRoomID(s); err != nil {
			return "", nil, mxhttp.InvalidParam("%q is not a room id", s)
		}
		return s, via, nil
	case strings.HasPrefix(s, "#"):
		local, err := a.parseAlias(s)
		if err != nil {
			return "", nil, err
		}
		if local {
			roomID, err := a.resolveAlias(r.Context(), s)
			return roomID, via, err
		}
		remote, ok := a.cfg.Rooms.(remoteRooms)
		if !ok {
			return "", nil, mxhttp.NotFound("room alias %s is on another server", s)
		}
		roomID, servers, err := remote.ResolveRemoteAlias(r.Context(), s)
		if err != nil {
			return "", nil, aliasError(s, err)
		}
		return roomID, append(via, servers...), nil
	}
	return "", nil, mxhttp.InvalidParam("%q is neither a room id nor a room alias", s)
}

// aliasError maps a failure to resolve another server's alias. Unknown there, or its server
// unreachable, the alias names no room this server can find: 404, as the directory answers.
func aliasError(alias string, err error) error {
	switch {
	case errors.Is(err, roomserver.ErrNotFound):
		return mxhttp.NotFound("room alias %s not found", alias).Because(err)
	case errors.Is(err, roomserver.ErrRemoteJoinUnsupported):
		return mxhttp.NotFound("room alias %s is on another server, and this server does not federate", alias).Because(err)
	}
	return mxhttp.NotFound("room alias %s could not be resolved: its server did not answer", alias).Because(err)
}

func (a *API) joinRoomIDOrAlias(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, via, err := a.resolveRoomIDOrAlias(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	return a.join(r, who, roomID, via)
}

func (a *API) joinRoom(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, err := pathRoomID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	return a.join(r, who, roomID, nil)
}

// join makes the requester join a room, through the servers of via when this server is not in
// it. Each remote attempt is bounded by the room server, so an unreachable room fails rather
// than hangs.
func (a *API) join(r *http.Request, who Requester, roomID string, via []string) (mxhttp.Response, error) {
	if err := a.allowUser("join", who.Localpart); err != nil {
		return mxhttp.Response{}, err
	}
	req, err := readMembershipRequest(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	if len(req.ThirdPartySigned) > 0 && string(req.ThirdPartySigned) != "null" {
		return mxhttp.Response{}, mxhttp.InvalidParam("third_party_signed is not supported: this server does not work with identity servers")
	}
	if _, err := a.cfg.Rooms.JoinVia(r.Context(), roomID, who.UserID, req.Reason, via); err != nil {
		return mxhttp.Response{}, roomError(err)
	}
	return roomIDResponse(roomID), nil
}

func (a *API) knock(r *http.Request, who Requester) (mxhttp.Response, error) {
	if err := a.allowUser("join", who.Localpart); err != nil {
		return mxhttp.Response{}, err
	}
	roomID, via, err := a.resolveRoomIDOrAlias(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	req, err := readMembershipRequest(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	if remote, ok := a.cfg.Rooms.(remoteRooms); ok {
		_, err = remote.KnockVia(r.Context(), roomID, who.UserID, req.Reason, via)
	} else {
		_, err = a.cfg.Rooms.Knock(r.Context(), roomID, who.UserID, req.Reason)
	}
	if err != nil {
		return mxhttp.Response{}, roomError(err)
	}
	return roomIDResponse(roomID), nil
}

func (a *API) invite(r *http.Request, who Requester) (mxhttp.Response, error) {
	if err := a.allowUser("invite", who.Localpart); err != nil {
		return mxhttp.Response{}, err
	}
	roomID, err := pathRoomID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	req, err := readMembershipRequest(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	if req.UserID == "" && (req.Medium != "" || req.Address != "" || req.IDServer != "") {
		return mxhttp.Response{}, mxhttp.InvalidParam("inviting by third-party identifier is not supported: this server does not work with identity servers")
	}
	if req.UserID == "" {
		return mxhttp.Response{}, mxhttp.MissingParam("user_id is required")
	}
	if err := checkUserID(req.UserID); err != nil {
		return mxhttp.Response{}, err
	}
	if _, err := a.cfg.Rooms.Invite(r.Context(), roomID, who.UserID, req.UserID, req.Reason, false); err != nil {
		return mxhttp.Response{}, roomError(err)
	}
	return mxhttp.Empty(), nil
}

func (a *API) leave(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, err := pathRoomID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	req, err := readMembershipRequest(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	if _, err := a.cfg.Rooms.Leave(r.Context(), roomID, who.UserID, req.Reason); err != nil {
		return mxhttp.Response{}, roomError(err)
	}
	return mxhttp.Empty(), nil
}

// forget records that the requester forgot a room they left, for /sync and room lists to hide
// it. The events stay: others in the room still see them.
func (a *API) forget(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, err := pathRoomID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	ctx := r.Context()
	m, err := membershipRecord(ctx, a.db, roomID, who.UserID)
	if err != nil {
		return mxhttp.Response{}, err
	}
	switch m.Membership {
	case "":
		return mxhttp.Empty(), nil // nothing to forget
	case "leave", "ban":
	default:
		return mxhttp.Response{}, &mxhttp.Error{Status: http.StatusBadRequest, Code: "M_UNKNOWN",
			Message: "you have not left the room: leave it before forgetting it"}
	}
	err = a.db.WithTx(ctx, func(tx *storage.Tx) error {
		return tx.ForgetRoom(ctx, who.UserID, roomID, m.StreamPos, a.now().UnixMilli())
	})
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.Empty(), nil
}

// membershipRecord is a user's stored membership of a room, with its stream position; a zero
// Membership if they have none, M_NOT_FOUND if the room is unknown.
func membershipRecord(ctx context.Context, db *storage.DB, roomID, userID string) (storage.Membership, error) {
	room, err := storage.GetRoom(ctx, db, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Membership{}, mxhttp.NotFound("room not found")
	}
	if err != nil {
		return storage.Membership{}, mxhttp.Internal(err)
	}
	m, err := storage.GetMembership(ctx, db, room.NID, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Membership{}, nil
	}
	if err != nil {
		return storage.Membership{}, mxhttp.Internal(err)
	}
	return m, nil
}

// targetAction is the shape of /kick, /ban and /unban.
func (a *API) targetAction(action func(ctx context.Context, roomID, sender, target, reason string) (*event.Event, error)) authedFunc {
	return func(r *http.Request, who Requester) (mxhttp.Response, error) {
		roomID, err := pathRoomID(r)
		if err != nil {
			return mxhttp.Response{}, err
		}
		var req membershipRequest
		if err := mxhttp.ReadJSON(r, &req); err != nil {
			return mxhttp.Response{}, err
		}
		if req.UserID == "" {
			return mxhttp.Response{}, mxhttp.MissingParam("user_id is required")
		}
		if err := checkUserID(req.UserID); err != nil {
			return mxhttp.Response{}, err
		}
		if _, err := action(r.Context(), roomID, who.UserID, req.UserID, req.Reason); err != nil {
			return mxhttp.Response{}, roomError(err)
		}
		return mxhttp.Empty(), nil
	}
}

func (a *API) kick(r *http.Request, who Requester) (mxhttp.Response, error) {
	return a.targetAction(a.cfg.Rooms.Kick)(r, who)
}

func (a *API) ban(r *http.Request, who Requester) (mxhttp.Response, error) {
	return a.targetAction(a.cfg.Rooms.Ban)(r, who)
}

func (a *API) unban(r *http.Request, who Requester) (mxhttp.Response, error) {
	return a.targetAction(a.cfg.Rooms.Unban)(r, who)
}

func (a *API) joinedRooms(r *http.Request, who Requester) (mxhttp.Response, error) {
	rooms, err := a.cfg.Rooms.JoinedRooms(r.Context(), who.UserID)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	if rooms == nil {
		rooms = []string{}
	}
	return mxhttp.OK(map[string]any{"joined_rooms": rooms}), nil
}
