package clientapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"myelin/mxhttp"
	"myelin/roomserver/event"
	"myelin/storage"
)

// The deprecated pre-/sync API (old_sync.yaml, room_initial_sync.yaml, peeking_events.yaml),
// built on the queries /sync and /messages use, for the clients and bots that still call it:
//   - GET /initialSync and GET /rooms/{roomId}/initialSync: each room's membership, recent
//     messages, state and account data; presence and receipts are left empty;
//   - GET /events: the events after a stream token in the user's rooms (or, peeking, in one
//     room the user may read), waiting up to timeout for one;
//   - GET /events/{eventId}: one event the user may see.
// Stream tokens are "s" and a position of the events stream; /messages tokens stay its own.

const (
	legacyEventsLimit    = 100
	legacyMaxTimeout     = 5 * time.Minute
	legacyTokenPrefix    = "s"
	legacyDefaultTimeout = 30 * time.Second
)

func legacyToken(pos int64) string { return legacyTokenPrefix + strconv.FormatInt(pos, 10) }

func parseLegacyToken(s string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimPrefix(s, legacyTokenPrefix), 10, 64)
	if err != nil || !strings.HasPrefix(s, legacyTokenPrefix) || n < 0 {
		return 0, mxhttp.InvalidParam("bad pagination token %q", s)
	}
	return n, nil
}

// legacyEvent is GET /events/{eventId}.
func (a *API) legacyEvent(r *http.Request, who Requester) (mxhttp.Response, error) {
	eventID, err := roomPathVar(r, "eventId")
	if err != nil {
		return mxhttp.Response{}, err
	}
	ctx := r.Context()
	notFound := mxhttp.NotFound("event not found")
	ev, err := a.cfg.Rooms.Event(ctx, eventID)
	if err != nil {
		return mxhttp.Response{}, notFound.Because(err)
	}
	if _, err := a.roomReadAccess(ctx, ev.RoomID(), who.UserID); err != nil {
		return mxhttp.Response{}, notFound.Because(err)
	}
	visible, err := a.visibleEvent(ctx, who, ev.RoomID(), eventID)
	if err != nil {
		return mxhttp.Response{}, err
	}
	out, err := a.clientEvents(ctx, who, []*event.Event{visible})
	if err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK(out[0]), nil
}

// roomInitialSync is GET /rooms/{roomId}/initialSync.
func (a *API) roomInitialSync(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, err := pathRoomID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	limit, err := limitParam(r, DefaultTimelineLimit)
	if err != nil {
		return mxhttp.Response{}, err
	}
	info, err := a.roomInfo(r.Context(), who, roomID, limit)
	if err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK(info), nil
}

// roomInfo is the RoomInfo of the initialSync endpoints: 404 for an unknown room, 403 for one
// the user never was in.
func (a *API) roomInfo(ctx context.Context, who Requester, roomID string, limit int) (map[string]any, error) {
	room, v, acc, err := a.roomForReading(ctx, who, roomID)
	if err != nil {
		return nil, err
	}
	ceiling, err := a.readLimit(ctx, acc)
	if err != nil {
		return nil, err
	}
	end := RoomToken{Stream: ceiling}
	p, err := a.pageEvents(ctx, who, room, v, end, storage.TopoPos{}, ceiling, true, limit, nil)
	if err != nil {
		return nil, err
	}
	slices.Reverse(p.events)
	chunk, err := a.clientEvents(ctx, who, p.events)
	if err != nil {
		return nil, err
	}
	stateEvs, err := a.stateFor(ctx, roomID, acc)
	if err != nil {
		return nil, err
	}
	state, err := a.formatEvents(ctx, stateEvs, FormatClient, a.now())
	if err != nil {
		return nil, err
	}
	published, err := storage.RoomPublished(ctx, a.db, roomID)
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	visibility := "private"
	if published {
		visibility = "public"
	}
	accountData, err := a.roomAccountData(ctx, who.UserID, roomID)
	if err != nil {
		return nil, err
	}
	info := map[string]any{
		"room_id":      roomID,
		"messages":     map[string]any{"start": p.next.String(), "end": end.String(), "chunk": chunk},
		"state":        state,
		"visibility":   visibility,
		"account_data": accountData,
		"presence":     []any{},
		"receipts":     []any{},
	}
	if acc.Membership != "" {
		info["membership"] = acc.Membership
	}
	return info, nil
}

