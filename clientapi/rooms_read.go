package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"myelin/mxhttp"
	"myelin/roomserver"
	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Reading a room: its state, one event, its members.

// stateFor is the room state a reader may see: the current state, or the state when they left.
func (a *API) stateFor(ctx context.Context, roomID string, acc readAccess, types ...string) ([]*event.Event, error) {
	if acc.Until == nil {
		evs, err := a.cfg.Rooms.CurrentState(ctx, roomID, types...)
		return evs, roomError(err)
	}
	all, err := a.cfg.Rooms.StateAfter(ctx, acc.Until.ID())
	if err != nil {
		return nil, roomError(err)
	}
	if len(types) == 0 {
		return all, nil
	}
	var out []*event.Event
	for _, ev := range all {
		for _, t := range types {
			if ev.Type() == t {
				out = append(out, ev)
				break
			}
		}
	}
	return out, nil
}

func (a *API) getState(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, err := pathRoomID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	ctx := r.Context()
	acc, err := a.roomReadAccess(ctx, roomID, who.UserID)
	if err != nil {
		return mxhttp.Response{}, err
	}
	state, err := a.stateFor(ctx, roomID, acc)
	if err != nil {
		return mxhttp.Response{}, err
	}
	out, err := a.formatEvents(ctx, state, FormatClient, a.now())
	if err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK(out), nil
}

// getStateEvent is GET /rooms/{roomId}/state/{eventType}/{stateKey}: the content, or with
// format=event the whole event.
func (a *API) getStateEvent(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, v, err := pathRoomVars(r, "eventType", "stateKey")
	if err != nil {
		return mxhttp.Response{}, err
	}
	typ, stateKey := v[0], v[1]
	format := r.URL.Query().Get("format")
	if format != "" && format != "content" && format != "event" {
		return mxhttp.Response{}, mxhttp.InvalidParam("format must be content or event")
	}
	ctx := r.Context()
	acc, err := a.roomReadAccess(ctx, roomID, who.UserID)
	if err != nil {
		return mxhttp.Response{}, err
	}
	var found *event.Event
	if acc.Until == nil {
		found, err = a.cfg.Rooms.CurrentStateEvent(ctx, roomID, typ, stateKey)
		if errors.Is(err, roomserver.ErrNotFound) {
			return mxhttp.Response{}, mxhttp.NotFound("the room has no state event %s with state key %q", typ, stateKey)
		}
		if err != nil {
			return mxhttp.Response{}, roomError(err)
		}
	} else {
		state, err := a.stateFor(ctx, roomID, acc, typ)
		if err != nil {
			return mxhttp.Response{}, err
		}
		for _, ev := range state {
			if ev.StateKeyEquals(stateKey) {
				found = ev
			}
		}
		if found == nil {
			return mxhttp.Response{}, mxhttp.NotFound("the room had no state event %s with state key %q when you left", typ, stateKey)
		}
	}
	if format == "event" {
		out, err := a.formatEvents(ctx, []*event.Event{found}, FormatClient, a.now())
		if err != nil {
			return mxhttp.Response{}, err
		}
		return mxhttp.OK(out[0]), nil
	}
	return mxhttp.OK(found.Content()), nil
}

// getEvent is GET /rooms/{roomId}/event/{eventId}. An event the user may not see is answered
// as one that does not exist.
func (a *API) getEvent(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, v, err := pathRoomVars(r, "eventId")
	if err != nil {
		return mxhttp.Response{}, err
	}
	eventID := v[0]
	ctx := r.Context()
	if _, err := a.roomReadAccess(ctx, roomID, who.UserID); err != nil {
		return mxhttp.Response{}, err
	}
	ev, err := a.visibleEvent(ctx, who, roomID, eventID)
	if err != nil {
		return mxhttp.Response{}, err
	}
	out, err := a.clientEvents(ctx, who, []*event.Event{ev})
	if err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK(out[0]), nil
}

