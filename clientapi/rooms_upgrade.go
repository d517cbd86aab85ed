package clientapi

import (
	"context"
	"net/http"

	"myelin/mxhttp"
	"myelin/roomserver/event"
	"myelin/storage"
)

// upgradeRoom is POST /rooms/{roomId}/upgrade. After the room server has replaced the room,
// what the client API keeps about the old room follows it: its local aliases, its canonical
// alias and its place in the room directory.
func (a *API) upgradeRoom(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, err := pathRoomID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	var req struct {
		NewVersion string `json:"new_version"`
		// AdditionalCreators (v1.16) only count in versions with privileged creators; for
		// others the spec has the field ignored, so it is checked only where it counts.
		AdditionalCreators []string `json:"additional_creators"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	if req.NewVersion == "" {
		return mxhttp.Response{}, mxhttp.MissingParam("new_version is required")
	}
	v, err := event.Version(req.NewVersion)
	if err != nil {
		return mxhttp.Response{}, unsupportedRoomVersion(req.NewVersion)
	}
	if !v.PrivilegedCreators {
		req.AdditionalCreators = nil
	}
	for _, u := range req.AdditionalCreators {
		if err := checkUserID(u); err != nil {
			return mxhttp.Response{}, err
		}
	}
	ctx := r.Context()
	m, err := a.cfg.Rooms.Membership(ctx, roomID, who.UserID)
	if err != nil {
		return mxhttp.Response{}, roomError(err)
	}
	if m != "join" {
		return mxhttp.Response{}, mxhttp.Forbidden("you are not a member of this room")
	}
	canonical, _ := a.cfg.Rooms.CurrentStateEvent(ctx, roomID, "m.room.canonical_alias", "")
	newRoom, err := a.cfg.Rooms.Upgrade(ctx, roomID, who.UserID, req.NewVersion, req.AdditionalCreators)
	if err != nil {
		return mxhttp.Response{}, roomError(err)
	}
	// The new room exists whatever happens next; what follows is best effort and logged.
	a.moveRoomData(context.WithoutCancel(ctx), who, roomID, newRoom, canonical)
	return mxhttp.OK(map[string]string{"replacement_room": newRoom}), nil
}

func (a *API) moveRoomData(ctx context.Context, who Requester, oldRoom, newRoom string, canonical *event.Event) {
	log := mxhttp.Logger(ctx).WithField("room_id", oldRoom)
	err := a.db.WithTx(ctx, func(tx *storage.Tx) error {
		if err := tx.MoveRoomAliases(ctx, oldRoom, newRoom); err != nil {
			return err
		}
		published, err := storage.RoomPublished(ctx, tx, oldRoom)
		if err != nil || !published {
			return err
		}
		if err := tx.SetRoomPublished(ctx, oldRoom, false, 0); err != nil {
			return err
		}
		return tx.SetRoomPublished(ctx, newRoom, true, a.now().UnixMilli())
	})
	if err != nil {
		log.WithError(err).Error("could not move aliases and publication to the upgraded room")
		return
	}
	if canonical == nil || string(canonical.Content()) == "{}" {
		return
	}
	empty := ""
	if _, err := a.cfg.Rooms.SendEvent(ctx, event.Proto{Type: "m.room.canonical_alias", StateKey: &empty,
		Sender: who.UserID, RoomID: newRoom, Content: canonical.Content()}); err != nil {
		log.WithError(err).Warn("could not copy the canonical alias to the upgraded room")
		return
	}
	if _, err := a.cfg.Rooms.SendEvent(ctx, event.Proto{Type: "m.room.canonical_alias", StateKey: &empty,
		Sender: who.UserID, RoomID: oldRoom, Content: []byte("{}")}); err != nil {
		log.WithError(err).Warn("could not remove the canonical alias from the old room")
	}
}