// roomAccountData is a user's account data for one room, as events.
func (a *API) roomAccountData(ctx context.Context, userID, roomID string) ([]map[string]any, error) {
	all, err := storage.AccountDataBetween(ctx, a.db, userID, 0, 1<<62)
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	out := []map[string]any{}
	for _, d := range all {
		if d.RoomID == roomID {
			out = append(out, map[string]any{"type": d.Type, "content": d.Content})
		}
	}
	return out, nil
}

// initialSync is GET /initialSync: every room the user is joined to or invited to or has
// left (with archived=true), and their global account data.
func (a *API) initialSync(r *http.Request, who Requester) (mxhttp.Response, error) {
	ctx := r.Context()
	limit, err := limitParam(r, DefaultTimelineLimit)
	if err != nil {
		return mxhttp.Response{}, err
	}
	archived := r.URL.Query().Get("archived") == "true"
	pos, err := storage.CurrentStreamPosition(ctx, a.db, "events")
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	rooms, err := storage.RoomsOfUserAll(ctx, a.db, who.UserID)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	infos := []map[string]any{}
	for _, ur := range rooms {
		switch ur.Membership {
		case "join":
		case "invite":
			infos = append(infos, map[string]any{"room_id": ur.RoomID, "membership": "invite"})
			continue
		case "leave", "ban":
			if !archived {
				continue
			}
		default:
			continue
		}
		info, err := a.roomInfo(ctx, who, ur.RoomID, limit)
		var mx *mxhttp.Error
		if errors.As(err, &mx) && mx.Status < 500 {
			continue // a room the user can no longer read
		}
		if err != nil {
			return mxhttp.Response{}, err
		}
		infos = append(infos, info)
	}
	global := []map[string]any{}
	all, err := storage.AccountDataBetween(ctx, a.db, who.UserID, 0, 1<<62)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	for _, d := range all {
		if d.RoomID == "" {
			global = append(global, map[string]any{"type": d.Type, "content": d.Content})
		}
	}
	return mxhttp.OK(map[string]any{
		"end": legacyToken(pos), "rooms": infos, "presence": []any{}, "account_data": global,
	}), nil
}