// visibleEvent returns an event of a room that the requester may see; M_NOT_FOUND otherwise.
func (a *API) visibleEvent(ctx context.Context, who Requester, roomID, eventID string) (*event.Event, error) {
	notFound := mxhttp.NotFound("event not found")
	ev, err := a.cfg.Rooms.Event(ctx, eventID)
	if errors.Is(err, roomserver.ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, roomError(err)
	}
	if ev.RoomID() != roomID {
		return nil, notFound
	}
	visible, err := visibleEvents(ctx, a.cfg.Rooms, who.UserID, []*event.Event{ev})
	if err != nil {
		return nil, roomError(err)
	}
	if len(visible) == 0 {
		return nil, notFound
	}
	return ev, nil
}

// members is GET /rooms/{roomId}/members: the membership events of the room now, when the user
// left, or at the "at" token, whichever is earliest.
func (a *API) members(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, err := pathRoomID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	q := r.URL.Query()
	membership, notMembership := q.Get("membership"), q.Get("not_membership")
	for _, m := range []string{membership, notMembership} {
		switch m {
		case "", "join", "invite", "knock", "leave", "ban":
		default:
			return mxhttp.Response{}, mxhttp.InvalidParam("unknown membership %q", m)
		}
	}
	ctx := r.Context()
	acc, err := a.roomReadAccess(ctx, roomID, who.UserID)
	if err != nil {
		return mxhttp.Response{}, err
	}
	var state []*event.Event
	if at := q.Get("at"); at != "" {
		pos, err := parseRoomToken(at)
		if err != nil {
			return mxhttp.Response{}, err
		}
		state, err = a.stateAtPosition(ctx, roomID, acc, pos)
		if err != nil {
			return mxhttp.Response{}, err
		}
	} else if state, err = a.stateFor(ctx, roomID, acc, auth.TypeMember); err != nil {
		return mxhttp.Response{}, err
	}
	chunk := []*event.Event{}
	for _, ev := range state {
		if ev.Type() != auth.TypeMember {
			continue
		}
		m, _ := ev.Membership()
		include := true
		switch {
		case membership != "" && notMembership != "":
			include = m == membership || m != notMembership
		case membership != "":
			include = m == membership
		case notMembership != "":
			include = m != notMembership
		}
		if include {
			chunk = append(chunk, ev)
		}
	}
	out, err := a.formatEvents(ctx, chunk, FormatClient, a.now())
	if err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK(map[string]any{"chunk": out}), nil
}

// stateAtPosition is the state after the last timeline event at or before a stream position,
// no later than what the reader may see.
func (a *API) stateAtPosition(ctx context.Context, roomID string, acc readAccess, pos int64) ([]*event.Event, error) {
	room, err := storage.GetRoom(ctx, a.db, roomID)
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	limit, err := a.readLimit(ctx, acc)
	if err != nil {
		return nil, err
	}
	recs, err := storage.RoomEventsByStream(ctx, a.db, room.NID, 0, min(pos, limit), 1, true)
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	if len(recs) == 0 {
		return []*event.Event{}, nil
	}
	state, err := a.cfg.Rooms.StateAfter(ctx, recs[0].EventID)
	return state, roomError(err)
}

// joinedMembers is GET /rooms/{roomId}/joined_members, for members of the room (or anyone in
// a world-readable room).
func (a *API) joinedMembers(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, err := pathRoomID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	ctx := r.Context()
	acc, err := a.roomReadAccess(ctx, roomID, who.UserID)
	if err != nil {
		return mxhttp.Response{}, err
	}
	if acc.Until != nil {
		return mxhttp.Response{}, mxhttp.Forbidden("you are not a member of this room")
	}
	state, err := a.stateFor(ctx, roomID, acc, auth.TypeMember)
	if err != nil {
		return mxhttp.Response{}, err
	}
	type profile struct {
		DisplayName *string `json:"display_name,omitempty"`
		AvatarURL   *string `json:"avatar_url,omitempty"`
	}
	joined := map[string]profile{}
	for _, ev := range state {
		if m, _ := ev.Membership(); m != "join" {
			continue
		}
		var c struct {
			DisplayName *string `json:"displayname"`
			AvatarURL   *string `json:"avatar_url"`
		}
		_ = json.Unmarshal(ev.Content(), &c)
		joined[*ev.StateKey()] = profile{DisplayName: c.DisplayName, AvatarURL: c.AvatarURL}
	}
	return mxhttp.OK(map[string]any{"joined": joined}), nil
}

