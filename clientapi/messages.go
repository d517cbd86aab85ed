package clientapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"myelin/mxhttp"
	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Paginating a room's history: /messages, /context and /timestamp_to_event.
//
// Pages are in topological order (depth, then stream position), as the spec expects of
// /messages, so that history backfilled after newer events still reads in order. Tokens are
// tokens.go's RoomToken: paginating backwards from a token returns the events at its position
// and before, forwards the events after it. The tokens handed out are topological; a stream
// token (a /sync prev_batch) bounds the first page by stream position, which is what the
// client has seen, and the page is then read in topological order.

// pageToken reads a from or to token of /messages.
func pageToken(s string) (RoomToken, error) {
	t, err := ParseRoomToken(s)
	if err != nil {
		return t, mxhttp.InvalidParam("invalid pagination token").Because(err)
	}
	return t, nil
}

func (t RoomToken) pos() storage.TopoPos {
	return storage.TopoPos{Topological: t.Topological, Depth: t.Depth, Stream: t.Stream}
}

// parseRoomToken reads the stream position of a room or sync token.
func parseRoomToken(s string) (int64, error) {
	t, err := ParseRoomToken(s)
	if err != nil {
		return 0, mxhttp.InvalidParam("invalid pagination token").Because(err)
	}
	return t.Stream, nil
}

// readLimit is the last stream position a reader may see: now, or their departure.
func (a *API) readLimit(ctx context.Context, acc readAccess) (int64, error) {
	if acc.Until != nil {
		rec, err := storage.EventByID(ctx, a.db, acc.Until.ID())
		if err != nil {
			return 0, mxhttp.Internal(err)
		}
		return rec.StreamPos, nil
	}
	pos, err := storage.CurrentStreamPosition(ctx, a.db, "events")
	if err != nil {
		return 0, mxhttp.Internal(err)
	}
	return pos, nil
}

// maxScannedBatches bounds how far one request reads through events the user may not see or
// the filter drops before it answers with what it found and a token to go on.
const maxScannedBatches = 20

// page is a run of visible, filtered events and where the next run starts.
type page struct {
	events []*event.Event
	next   RoomToken // the position after the last examined event
	more   bool      // whether events remain in the window past next
}

// pageEvents reads up to limit events of a room that the user may see and the filter passes,
// in topological order and not past stream position ceiling: backwards through (bound, from]
// newest first, or forwards through (from, bound] oldest first.
func (a *API) pageEvents(ctx context.Context, who Requester, room storage.Room, v event.RoomVersion,
	from RoomToken, bound storage.TopoPos, ceiling int64, backwards bool, limit int, filter *RoomEventFilter) (page, error) {
	p := page{next: from}
	batch := max(limit, 20)
	if limit <= 0 {
		batch = 1 // only to tell whether there is more
	}
	cursor := from
	for range maxScannedBatches {
		lo, hi := bound, cursor.pos()
		if !backwards {
			lo, hi = cursor.pos(), bound
		}
		recs, err := storage.RoomEventsByTopology(ctx, a.db, room.NID, lo, hi, ceiling, batch, backwards)
		if err != nil {
			return p, mxhttp.Internal(err)
		}
		if limit <= 0 {
			p.more = len(recs) > 0
			return p, nil
		}
		evs := make([]*event.Event, 0, len(recs))
		pos := make(map[string]storage.EventRecord, len(recs))
		for _, rec := range recs {
			if rec.JSON == nil {
				continue
			}
			ev, err := event.Parse(rec.JSON, v)
			if err != nil {
				return p, mxhttp.Internal(err)
			}
			evs = append(evs, ev)
			pos[ev.ID()] = rec
		}
		visible, err := visibleEvents(ctx, a.cfg.Rooms, who.UserID, evs)
		if err != nil {
			return p, roomError(err)
		}
		if visible, err = a.withoutUnappliedRedactions(ctx, visible); err != nil {
			return p, err
		}
		if visible, err = a.relatedBy(ctx, filter, visible); err != nil {
			return p, err
		}
		for _, ev := range visible {
			if filter != nil && !filter.Allows(ev) {
				continue
			}
			p.events = append(p.events, ev)
			if len(p.events) == limit {
				p.next, p.more = tokenAfter(pos[ev.ID()], backwards), true
				return p, nil
			}
		}
		if len(recs) == 0 {
			p.next, p.more = cursor, false
			return p, nil
		}
		cursor = tokenAfter(recs[len(recs)-1], backwards)
		p.next = cursor
		if len(recs) < batch {
			p.more = false
			return p, nil
		}
		p.more = true
	}
	return p, nil
}

