package federation

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"myelin/mxhttp"
	"myelin/roomserver/event"
)

// inviteV2 is PUT /_matrix/federation/v2/invite/{roomId}/{eventId}.
func (s *Server) inviteV2(r *http.Request) (mxhttp.Response, error) {
	var req struct {
		RoomVersion     *string           `json:"room_version"`
		Event           json.RawMessage   `json:"event"`
		InviteRoomState []json.RawMessage `json:"invite_room_state"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	if req.RoomVersion == nil || len(req.Event) == 0 {
		return mxhttp.Response{}, mxhttp.BadJSON("room_version and event are required")
	}
	signed, err := s.receiveInvite(r, *req.RoomVersion, req.Event, req.InviteRoomState)
	if err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK(map[string]any{"event": json.RawMessage(signed.JSON())}), nil
}

// inviteV1 is PUT /_matrix/federation/v1/invite/{roomId}/{eventId}: the body is the event,
// the stripped state is in its unsigned.invite_room_state, and the room version is not said
// (this endpoint predates room versions 3 and later): the version of the room when this
// server knows it, else "1". The answer is the historical [200, {"event": ...}].
func (s *Server) inviteV1(r *http.Request) (mxhttp.Response, error) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return mxhttp.Response{}, mxhttp.BadJSON("could not read request body")
	}
	var body struct {
		Unsigned struct {
			InviteRoomState []json.RawMessage `json:"invite_room_state"`
		} `json:"unsigned"`
	}
	if err := mxhttp.DecodeJSON(raw, &body); err != nil {
		return mxhttp.Response{}, err
	}
	version := "1"
	roomID, err := pathVar(r, "roomID")
	if err != nil {
		return mxhttp.Response{}, err
	}
	if rooms, err := s.rooms(); err == nil {
		if v, err := rooms.RoomVersion(r.Context(), roomID); err == nil {
			version = v.ID
		}
	}
	signed, err := s.receiveInvite(r, version, raw, body.Unsigned.InviteRoomState)
	if err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK([]any{http.StatusOK, map[string]any{"event": json.RawMessage(signed.JSON())}}), nil
}

// receiveInvite checks an invite of one of our users and has the room server counter-sign
// (and, for a room this server is not in, keep) it.
func (s *Server) receiveInvite(r *http.Request, version string, raw json.RawMessage, inviteState []json.RawMessage) (*event.Event, error) {
	rooms, roomID, eventID, err := s.pathRoomEvent(r)
	if err != nil {
		return nil, err
	}
	ctx, origin := r.Context(), OriginFromContext(r.Context())
	v, err := event.Version(version)
	if err != nil {
		return nil, incompatibleRoomVersion(version)
	}
	if known, err := rooms.RoomVersion(ctx, roomID); err == nil && known.ID != v.ID {
		return nil, mxhttp.InvalidParam("the room is of version %s, not %s", known.ID, v.ID)
	}
	ev, err := s.checkPDU(ctx, raw, v)
	if err != nil {
		return nil, pduError(err)
	}
	if err := checkEventForEndpoint(ev, origin, roomID, eventID); err != nil {
		return nil, err
	}
	if ev.Type() != "m.room.member" || ev.StateKey() == nil {
		return nil, mxhttp.InvalidParam("the event must be an m.room.member event")
	}
	if m, err := ev.Membership(); err != nil || m != "invite" {
		return nil, mxhttp.InvalidParam("the event's membership must be invite")
	}
	if u, err := event.ParseUserID(*ev.StateKey()); err != nil || string(u.Domain()) != s.cfg.ServerName {
		return nil, mxhttp.InvalidParam("the invitee is not a user of this server")
	}
	state, err := s.checkInviteState(ctx, v, roomID, inviteState)
	if err != nil {
		return nil, err
	}
	signed, err := rooms.ReceiveInvite(ctx, ev, state)
	if err != nil {
		return nil, roomError(err)
	}
	return signed, nil
}

// checkInviteState validates invite_room_state (v1.16 of the spec): it must hold the room's
// m.room.create event, and every entry must be a PDU of the room version, signed, of the same
// room. Servers SHOULD refuse invites that fail this in room versions from 12 on and MAY in
// earlier ones: there, entries that fail are dropped instead, since older servers send
// stripped events. It returns the entries kept, as a JSON list.
func (s *Server) checkInviteState(ctx context.Context, v event.RoomVersion, roomID string, entries []json.RawMessage) (json.RawMessage, error) {
	strict := v.RoomIDFromCreateEvent
	kept := make([]json.RawMessage, 0, len(entries))
	hasCreate := false
	for _, raw := range entries {
		ev, err := s.checkPDU(ctx, raw, v)
		if err == nil && ev.RoomID() != roomID {
			err = errors.New("another room")
		}
		if err != nil {
			if strict {
				return nil, mxhttp.InvalidParam("invite_room_state holds an invalid event").Because(err)
			}
			var obj map[string]json.RawMessage
			if json.Unmarshal(raw, &obj) == nil {
				kept = append(kept, raw)
			}
			continue
		}
		if ev.Type() == "m.room.create" && ev.StateKeyEquals("") {
			hasCreate = true
		}
		kept = append(kept, ev.JSON())
	}
	if strict && !hasCreate {
		return nil, mxhttp.InvalidParam("invite_room_state must hold the room's m.room.create event")
	}
	out, err := json.Marshal(kept)
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	return out, nil
}
