package clientapi

import (
	"context"
	"slices"

	"myelin/roomserver/event"
	"myelin/storage"
)

// A room's timeline in a sync. The spec's timeline limit is the number of events returned
// after filtering, so the timeline reads back from the end of the range in pages until limit
// events pass (visibility, unapplied redactions, the timeline filter), the start of the range
// is reached, or timelineScanFactor × limit events have been examined: a filter that drops
// almost everything costs a bounded read, and the client pages on from prev_batch.
//
// prev_batch points just before the earliest event examined, so that paginating back from it
// misses nothing; limited says whether the range holds events before that point. The state
// section is the state before the first event shown (or at the end of the range when none is
// shown), which also carries the state changes of examined events the filter dropped.

// timelineScanFactor bounds the events one room's timeline examines, as a multiple of limit,
// with timelineMinScan as the floor for small limits.
const (
	timelineScanFactor = 10
	timelineMinScan    = 100
)

// roomWindow is a room's timeline in a sync: the events of (startPos, upto] that were
// examined, and those of them the user sees.
type roomWindow struct {
	version  event.RoomVersion
	recs     []storage.EventRecord // the examined events, in stream order
	events   []*event.Event        // what the user sees of them, in stream order
	limited  bool
	startPos int64 // the timeline starts after this position: prev_batch
	// start is the state before the first event shown, statePos the position it is at;
	// endSnap the state at the end of the window.
	start    storage.SnapshotNID
	statePos int64
	endSnap  storage.SnapshotNID
}

// window reads the timeline of a room for the range (from, upto].
func (h *syncHandlers) window(ctx context.Context, who Requester, ur storage.UserRoom, from, upto int64, req syncRequest) (*roomWindow, error) {
	v, err := event.Version(ur.Version)
	if err != nil {
		return nil, err
	}
	tf := req.filter.Room.Timeline
	limit := tf.LimitOr(DefaultTimelineLimit)
	budget := max(limit*timelineScanFactor, timelineMinScan)
	if tf.passesNothingIn(ur.RoomID) {
		budget = 0 // nothing to look for: the timeline is empty and not limited
	}
	var (
		scanned   []storage.EventRecord // newest first
		kept      []*event.Event        // newest first
		keptPos   = map[string]int64{}
		exhausted bool
		cursor    = upto
	)
	// The first page is what an unfiltered timeline needs; later pages are larger.
	page := limit + 1
	for len(kept) < limit && len(scanned) < budget {
		n := min(page, budget-len(scanned))
		recs, err := storage.RoomEventsByStream(ctx, h.db, ur.Room, from, cursor, n, true)
		if err != nil {
			return nil, err
		}
		scanned = append(scanned, recs...)
		if len(recs) > 0 {
			cursor = recs[len(recs)-1].StreamPos - 1
		}
		passed, err := h.timelinePasses(ctx, who, &tf, recs, v)
		if err != nil {
			return nil, err
		}
		if len(passed) > 0 {
			pos := make(map[string]int64, len(recs))
			for _, r := range recs {
				pos[r.EventID] = r.StreamPos
			}
			for _, ev := range passed {
				kept = append(kept, ev)
				keptPos[ev.ID()] = pos[ev.ID()]
			}
		}
		if len(recs) < n {
			exhausted = true
			break
		}
		page = max(2*limit, 50)
	}

	w := &roomWindow{version: v, startPos: upto, statePos: upto}
	// Past limit events, the window ends at the limit-th newest one: what is older was read
	// but not examined, and stays behind prev_batch.
	oldest := len(scanned) - 1
	if len(kept) >= limit {
		kept = kept[:limit]
		cut := keptPos[kept[limit-1].ID()]
		oldest = slices.IndexFunc(scanned, func(r storage.EventRecord) bool { return r.StreamPos == cut })
	}
	switch {
	case oldest < len(scanned)-1:
		w.limited = true // examined events precede the window
	case exhausted || oldest < 0:
		w.limited = false
	default:
		more, err := storage.RoomEventsByStream(ctx, h.db, ur.Room, from, scanned[oldest].StreamPos-1, 1, true)
		if err != nil {
			return nil, err
		}
		w.limited = len(more) > 0
	}
	if oldest >= 0 {
		w.recs = slices.Clone(scanned[:oldest+1])
		slices.Reverse(w.recs)
		w.startPos = w.recs[0].StreamPos - 1
		w.endSnap = w.recs[len(w.recs)-1].StateAfter
	} else {
		last, err := storage.RoomEventsByStream(ctx, h.db, ur.Room, 0, upto, 1, true)
		if err != nil {
			return nil, err
		}
		if len(last) > 0 {
			w.endSnap = last[0].StateAfter
		}
	}
	slices.Reverse(kept)
	w.events = kept
	w.start = w.endSnap
	if len(kept) > 0 {
		first := keptPos[kept[0].ID()]
		for _, rec := range w.recs {
			if rec.StreamPos == first {
				w.start, w.statePos = rec.StateBefore, rec.StreamPos-1
				break
			}
		}
	}
	return w, nil
}

// timelinePasses returns, in the order of recs, the events of recs the user sees and the
// timeline filter passes.
func (h *syncHandlers) timelinePasses(ctx context.Context, who Requester, tf *RoomEventFilter, recs []storage.EventRecord, v event.RoomVersion) ([]*event.Event, error) {
	evs := parseRecords(recs, v)
	if len(evs) == 0 {
		return nil, nil
	}
	visible, err := visibleEvents(ctx, h.cfg.Rooms, who.UserID, evs)
	if err != nil {
		return nil, err
	}
	if visible, err = h.withoutUnappliedRedactions(ctx, visible); err != nil {
		return nil, err
	}
	if visible, err = h.relatedBy(ctx, tf, visible); err != nil {
		return nil, err
	}
	pass := map[string]bool{}
	for _, ev := range visible {
		if tf.Allows(ev) {
			pass[ev.ID()] = true
		}
	}
	out := make([]*event.Event, 0, len(pass))
	for _, ev := range evs {
		if pass[ev.ID()] {
			out = append(out, ev)
		}
	}
	return out, nil
}

// passesNothingIn reports whether the filter drops every event of the room, whatever it is.
func (f RoomEventFilter) passesNothingIn(roomID string) bool {
	return !f.AllowsRoom(roomID) || f.Types != nil && len(f.Types) == 0 || f.Senders != nil && len(f.Senders) == 0
}
