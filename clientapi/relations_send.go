package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"myelin/mxhttp"
	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
)

// checkRelation applies the spec's server-side checks to an event a local user sends with an
// m.relates_to: a thread may not start from an event that itself relates to another (400
// M_UNKNOWN, "Validation of m.thread relationships"), and a user may not annotate an event
// twice with the same event type and key (400 M_DUPLICATE_ANNOTATION, "Avoiding duplicate
// annotations"). It runs inside the transaction-id guard, so that a retry of an annotation
// that was sent gets its event id back rather than this error.
func (a *API) checkRelation(ctx context.Context, who Requester, roomID, typ string, content json.RawMessage) error {
	rel, ok := event.RelationOf(content, "")
	if !ok {
		return nil
	}
	switch rel.RelType {
	case event.RelThread:
		parent, err := a.cfg.Rooms.Event(ctx, rel.EventID)
		if errors.Is(err, roomserver.ErrNotFound) {
			return nil // a parent this server does not have yet cannot be checked
		}
		if err != nil {
			return roomError(err)
		}
		if _, related := parent.RelatesTo(); related && parent.RoomID() == roomID {
			return &mxhttp.Error{Status: http.StatusBadRequest, Code: "M_UNKNOWN",
				Message: "cannot start a thread from an event with a relation"}
		}
	case event.RelAnnotation:
		room, err := storage.GetRoom(ctx, a.db, roomID)
		if errors.Is(err, storage.ErrNotFound) {
			return nil // the room server answers for an unknown room
		}
		if err != nil {
			return mxhttp.Internal(err)
		}
		dup, err := storage.HasAnnotation(ctx, a.db, room.NID, rel.EventID, typ, who.UserID, rel.Key)
		if err != nil {
			return mxhttp.Internal(err)
		}
		if dup {
			return &mxhttp.Error{Status: http.StatusBadRequest, Code: "M_DUPLICATE_ANNOTATION",
				Message: "you have already sent this annotation"}
		}
	}
	return nil
}