// tokenAfter is the position past an event in the direction of travel: backwards, the one
// just before it in topological order.
func tokenAfter(rec storage.EventRecord, backwards bool) RoomToken {
	t := RoomToken{Topological: true, Depth: rec.Depth, Stream: rec.StreamPos}
	if backwards {
		t.Stream--
	}
	return t
}

// roomEventFilterParam reads the filter query parameter of /messages and /context: a
// RoomEventFilter as JSON, or the id of a stored filter whose room.timeline applies.
func (a *API) roomEventFilterParam(r *http.Request, who Requester) (*RoomEventFilter, error) {
	raw := r.URL.Query().Get("filter")
	if raw == "" {
		return nil, nil
	}
	if !strings.HasPrefix(strings.TrimSpace(raw), "{") {
		f, err := a.filterParam(r, who.UserID, raw)
		if err != nil {
			return nil, err
		}
		return &f.Room.Timeline, nil
	}
	var f RoomEventFilter
	if err := mxhttp.DecodeJSON([]byte(raw), &f); err != nil {
		return nil, err
	}
	if err := f.EventFilter.validate(); err != nil {
		return nil, mxhttp.BadJSON("%v", err)
	}
	return &f, nil
}

func limitParam(r *http.Request, def int) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, mxhttp.InvalidParam("limit must be a non-negative integer")
	}
	return min(n, MaxTimelineLimit), nil
}

func dirParam(r *http.Request) (backwards bool, err error) {
	switch r.URL.Query().Get("dir") {
	case "b":
		return true, nil
	case "f":
		return false, nil
	case "":
		return false, mxhttp.MissingParam("dir is required")
	}
	return false, mxhttp.InvalidParam("dir must be b or f")
}

// roomForReading resolves a room and the reader's access to it.
func (a *API) roomForReading(ctx context.Context, who Requester, roomID string) (storage.Room, event.RoomVersion, readAccess, error) {
	acc, err := a.roomReadAccess(ctx, roomID, who.UserID)
	if err != nil {
		return storage.Room{}, event.RoomVersion{}, acc, err
	}
	room, err := storage.GetRoom(ctx, a.db, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return room, event.RoomVersion{}, acc, mxhttp.NotFound("room not found")
	}
	if err != nil {
		return room, event.RoomVersion{}, acc, mxhttp.Internal(err)
	}
	v, err := event.Version(room.Version)
	if err != nil {
		return room, v, acc, mxhttp.Internal(err)
	}
	return room, v, acc, nil
}

