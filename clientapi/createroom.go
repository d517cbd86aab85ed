package clientapi

import (
	"bytes"
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

type createRoomRequest struct {
	Visibility                string             `json:"visibility"`
	RoomAliasName             string             `json:"room_alias_name"`
	Name                      string             `json:"name"`
	Topic                     string             `json:"topic"`
	Invite                    []string           `json:"invite"`
	Invite3PID                []json.RawMessage  `json:"invite_3pid"`
	RoomVersion               string             `json:"room_version"`
	CreationContent           json.RawMessage    `json:"creation_content"`
	InitialState              []initialStateItem `json:"initial_state"`
	Preset                    string             `json:"preset"`
	IsDirect                  bool               `json:"is_direct"`
	PowerLevelContentOverride json.RawMessage    `json:"power_level_content_override"`
}

type initialStateItem struct {
	Type     *string         `json:"type"`
	StateKey string          `json:"state_key"`
	Content  json.RawMessage `json:"content"`
}

// createRoom is POST /createRoom. The alias is reserved before the room is created and bound
// to it afterwards, so that two requests for one alias cannot both succeed and a refused room
// leaves no alias behind.
func (a *API) createRoom(r *http.Request, who Requester) (mxhttp.Response, error) {
	if err := a.allowUser("create_room", who.Localpart); err != nil {
		return mxhttp.Response{}, err
	}
	var req createRoomRequest
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	rsReq, err := a.checkCreateRoom(req, who)
	if err != nil {
		return mxhttp.Response{}, err
	}
	ctx := r.Context()
	if rsReq.Alias != "" {
		if err := a.reserveAlias(ctx, rsReq.Alias, who.UserID); err != nil {
			return mxhttp.Response{}, err
		}
	}
	roomID, err := a.cfg.Rooms.CreateRoom(ctx, rsReq)
	if err != nil {
		if rsReq.Alias != "" {
			a.releaseAlias(context.WithoutCancel(ctx), rsReq.Alias)
		}
		return mxhttp.Response{}, createRoomError(err)
	}
	if rsReq.Alias != "" || req.Visibility == "public" {
		err := a.db.WithTx(ctx, func(tx *storage.Tx) error {
			if rsReq.Alias != "" {
				if err := tx.SetRoomAliasRoom(ctx, rsReq.Alias, roomID); err != nil {
					return err
				}
			}
			if req.Visibility == "public" {
				return tx.SetRoomPublished(ctx, roomID, true, a.now().UnixMilli())
			}
			return nil
		})
		if err != nil {
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
	}
	return mxhttp.OK(map[string]string{"room_id": roomID}), nil
}

// checkCreateRoom validates a /createRoom body before anything is written.
func (a *API) checkCreateRoom(req createRoomRequest, who Requester) (roomserver.CreateRoomRequest, error) {
	out := roomserver.CreateRoomRequest{
		Creator: who.UserID, RoomVersion: req.RoomVersion, Preset: req.Preset, Visibility: req.Visibility,
		Name: req.Name, Topic: req.Topic, Invite: req.Invite, IsDirect: req.IsDirect,
		CreationContent: req.CreationContent, PowerLevelContentOverride: req.PowerLevelContentOverride,
	}
	switch req.Visibility {
	case "", "public", "private":
	default:
		return out, mxhttp.InvalidParam("visibility must be public or private")
	}
	switch req.Preset {
	case "", roomserver.PresetPrivateChat, roomserver.PresetTrustedPrivateChat, roomserver.PresetPublicChat:
	default:
		return out, mxhttp.InvalidParam("unknown preset %q", req.Preset)
	}
	if req.RoomVersion != "" {
		if _, err := event.Version(req.RoomVersion); err != nil {
			return out, unsupportedRoomVersion(req.RoomVersion)
		}
	}
	if len(req.Invite3PID) > 0 {
		return out, mxhttp.InvalidParam("invite_3pid is not supported: this server does not work with identity servers")
	}
	for _, u := range req.Invite {
		if err := checkUserID(u); err != nil {
			return out, err
		}
		if u == who.UserID {
			return out, mxhttp.InvalidParam("the creator cannot invite themselves")
		}
	}
	if !isObjectOrAbsent(req.CreationContent) {
		return out, mxhttp.BadJSON("creation_content must be an object")
	}
	if !isObjectOrAbsent(req.PowerLevelContentOverride) {
		return out, mxhttp.BadJSON("power_level_content_override must be an object")
	}
	for i, s := range req.InitialState {
		if s.Type == nil {
			return out, mxhttp.BadJSON("initial_state[%d] has no type", i)
		}
		if len(s.Content) == 0 || !isObjectOrAbsent(s.Content) {
			return out, mxhttp.BadJSON("initial_state[%d].content must be an object", i)
		}
		out.InitialState = append(out.InitialState, roomserver.StateEvent{Type: *s.Type, StateKey: s.StateKey, Content: s.Content})
	}
	if req.RoomAliasName != "" {
		alias, err := a.localAlias(req.RoomAliasName)
		if err != nil {
			return out, err
		}
		out.Alias = alias
	}
	return out, nil
}

// localAlias builds "#localpart:server" from the room_alias_name of /createRoom.
func (a *API) localAlias(local string) (string, error) {
	if strings.ContainsAny(local, ":# \t\n\x00") {
		return "", mxhttp.InvalidParam("room_alias_name may not contain ':', '#' or whitespace")
	}
	alias := "#" + local + ":" + a.cfg.ServerName
	if len(alias) > event.MaxIDBytes {
		return "", mxhttp.InvalidParam("room alias is longer than %d bytes", event.MaxIDBytes)
	}
	return alias, nil
}

func isObjectOrAbsent(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null")) || t[0] == '{'
}

// createRoomError maps a refusal of the room's initial events to M_INVALID_ROOM_STATE: the
// request asked for a state the auth rules do not allow.
func createRoomError(err error) error {
	var unsupported event.ErrUnsupportedRoomVersion
	switch {
	case errors.As(err, &unsupported):
		return unsupportedRoomVersion(string(unsupported))
	case errors.Is(err, roomserver.ErrNotAllowed), errors.Is(err, roomserver.ErrInvalid), errors.Is(err, event.ErrTooLarge):
		e := roomError(err).(*mxhttp.Error)
		return &mxhttp.Error{Status: http.StatusBadRequest, Code: "M_INVALID_ROOM_STATE", Message: e.Message, Cause: err}
	}
	return roomError(err)
}
