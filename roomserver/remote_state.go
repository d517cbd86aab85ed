package roomserver

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"myelin/roomserver/event"
	"myelin/storage"
)

// The state at an event as another server knows it: what backfill and gap recovery fetch when
// the prev events of an event are not on this server's timeline, so that the event can still
// be placed in history with a state (checked, and read by the history visibility rules).

const (
	// maxFetchOneByOne is how many events of a remote state this server lacks that it fetches
	// one by one with /event; past it, one /state answer brings them all.
	maxFetchOneByOne = 20
	// maxAuthFetches bounds the /event_auth requests made while storing one batch of outliers.
	maxAuthFetches = 5
)

// remoteStateBefore asks server for the state of the room before eventID (/state_ids), fetches
// the events of it and of its auth chain that this server lacks (/event, or /state when many),
// stores them as outliers, and returns the state as refs. Events that fail their own auth
// checks are left out of it. It must be called without the room's lock.
func (s *Server) remoteStateBefore(ctx context.Context, h RemoteHistory, server, roomID string, v event.RoomVersion, eventID string) (map[event.StateTuple]*eventRef, error) {
	stateIDs, authIDs, err := h.StateIDs(ctx, server, roomID, eventID)
	if err != nil {
		return nil, fmt.Errorf("state_ids at %s from %s: %w", eventID, server, err)
	}
	var all []string
	for _, id := range slices.Concat(stateIDs, authIDs) {
		if !slices.Contains(all, id) {
			all = append(all, id)
		}
	}
	have, err := storage.EventsByID(ctx, s.db, all)
	if err != nil {
		return nil, err
	}
	missing := missingIDs(all, have)
	var fetched []*event.Event
	if len(missing) > maxFetchOneByOne {
		state, chain, err := h.State(ctx, server, roomID, eventID, v)
		if err != nil {
			return nil, fmt.Errorf("state at %s from %s: %w", eventID, server, err)
		}
		for _, ev := range slices.Concat(state, chain) {
			if slices.Contains(missing, ev.ID()) {
				fetched = append(fetched, ev)
			}
		}
	} else {
		for _, id := range missing {
			ev, err := h.Event(ctx, server, id, v)
			if err != nil {
				continue // left out: what needs it fails its checks
			}
			if ev.RoomID() == roomID {
				fetched = append(fetched, ev)
			}
		}
	}
	if err := s.storeOutliers(ctx, h, server, fetched); err != nil {
		return nil, err
	}
	return s.stateRefs(ctx, stateIDs)
}

// storeOutliers stores events of one room as outliers, each after its auth events, each
// checked against its own auth events (InputOutlier). An event whose auth events are still
// missing gets its auth chain from server (/event_auth), a bounded number of times. Events
// stored already are skipped; events that fail are left out.
func (s *Server) storeOutliers(ctx context.Context, h RemoteHistory, server string, evs []*event.Event) error {
	if len(evs) == 0 {
		return nil
	}
	byID := map[string]*event.Event{}
	var ids []string
	for _, ev := range evs {
		byID[ev.ID()] = ev
		ids = append(ids, ev.ID())
	}
	have, err := storage.EventsByID(ctx, s.db, ids)
	if err != nil {
		return err
	}
	for _, rec := range have {
		delete(byID, rec.EventID)
	}
	authFetches := 0
	for _, ev := range authOrder(byID) {
		_, err := s.InputOutlier(ctx, ev)
		var missing *MissingEventsError
		if errors.As(err, &missing) && h != nil && authFetches < maxAuthFetches {
			authFetches++
			chain, ferr := h.EventAuth(ctx, server, ev.RoomID(), ev.ID(), ev.Version())
			if ferr != nil {
				continue
			}
			// The chain's own gaps are not chased further: one level, then it fails.
			if err := s.storeOutliers(ctx, nil, server, chain); err != nil {
				return err
			}
			_, err = s.InputOutlier(ctx, ev)
		}
		if err != nil && !errors.Is(err, ErrRejected) && !errors.Is(err, ErrMissingEvents) && !errors.Is(err, ErrInvalid) {
			return err
		}
	}
	return nil
}

// stateRefs reads a state given as event ids, all of one room: rejected and unknown events
// are left out, and so are non-state events. Two events for one (type, state_key) are an
// invalid state.
func (s *Server) stateRefs(ctx context.Context, ids []string) (map[event.StateTuple]*eventRef, error) {
	recs, err := storage.EventsByID(ctx, s.db, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[event.StateTuple]*eventRef, len(recs))
	for _, rec := range recs {
		if rec.Rejected || rec.StateKey == nil {
			continue
		}
		t := event.StateTuple{Type: rec.Type, StateKey: *rec.StateKey}
		if other := out[t]; other != nil {
			return nil, fmt.Errorf("%w: the state names %s and %s for (%s, %q)", ErrInvalid, other.id, rec.EventID, t.Type, t.StateKey)
		}
		out[t] = &eventRef{nid: rec.NID, id: rec.EventID, depth: rec.Depth}
	}
	return out, nil
}

// stateAfterRemote is the state after ev given the state before it: ev added when it is a
// state event this server stores and did not reject.
func (s *Server) stateAfterRemote(ctx context.Context, before map[event.StateTuple]*eventRef, ev *event.Event) (map[event.StateTuple]*eventRef, error) {
	t, ok := ev.Tuple()
	if !ok {
		return before, nil
	}
	rec, err := storage.EventByID(ctx, s.db, ev.ID())
	if isNotFound(err) {
		return before, nil
	}
	if err != nil || rec.Rejected {
		return before, err
	}
	after := make(map[event.StateTuple]*eventRef, len(before)+1)
	for k, r := range before {
		after[k] = r
	}
	after[t] = &eventRef{nid: rec.NID, id: rec.EventID, depth: rec.Depth, ev: ev}
	return after, nil
}
