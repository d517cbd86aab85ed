package roomserver

import (
	"context"
	"fmt"

	"myelin/roomserver/event"
	"myelin/storage"
)

// maxGapPrevs bounds the prev events of one event whose state is fetched: each costs a
// /state_ids request and the events of the state this server lacks.
const maxGapPrevs = 5

// InputRemoteAfterGap is the input of an event from server whose prev events this server does
// not have on its timeline and could not fetch (get_missing_events did not reach them): the
// gap is bridged with the state instead. For each such prev event the state before it is asked
// of server (/state_ids at the prev event), what this server lacks of it is fetched and stored
// as outliers, and the prev event is added when it is a state event; the event is then input
// with the resolution of its prev events' states as the state before it, and accepted onto
// the timeline, soft-failed or rejected as InputRemote would. The prev events left out are
// recorded as backfill extremities, from where /messages fetches the history of the gap.
//
// The caller (federation) has checked the event's signatures and content hash.
func (s *Server) InputRemoteAfterGap(ctx context.Context, server string, ev *event.Event) (InputStatus, error) {
	h := s.history()
	if h == nil {
		return 0, fmt.Errorf("%w: no federation to fetch the state at the gap with", ErrMissingEvents)
	}
	roomID, v := ev.RoomID(), ev.Version()
	authRecs, err := storage.EventsByID(ctx, s.db, ev.AuthEventIDs())
	if err != nil {
		return 0, err
	}
	if len(missingIDs(ev.AuthEventIDs(), authRecs)) > 0 {
		chain, err := h.EventAuth(ctx, server, roomID, ev.ID(), v)
		if err != nil {
			return 0, fmt.Errorf("%w: auth chain of %s from %s: %w", ErrMissingEvents, ev.ID(), server, err)
		}
		if err := s.storeOutliers(ctx, h, server, chain); err != nil {
			return 0, err
		}
	}

	// The states after the prev events not on the timeline, fetched before taking the room's
	// lock: they take a while, and storing outliers takes the lock itself.
	prevRecs, err := storage.EventsByID(ctx, s.db, ev.PrevEventIDs())
	if err != nil {
		return 0, err
	}
	var (
		gapStates []map[event.StateTuple]*eventRef
		gaps      []string
	)
	for _, id := range ev.PrevEventIDs() {
		rec, stored := findRecord(prevRecs, id)
		if stored && onTimelineWithState(rec) {
			continue
		}
		if len(gaps) == maxGapPrevs {
			return 0, fmt.Errorf("%w: %s cites more than %d events this server lacks", ErrMissingEvents, ev.ID(), maxGapPrevs)
		}
		gaps = append(gaps, id)
		before, err := s.remoteStateBefore(ctx, h, server, roomID, v, id)
		if err != nil {
			return 0, fmt.Errorf("%w: %w", ErrMissingEvents, err)
		}
		if !stored {
			if prev, err := h.Event(ctx, server, id, v); err == nil && prev.RoomID() == roomID {
				if err := s.storeOutliers(ctx, h, server, []*event.Event{prev}); err != nil {
					return 0, err
				}
			}
		}
		after := before
		if rec, err := storage.EventByID(ctx, s.db, id); err == nil && rec.JSON != nil {
			prev, err := s.parse(rec)
			if err != nil {
				return 0, err
			}
			if after, err = s.stateAfterRemote(ctx, before, prev); err != nil {
				return 0, err
			}
		} else if err != nil && !isNotFound(err) {
			return 0, err
		}
		gapStates = append(gapStates, after)
	}

	rs, unlock, err := s.lockLoaded(ctx, roomID)
	if err != nil {
		return 0, err
	}
	defer unlock()
	if known, err := s.admitRemote(ctx, rs, ev); err != nil {
		return 0, err
	} else if known {
		return AlreadyKnown, nil
	}
	if authRecs, err = storage.EventsByID(ctx, s.db, ev.AuthEventIDs()); err != nil {
		return 0, err
	}
	if missing := missingIDs(ev.AuthEventIDs(), authRecs); len(missing) > 0 {
		return 0, &MissingEventsError{Auth: missing}
	}
	if prevRecs, err = storage.EventsByID(ctx, s.db, ev.PrevEventIDs()); err != nil {
		return 0, err
	}
	var known []storage.EventRecord
	sets := gapStates
	for _, rec := range prevRecs {
		if onTimelineWithState(rec) {
			known = append(known, rec)
			st, err := s.snapshotRefs(ctx, rec.StateAfter)
			if err != nil {
				return 0, err
			}
			sets = append(sets, st)
		}
	}
	if len(sets) == 0 {
		return 0, fmt.Errorf("%w: no state for the prev events of %s", ErrMissingEvents, ev.ID())
	}
	before := sets[0]
	if len(sets) > 1 {
		if before, err = s.resolve(ctx, rs.version, sets); err != nil {
			return 0, err
		}
	}
	create := rs.state[createTuple]
	if c := before[createTuple]; c == nil || c.id != create.id {
		return 0, fmt.Errorf("%w: the state %s gave at the gap is not of this room's create event", ErrInvalid, server)
	}
	if err := s.load(ctx, create); err != nil {
		return 0, err
	}

	// The checks on receipt, as InputRemote makes them.
	reason, authNIDs, err := s.checkAuthEvents(rs, create, ev, authRecs)
	if err != nil {
		return 0, err
	}
	if reason == nil {
		reason = s.checkAgainst(ctx, ev, before, create)
	}
	status := Accepted
	switch {
	case reason != nil:
		status = Rejected
	case s.checkAgainst(ctx, ev, rs.state, create) != nil:
		status = SoftFailed
	}
	if err := s.commitRemote(ctx, rs, ev, remoteInput{
		status: status, authNIDs: authNIDs, prevRecs: known, before: before,
	}); err != nil {
		return 0, err
	}
	if status == Rejected {
		return Rejected, fmt.Errorf("%w: %w", ErrRejected, reason)
	}
	if status == Accepted {
		err := s.db.WithTx(ctx, func(tx *storage.Tx) error {
			return recordGaps(ctx, tx, rs.nid, ev.Depth(), gaps)
		})
		if err != nil {
			return 0, err
		}
	}
	return status, nil
}

func findRecord(recs []storage.EventRecord, id string) (storage.EventRecord, bool) {
	for _, r := range recs {
		if r.EventID == id {
			return r, true
		}
	}
	return storage.EventRecord{}, false
}

// onTimelineWithState says whether the state after an event is known here: it is on the
// timeline (not an outlier) and has a snapshot.
func onTimelineWithState(rec storage.EventRecord) bool {
	return !rec.Outlier && rec.StateAfter != 0
}

// recordGaps records the prev events of an event at depth that are not on the timeline as
// backfill extremities of the room.
func recordGaps(ctx context.Context, tx *storage.Tx, room storage.RoomNID, depth int64, prevs []string) error {
	if len(prevs) == 0 {
		return nil
	}
	on, err := storage.TimelineAmong(ctx, tx, prevs)
	if err != nil {
		return err
	}
	var exts []storage.BackfillExtremity
	for _, id := range prevs {
		if !on[id] {
			exts = append(exts, storage.BackfillExtremity{EventID: id, Depth: depth})
		}
	}
	return tx.AddBackfillExtremities(ctx, room, exts)
}