// messages is GET /rooms/{roomId}/messages.
func (a *API) messages(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, err := pathRoomID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	backwards, err := dirParam(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	filter, err := a.roomEventFilterParam(r, who)
	if err != nil {
		return mxhttp.Response{}, err
	}
	def := DefaultTimelineLimit
	if filter != nil {
		def = filter.LimitOr(def)
	}
	limit, err := limitParam(r, def)
	if err != nil {
		return mxhttp.Response{}, err
	}
	q := r.URL.Query()
	ctx := r.Context()
	room, v, acc, err := a.roomForReading(ctx, who, roomID)
	if err != nil {
		return mxhttp.Response{}, err
	}
	ceiling, err := a.readLimit(ctx, acc)
	if err != nil {
		return mxhttp.Response{}, err
	}
	from := RoomToken{Stream: ceiling}
	if !backwards {
		from = RoomToken{}
	}
	if s := q.Get("from"); s != "" {
		if from, err = pageToken(s); err != nil {
			return mxhttp.Response{}, err
		}
	}
	bound := storage.TopoStart
	if !backwards {
		bound = storage.TopoEnd
	}
	if s := q.Get("to"); s != "" {
		to, err := pageToken(s)
		if err != nil {
			return mxhttp.Response{}, err
		}
		bound = to.pos()
	}
	// A reader who left sees nothing past their departure (ceiling), whatever token they hold.
	p, err := a.pageEvents(ctx, who, room, v, from, bound, ceiling, backwards, limit, filter)
	if err != nil {
		return mxhttp.Response{}, err
	}
	if backwards {
		if p, err = a.backfillPage(ctx, who, room, v, from, bound, ceiling, limit, filter, p); err != nil {
			return mxhttp.Response{}, err
		}
	}
	chunk, err := a.clientEvents(ctx, who, p.events)
	if err != nil {
		return mxhttp.Response{}, err
	}
	resp := map[string]any{"start": from.String(), "chunk": chunk}
	if p.more {
		resp["end"] = p.next.String()
	}
	if filter != nil && filter.LazyLoadMembers {
		state, err := a.memberStateFor(ctx, who, roomID, acc, p.events, filter.IncludeRedundantMembers)
		if err != nil {
			return mxhttp.Response{}, err
		}
		resp["state"] = state
	}
	return mxhttp.OK(resp), nil
}

// memberStateFor is the lazy-loaded membership state for a chunk: the membership events of
// its senders, as the room is now (or was when the reader left). Unless includeRedundant,
// those already sent to the device (by /sync or an earlier page) are left out, as lazy
// loading allows; what is sent is recorded in the same per-device record /sync keeps.
func (a *API) memberStateFor(ctx context.Context, who Requester, roomID string, acc readAccess, evs []*event.Event, includeRedundant bool) ([]ClientEvent, error) {
	senders := map[string]bool{}
	for _, ev := range evs {
		senders[ev.Sender()] = true
	}
	var out []*event.Event
	if acc.Until == nil {
		for s := range senders {
			ev, err := a.cfg.Rooms.CurrentStateEvent(ctx, roomID, auth.TypeMember, s)
			if err == nil {
				out = append(out, ev)
			}
		}
	} else {
		state, err := a.stateFor(ctx, roomID, acc, auth.TypeMember)
		if err != nil {
			return nil, err
		}
		for _, ev := range state {
			if senders[*ev.StateKey()] {
				out = append(out, ev)
			}
		}
	}
	out, err := a.withoutSentMembers(ctx, who, roomID, out, includeRedundant)
	if err != nil {
		return nil, err
	}
	return a.formatEvents(ctx, out, FormatClient, a.now())
}

// withoutSentMembers drops the membership events the device already has (unless
// includeRedundant) and records the rest as sent.
func (a *API) withoutSentMembers(ctx context.Context, who Requester, roomID string, members []*event.Event, includeRedundant bool) ([]*event.Event, error) {
	if len(members) == 0 {
		return members, nil
	}
	sent, err := storage.LazyMembersSent(ctx, a.db, who.Localpart, who.DeviceID, roomID)
	if err != nil {
		return nil, mxhttp.Internal(err)
	}
	out := members[:0:0]
	record := map[string]string{}
	for _, ev := range members {
		m := *ev.StateKey()
		if sent[m] == ev.ID() && !includeRedundant {
			continue
		}
		record[m] = ev.ID()
		out = append(out, ev)
	}
	if len(record) > 0 {
		err := a.db.WithTx(ctx, func(tx *storage.Tx) error {
			return tx.RecordLazyMembersSent(ctx, who.Localpart, who.DeviceID, roomID, record)
		})
		if err != nil {
			return nil, mxhttp.Internal(err)
		}
	}
	return out, nil
}

// eventContext is GET /rooms/{roomId}/context/{eventId}: the event, up to limit visible events
// around it (half before, half after), and the room state at the last of them.
func (a *API) eventContext(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, err := pathRoomID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	eventID, err := roomPathVar(r, "eventId")
	if err != nil {
		return mxhttp.Response{}, err
	}
	filter, err := a.roomEventFilterParam(r, who)
	if err != nil {
		return mxhttp.Response{}, err
	}
	limit, err := limitParam(r, DefaultTimelineLimit)
	if err != nil {
		return mxhttp.Response{}, err
	}
	ctx := r.Context()
	room, v, acc, err := a.roomForReading(ctx, who, roomID)
	if err != nil {
		return mxhttp.Response{}, err
	}
	ev, err := a.visibleEvent(ctx, who, roomID, eventID)
	if err != nil {
		return mxhttp.Response{}, err
	}
	rec, err := storage.EventByID(ctx, a.db, eventID)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	if rec.StreamPos == 0 {
		return mxhttp.Response{}, mxhttp.NotFound("event not found")
	}
	ceiling, err := a.readLimit(ctx, acc)
	if err != nil {
		return mxhttp.Response{}, err
	}
	nBefore := limit / 2
	before, err := a.pageEvents(ctx, who, room, v, tokenAfter(rec, true), storage.TopoStart, ceiling, true, nBefore, filter)
	if err != nil {
		return mxhttp.Response{}, err
	}
	after, err := a.pageEvents(ctx, who, room, v, tokenAfter(rec, false), storage.TopoEnd, ceiling, false, limit-nBefore, filter)
	if err != nil {
		return mxhttp.Response{}, err
	}
	last := ev
	if n := len(after.events); n > 0 {
		last = after.events[n-1]
	}
	state, err := a.cfg.Rooms.StateAfter(ctx, last.ID())
	if err != nil {
		return mxhttp.Response{}, roomError(err)
	}
	state = a.filterState(state, filter, append(append([]*event.Event{ev}, before.events...), after.events...))

	all := append(append([]*event.Event{ev}, before.events...), after.events...)
	formatted, err := a.clientEvents(ctx, who, all)
	if err != nil {
		return mxhttp.Response{}, err
	}
	nb := len(before.events)
	stateOut, err := a.formatEvents(ctx, state, FormatClient, a.now())
	if err != nil {
		return mxhttp.Response{}, err
	}
	return mxhttp.OK(map[string]any{
		"event":         formatted[0],
		"events_before": formatted[1 : 1+nb],
		"events_after":  formatted[1+nb:],
		"start":         before.next.String(),
		"end":           after.next.String(),
		"state":         stateOut,
	}), nil
}

// filterState applies a RoomEventFilter to state: its types and senders, and with
// lazy_load_members only the membership events of the senders of shown events.
func (a *API) filterState(state []*event.Event, f *RoomEventFilter, shown []*event.Event) []*event.Event {
	if f == nil {
		return state
	}
	senders := map[string]bool{}
	for _, ev := range shown {
		senders[ev.Sender()] = true
	}
	out := []*event.Event{}
	for _, ev := range state {
		if !f.Allows(ev) {
			continue
		}
		if f.LazyLoadMembers && ev.Type() == auth.TypeMember && !senders[*ev.StateKey()] {
			continue
		}
		out = append(out, ev)
	}
	return out
}

// timestampToEvent is GET /v1/rooms/{roomId}/timestamp_to_event: the visible event closest to
// ts in the direction asked.
func (a *API) timestampToEvent(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, err := pathRoomID(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	q := r.URL.Query()
	if q.Get("ts") == "" {
		return mxhttp.Response{}, mxhttp.MissingParam("ts is required")
	}
	ts, err := strconv.ParseInt(q.Get("ts"), 10, 64)
	if err != nil {
		return mxhttp.Response{}, mxhttp.InvalidParam("ts must be an integer")
	}
	backwards, err := dirParam(r)
	if err != nil {
		return mxhttp.Response{}, err
	}
	ctx := r.Context()
	room, v, acc, err := a.roomForReading(ctx, who, roomID)
	if err != nil {
		return mxhttp.Response{}, err
	}
	ceiling, err := a.readLimit(ctx, acc)
	if err != nil {
		return mxhttp.Response{}, err
	}
	// The room server's indexed answer serves when the reader may see it; otherwise the room
	// is read in batches for the closest event they may see.
	if near, err := a.cfg.Rooms.EventNearTimestamp(ctx, roomID, ts, backwards); err == nil {
		if rec, err := storage.EventByID(ctx, a.db, near.ID()); err == nil && rec.StreamPos > 0 && rec.StreamPos <= ceiling {
			if ok, err := a.recordVisible(ctx, who, v, rec); err != nil {
				return mxhttp.Response{}, err
			} else if ok {
				return mxhttp.OK(map[string]any{"event_id": rec.EventID, "origin_server_ts": rec.OriginServerTS}), nil
			}
		}
	}
	const batch = 500
	var best *storage.EventRecord
	for lo := int64(0); lo < ceiling; {
		recs, err := storage.RoomEventsByStream(ctx, a.db, room.NID, lo, ceiling, batch, false)
		if err != nil {
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
		for i := range recs {
			rec := &recs[i]
			t := rec.OriginServerTS
			switch {
			case !backwards && t >= ts && (best == nil || t < best.OriginServerTS):
			case backwards && t <= ts && (best == nil || t >= best.OriginServerTS):
			default:
				continue
			}
			if ok, err := a.recordVisible(ctx, who, v, *rec); err != nil {
				return mxhttp.Response{}, err
			} else if ok {
				best = rec
			}
		}
		if len(recs) < batch {
			break
		}
		lo = recs[len(recs)-1].StreamPos
	}
	if best == nil {
		return mxhttp.Response{}, mxhttp.NotFound("no event found in that direction from the timestamp")
	}
	return mxhttp.OK(map[string]any{"event_id": best.EventID, "origin_server_ts": best.OriginServerTS}), nil
}

func (a *API) recordVisible(ctx context.Context, who Requester, v event.RoomVersion, rec storage.EventRecord) (bool, error) {
	if rec.JSON == nil {
		return false, nil
	}
	ev, err := event.Parse(rec.JSON, v)
	if err != nil {
		return false, mxhttp.Internal(err)
	}
	vis, err := a.cfg.Rooms.VisibleEvents(ctx, who.UserID, []*event.Event{ev})
	if err != nil {
		return false, roomError(err)
	}
	return len(vis) == 1, nil
}