// legacyEvents is GET /events: events after from in the user's rooms, or in room_id when
// peeking. Without from it starts now and waits for the next event.
func (a *API) legacyEvents(r *http.Request, who Requester) (mxhttp.Response, error) {
	ctx := r.Context()
	q := r.URL.Query()
	timeout := legacyDefaultTimeout
	if s := q.Get("timeout"); s != "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil || ms < 0 {
			return mxhttp.Response{}, mxhttp.InvalidParam("timeout must be a number of milliseconds")
		}
		timeout = min(time.Duration(ms)*time.Millisecond, legacyMaxTimeout)
	}
	var from int64
	if s := q.Get("from"); s != "" {
		var err error
		if from, err = parseLegacyToken(s); err != nil {
			return mxhttp.Response{}, err
		}
	} else {
		pos, err := storage.CurrentStreamPosition(ctx, a.db, "events")
		if err != nil {
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
		from = pos
	}
	peekRoom := q.Get("room_id")
	if peekRoom != "" {
		if _, err := event.ParseRoomID(peekRoom); err != nil {
			return mxhttp.Response{}, mxhttp.InvalidParam("%q is not a room id", peekRoom)
		}
		if _, err := a.roomReadAccess(ctx, peekRoom, who.UserID); err != nil {
			return mxhttp.Response{}, err
		}
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		var waitRooms []string
		if peekRoom != "" {
			waitRooms = []string{peekRoom}
		} else if joined, err := a.cfg.Rooms.JoinedRooms(ctx, who.UserID); err == nil {
			waitRooms = joined
		} else {
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
		w := a.cfg.SyncNotifier.register(who.UserID, waitRooms)
		chunk, end, err := a.legacyEventsAfter(ctx, who, from, peekRoom)
		if err != nil || len(chunk) > 0 {
			a.cfg.SyncNotifier.unregister(w)
			if err != nil {
				return mxhttp.Response{}, err
			}
			return mxhttp.OK(map[string]any{"start": legacyToken(from), "end": legacyToken(end), "chunk": chunk}), nil
		}
		select {
		case <-w.wake:
			a.cfg.SyncNotifier.unregister(w)
			from = end // what was read up to end was not for this user
		case <-deadline.C:
			a.cfg.SyncNotifier.unregister(w)
			return mxhttp.OK(map[string]any{"start": legacyToken(from), "end": legacyToken(end), "chunk": []any{}}), nil
		case <-ctx.Done():
			a.cfg.SyncNotifier.unregister(w)
			return mxhttp.Response{}, ctx.Err()
		}
	}
}

// legacyEventsAfter reads the events after from that the user may see, up to
// legacyEventsLimit, and the token to continue from.
func (a *API) legacyEventsAfter(ctx context.Context, who Requester, from int64, peekRoom string) ([]ClientEvent, int64, error) {
	to, err := storage.CurrentStreamPosition(ctx, a.db, "events")
	if err != nil {
		return nil, from, mxhttp.Internal(err)
	}
	if to <= from {
		return nil, from, nil
	}
	var rooms []storage.UserRoom
	if peekRoom != "" {
		room, err := storage.GetRoom(ctx, a.db, peekRoom)
		if err != nil {
			return nil, from, mxhttp.NotFound("room not found").Because(err)
		}
		rooms = []storage.UserRoom{{Room: room.NID, RoomID: room.ID, Version: room.Version}}
	} else if rooms, err = storage.RoomsChangedForUser(ctx, a.db, who.UserID, from, to); err != nil {
		return nil, from, mxhttp.Internal(err)
	}
	type posEvent struct {
		pos int64
		ev  *event.Event
	}
	var found []posEvent
	end := to
	for _, ur := range rooms {
		v, err := event.Version(ur.Version)
		if err != nil {
			return nil, from, mxhttp.Internal(err)
		}
		recs, err := storage.RoomEventsByStream(ctx, a.db, ur.Room, from, to, legacyEventsLimit, false)
		if err != nil {
			return nil, from, mxhttp.Internal(err)
		}
		if len(recs) == legacyEventsLimit {
			// More of this room remains: stop the batch where it stops.
			end = min(end, recs[len(recs)-1].StreamPos)
		}
		evs := parseRecords(recs, v)
		visible, err := visibleEvents(ctx, a.cfg.Rooms, who.UserID, evs)
		if err != nil {
			return nil, from, roomError(err)
		}
		posOf := make(map[string]int64, len(recs))
		for _, rec := range recs {
			posOf[rec.EventID] = rec.StreamPos
		}
		for _, ev := range visible {
			found = append(found, posEvent{posOf[ev.ID()], ev})
		}
	}
	slices.SortFunc(found, func(x, y posEvent) int { return int(x.pos - y.pos) })
	found = slices.DeleteFunc(found, func(f posEvent) bool { return f.pos > end })
	if len(found) > legacyEventsLimit {
		found = found[:legacyEventsLimit]
		end = found[len(found)-1].pos
	}
	evs := make([]*event.Event, len(found))
	for i, f := range found {
		evs[i] = f.ev
	}
	chunk, err := a.clientEvents(ctx, who, evs)
	if err != nil {
		return nil, from, err
	}
	return chunk, end, nil
}
