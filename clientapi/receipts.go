package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"myelin/mxhttp"
	"myelin/roomserver"
	"myelin/storage"
)

// Receipts and read markers (client-server API "Receipts", "Fully read markers"; server-server
// API "Receipts"). Receipts are stored with a position on the receipts stream, which /sync
// reads. An m.read.private receipt is stored like the others but never leaves the server and
// is shown to no one but its owner; m.fully_read is room account data.

const (
	receiptRead        = "m.read"
	receiptReadPrivate = "m.read.private"
	markerFullyRead    = "m.fully_read"
)

// LocalReceipt stores a receipt of a local user and, for a public one, wakes the room and
// tells its other servers.
func (e *Ephemeral) LocalReceipt(ctx context.Context, rc storage.Receipt) error {
	rc.TS = e.now().UnixMilli()
	pos, err := e.storeReceipt(ctx, rc)
	if err != nil || pos == 0 {
		return err
	}
	if rc.Type == receiptReadPrivate {
		e.cfg.Notifier.UserChanged(rc.UserID)
		return nil
	}
	e.cfg.Notifier.RoomEphemeral(rc.RoomID)
	data := map[string]any{"ts": rc.TS}
	if rc.ThreadID != "" {
		data["thread_id"] = rc.ThreadID
	}
	e.sendEDU(context.WithoutCancel(ctx), rc.RoomID, "m.receipt", map[string]any{
		rc.RoomID: map[string]any{receiptRead: map[string]any{
			rc.UserID: map[string]any{"event_ids": []string{rc.EventID}, "data": data},
		}},
	})
	return nil
}

// RemoteReceipt stores a receipt that a remote user's server reported (an m.receipt EDU):
// only public read receipts of users joined to the room are taken.
func (e *Ephemeral) RemoteReceipt(ctx context.Context, rc storage.Receipt) error {
	if rc.Type != receiptRead || rc.EventID == "" {
		return nil
	}
	if ok, err := e.joined(ctx, rc.RoomID, rc.UserID); err != nil || !ok {
		return err
	}
	pos, err := e.storeReceipt(ctx, rc)
	if err == nil && pos != 0 {
		e.cfg.Notifier.RoomEphemeral(rc.RoomID)
	}
	return err
}

func (e *Ephemeral) storeReceipt(ctx context.Context, rc storage.Receipt) (int64, error) {
	var pos int64
	err := e.cfg.DB.WithTx(ctx, func(tx *storage.Tx) error {
		var err error
		pos, err = tx.UpsertReceipt(ctx, rc)
		return err
	})
	return pos, err
}

// postReceipt is POST /rooms/{roomId}/receipt/{receiptType}/{eventId}.
func (a *API) postReceipt(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, v, err := pathRoomVars(r, "receiptType", "eventId")
	if err != nil {
		return mxhttp.Response{}, err
	}
	typ, eventID := v[0], v[1]
	var req struct {
		ThreadID *json.RawMessage `json:"thread_id"`
	}
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	var threadID string
	if req.ThreadID != nil {
		if json.Unmarshal(*req.ThreadID, &threadID) != nil || threadID == "" {
			return mxhttp.Response{}, mxhttp.InvalidParam("thread_id field must be a non-empty string")
		}
	}
	switch typ {
	case receiptRead, receiptReadPrivate:
	case markerFullyRead:
		if threadID != "" {
			return mxhttp.Response{}, mxhttp.InvalidParam("thread_id is not allowed for m.fully_read")
		}
	default:
		return mxhttp.Response{}, mxhttp.InvalidParam("unknown receipt type %q", typ)
	}
	if err := a.markRead(r.Context(), who, roomID, map[string]string{typ: eventID}, threadID); err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.Empty(), nil
}

// postReadMarkers is POST /rooms/{roomId}/read_markers.
func (a *API) postReadMarkers(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, err := pathRoomID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	var req map[string]json.RawMessage
	if err := mxhttp.ReadJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	marks := map[string]string{}
	for _, k := range []string{markerFullyRead, receiptRead, receiptReadPrivate} {
		raw, ok := req[k]
		if !ok || string(raw) == "null" {
			continue
		}
		var id string
		if json.Unmarshal(raw, &id) != nil || id == "" {
			return mxhttp.Response{}, mxhttp.InvalidParam("%s must be an event id", k)
		}
		marks[k] = id
	}
	if err := a.markRead(r.Context(), who, roomID, marks, ""); err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.Empty(), nil
}

