package federation

import (
	"context"
	"net/http"

	"myelin/mxhttp"
	"myelin/roomserver/event"
)

// strippedStateTypes are the state events shown to users who are invited to a room or knock
// on it, so that they can tell what it is (client-server API, "Stripped state").
var strippedStateTypes = []string{
	"m.room.create", "m.room.name", "m.room.avatar", "m.room.topic", "m.room.join_rules",
	"m.room.canonical_alias", "m.room.encryption",
}

// StrippedStatePDUs returns the events of a room's current state that invitees and knockers
// are shown, as full PDUs of the room's version (v1.16 of the spec), m.room.create included.
func StrippedStatePDUs(ctx context.Context, rooms interface {
	CurrentState(ctx context.Context, roomID string, types ...string) ([]*event.Event, error)
}, roomID string) ([]*event.Event, error) {
	return rooms.CurrentState(ctx, roomID, strippedStateTypes...)
}

// sendKnock is PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}.
func (s *Server) sendKnock(r *http.Request) (mxhttp.Response, error) {
	knock, err := s.acceptMembership(r, "knock")
	if err != nil {
		return mxhttp.Response{}, err
	}
	state, err := StrippedStatePDUs(r.Context(), s.cfg.Rooms, knock.RoomID())
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	return mxhttp.OK(map[string]any{"knock_room_state": pdus(state)}), nil
}