// transactionIDs returns the requesting device's transaction ids of those of evs it sent. Only
// the user's own events can have one, so no other is looked up: most timelines need no query.
func transactionIDs(ctx context.Context, r storage.Reader, who Requester, evs []*event.Event) (map[string]string, error) {
	var ids []string
	for _, ev := range evs {
		if ev.Sender() == who.UserID {
			ids = append(ids, ev.ID())
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	return storage.TransactionIDs(ctx, r, who.Localpart, who.DeviceID, ids)
}

// clientEvents formats timeline events for the requester: their own device's transaction ids,
// and for state events the entry they replaced (its content only if the requester may see it).
func (a *API) clientEvents(ctx context.Context, who Requester, evs []*event.Event) ([]ClientEvent, error) {
	out := make([]ClientEvent, 0, len(evs))
	if len(evs) == 0 {
		return out, nil
	}
	txns, err := transactionIDs(ctx, a.db, who, evs)
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	replaced, err := a.replacedState(ctx, evs)
	if err != nil {
		return nil, err
	}
	redactedBy, err := a.redactionsOf(ctx, evs)
	if err != nil {
		return nil, err
	}
	var prevs []*event.Event
	for _, p := range replaced {
		prevs = append(prevs, p)
	}
	visible := map[string]bool{}
	if len(prevs) > 0 {
		vis, err := a.cfg.Rooms.VisibleEvents(ctx, who.UserID, prevs)
		if err != nil {
			return nil, roomError(err)
		}
		for _, p := range vis {
			visible[p.ID()] = true
		}
	}
	now := a.now()
	for _, ev := range evs {
		opt := ClientEventOptions{TransactionID: txns[ev.ID()], RedactedBy: redactedBy[ev.ID()], Membership: membershipAt(ctx, ev.ID())}
		if p := replaced[ev.ID()]; p != nil {
			opt.Replaced, opt.PrevVisible = p, visible[p.ID()]
		}
		out = append(out, ToClientEvent(ev, FormatClient, now, opt))
	}
	if err := a.bundleAggregations(ctx, who, evs, out, FormatClient); err != nil {
		return nil, err
	}
	return out, nil
}

// replacedState finds, for each state event among evs, the event its state entry held before
// it, by looking the one entry up in the state snapshot before the event.
func (a *API) replacedState(ctx context.Context, evs []*event.Event) (map[string]*event.Event, error) {
	var ids []string
	for _, ev := range evs {
		if ev.IsState() {
			ids = append(ids, ev.ID())
		}
	}
	out := map[string]*event.Event{}
	if len(ids) == 0 {
		return out, nil
	}
	err := a.db.WithReadTx(ctx, func(r storage.Reader) error {
		recs, err := storage.EventsByID(ctx, r, ids)
		if err != nil {
			return err
		}
		prevNIDs := map[string]storage.EventNID{}
		var nids []storage.EventNID
		for _, rec := range recs {
			if rec.StateBefore == 0 || rec.TypeNID == 0 {
				continue
			}
			entries, err := storage.SnapshotLookup(ctx, r, rec.StateBefore, []storage.StateKey{{Type: rec.TypeNID, StateKey: rec.StateKeyNID}})
			if err != nil {
				return err
			}
			for _, e := range entries {
				if e.Event != 0 {
					prevNIDs[rec.EventID] = e.Event
					nids = append(nids, e.Event)
				}
			}
		}
		prevRecs, err := storage.EventsByNID(ctx, r, nids)
		if err != nil {
			return err
		}
		byNID := map[storage.EventNID]*event.Event{}
		for _, rec := range prevRecs {
			if rec.JSON == nil {
				continue
			}
			v := evs[0].Version()
			ev, err := event.Parse(rec.JSON, v)
			if err != nil {
				return err
			}
			byNID[rec.NID] = ev
		}
		for id, nid := range prevNIDs {
			if ev := byNID[nid]; ev != nil {
				out[id] = ev
			}
		}
		return nil
	})
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	return out, nil
}