// markRead sets receipts and the fully-read marker of a user joined to a room, each at an
// event of that room.
func (a *API) markRead(ctx context.Context, who Requester, roomID string, marks map[string]string, threadID string) error {
	eph := a.cfg.Ephemeral
	ok, err := eph.joined(ctx, roomID, who.UserID)
	if err != nil {
		return mxhttp.Internal(err)
	}
	if !ok {
		return mxhttp.Forbidden("you are not in this room")
	}
	for _, id := range marks {
		ev, err := a.cfg.Rooms.Event(ctx, id)
		if errors.Is(err, roomserver.ErrNotFound) || err == nil && ev.RoomID() != roomID {
			return mxhttp.NotFound("unknown event %s in this room", id)
		}
		if err != nil {
			return mxhttp.Internal(err)
		}
	}
	for typ, id := range marks {
		if typ == markerFullyRead {
			content, _ := json.Marshal(map[string]string{"event_id": id})
			if err := a.db.WithTx(ctx, func(tx *storage.Tx) error {
				_, err := tx.SetAccountData(ctx, who.UserID, roomID, markerFullyRead, content)
				return err
			}); err != nil {
				return mxhttp.Internal(err)
			}
			a.cfg.SyncNotifier.UserChanged(who.UserID)
			continue
		}
		rc := storage.Receipt{RoomID: roomID, UserID: who.UserID, Type: typ, ThreadID: threadID, EventID: id}
		if err := eph.LocalReceipt(ctx, rc); err != nil {
			return mxhttp.Internal(err)
		}
		// The unread count may have gone down: the user's pushers update the app's badge.
		if w := a.cfg.Notifications; w != nil {
			w.ReadChanged(who.UserID)
		}
	}
	return nil
}

// receiptEvent builds the m.receipt event of a room from receipts, leaving out the private
// receipts of anyone but viewer.
func receiptEvent(receipts []storage.Receipt, viewer string) (basicEvent, bool) {
	content := map[string]map[string]map[string]map[string]any{} // event -> type -> user -> data
	for _, rc := range receipts {
		if rc.Type == receiptReadPrivate && rc.UserID != viewer {
			continue
		}
		byType := content[rc.EventID]
		if byType == nil {
			byType = map[string]map[string]map[string]any{}
			content[rc.EventID] = byType
		}
		if byType[rc.Type] == nil {
			byType[rc.Type] = map[string]map[string]any{}
		}
		data := map[string]any{"ts": rc.TS}
		if rc.ThreadID != "" {
			data["thread_id"] = rc.ThreadID
		}
		byType[rc.Type][rc.UserID] = data
	}
	if len(content) == 0 {
		return basicEvent{}, false
	}
	raw, _ := json.Marshal(content)
	return basicEvent{Type: "m.receipt", Content: raw}, true
}

// syncEphemeral fills the ephemeral sections of the user's joined rooms with typing
// notifications and receipts after since, up to positions it records in to. A room whose only
// news is ephemeral is added to the response.
func (h *syncHandlers) syncEphemeral(ctx context.Context, who Requester, since SyncToken, to *SyncToken, resp *syncResponse, req syncRequest) error {
	eph := h.cfg.Ephemeral
	if eph == nil || h.cfg.Rooms == nil {
		to.Receipts = 0
		return nil
	}
	// to.Receipts was read with the other positions (computeSync).
	to.Typing = eph.TypingPosition()
	// A token from before a database reset (or with positions of another server) must not
	// hide what follows.
	if since.Receipts > to.Receipts {
		since.Receipts = 0
	}
	if since.Typing > to.Typing {
		since.Typing = 0
	}
	if since.Receipts == to.Receipts && since.Typing == to.Typing {
		return nil
	}
	rooms, err := storage.RoomsOfUserAll(ctx, h.db, who.UserID)
	if err != nil {
		return err
	}
	ef := req.filter.Room.Ephemeral
	var joined []string
	for _, ur := range rooms {
		if ur.Membership == "join" && ur.MembershipPos <= to.Events && req.filter.Room.AllowsRoom(ur.RoomID) && ef.AllowsRoom(ur.RoomID) {
			joined = append(joined, ur.RoomID)
		}
	}
	if len(joined) == 0 {
		return nil
	}
	add := func(roomID string, ev basicEvent) {
		jr := resp.Rooms.Join[roomID]
		if jr == nil {
			jr = newJoinedRoom()
			if req.useStateAfter {
				jr.StateAfter = &stateEvents{Events: []ClientEvent{}}
			} else {
				jr.State = &stateEvents{Events: []ClientEvent{}}
			}
			jr.Timeline.PrevBatch = RoomToken{Stream: to.Events}.String()
			resp.Rooms.Join[roomID] = jr
		}
		jr.Ephemeral.Events = append(jr.Ephemeral.Events, ev)
	}
	if since.Typing != to.Typing && ef.AllowsEvent("m.typing", "") {
		for roomID, users := range eph.typingChanges(joined, since.Typing) {
			add(roomID, typingEvent(users))
		}
	}
	if since.Receipts != to.Receipts && ef.AllowsEvent("m.receipt", "") {
		receipts, err := storage.ReceiptsBetween(ctx, h.db, joined, since.Receipts, to.Receipts)
		if err != nil {
			return err
		}
		byRoom := map[string][]storage.Receipt{}
		for _, rc := range receipts {
			byRoom[rc.RoomID] = append(byRoom[rc.RoomID], rc)
		}
		for roomID, rcs := range byRoom {
			if ev, ok := receiptEvent(rcs, who.UserID); ok {
				add(roomID, ev)
			}
		}
	}
	return nil
}
