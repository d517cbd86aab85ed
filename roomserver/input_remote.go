package roomserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/roomserver/stateres"
	"myelin/storage"
)

// InputStatus is what became of an event given to InputRemote.
type InputStatus int

const (
	// Accepted: the event passed every check and is on the room's timeline.
	Accepted InputStatus = iota + 1
	// SoftFailed: the event is authorised by the state before it but not by the room's current
	// state. It is stored, never becomes a forward extremity and is not shown to clients.
	SoftFailed
	// Rejected: the event failed the auth rules against its auth events or the state before
	// it. It is stored as rejected, so that it is not fetched again, and never enters state.
	Rejected
	// AlreadyKnown: the event was stored before; nothing changed.
	AlreadyKnown
)

// InputRemote is the input of an event from another server into a room this server is in.
// The caller (federation) has checked its signatures and content hash. The checks on receipt
// are applied here: auth against the event's auth events, against the state before it (the
// state after its prev events, resolved when there are several), and against the room's
// current state (soft failure). Events it refers to that this server does not have are
// reported in a *MissingEventsError; fetching them is the caller's business.
func (s *Server) InputRemote(ctx context.Context, ev *event.Event) (InputStatus, error) {
	rs, unlock, err := s.lockLoaded(ctx, ev.RoomID())
	if err != nil {
		return 0, err
	}
	defer unlock()
	if known, err := s.admitRemote(ctx, rs, ev); err != nil {
		return 0, err
	} else if known {
		return AlreadyKnown, nil
	}

	authRecs, err := storage.EventsByID(ctx, s.db, ev.AuthEventIDs())
	if err != nil {
		return 0, err
	}
	prevRecs, err := storage.EventsByID(ctx, s.db, ev.PrevEventIDs())
	if err != nil {
		return 0, err
	}
	missing := &MissingEventsError{Auth: missingIDs(ev.AuthEventIDs(), authRecs), Prev: missingIDs(ev.PrevEventIDs(), prevRecs)}
	if len(missing.Auth)+len(missing.Prev) > 0 {
		return 0, missing
	}
	create := rs.state[createTuple]
	if err := s.load(ctx, create); err != nil {
		return 0, err
	}

	// 1. Auth against the event's own auth events.
	reason, authNIDs, err := s.checkAuthEvents(rs, create, ev, authRecs)
	if err != nil {
		return 0, err
	}

	// 2. Auth against the state before the event.
	before, beforeSnap, err := s.stateBefore(ctx, rs, prevRecs)
	if err != nil {
		return 0, err
	}
	if reason == nil {
		reason = s.checkAgainst(ctx, ev, before, create)
	}

	// 3. Soft failure: auth against the current state.
	softFailed := false
	if reason == nil {
		if err := s.checkAgainst(ctx, ev, rs.state, create); err != nil {
			softFailed = true
		}
	}

	accepted := reason == nil && !softFailed
	status := Accepted
	switch {
	case reason != nil:
		status = Rejected
	case softFailed:
		status = SoftFailed
	}
	if err := s.commitRemote(ctx, rs, ev, remoteInput{
		status: status, authNIDs: authNIDs, prevRecs: prevRecs, before: before, beforeSnap: beforeSnap,
	}); err != nil {
		return 0, err
	}
	if !accepted && reason != nil {
		return Rejected, fmt.Errorf("%w: %w", ErrRejected, reason)
	}
	return status, nil
}

// admitRemote applies what every event from another server must pass before its checks on
// receipt: it has the room's version and is not a second create event. known reports that the
// event is stored already, so there is nothing to do.
func (s *Server) admitRemote(ctx context.Context, rs *roomState, ev *event.Event) (known bool, err error) {
	if ev.Version().ID != rs.version.ID {
		return false, fmt.Errorf("%w: event of room version %s in a room of version %s", ErrInvalid, ev.Version().ID, rs.version.ID)
	}
	if ev.Type() == auth.TypeCreate {
		return false, fmt.Errorf("%w: the room has a create event already", ErrInvalid)
	}
	if _, err := storage.EventByID(ctx, s.db, ev.ID()); err == nil {
		return true, nil
	} else if !isNotFound(err) {
		return false, err
	}
	return false, nil
}

// checkAuthEvents is the first check on receipt: auth of ev against its own auth events (all
// stored, as authRecs), none of which may be rejected. reason says why ev fails it. authNIDs
// are the auth edges to store: the auth events, and the create event in room versions whose
// room id names it, where events do not list it.
func (s *Server) checkAuthEvents(rs *roomState, create *eventRef, ev *event.Event, authRecs []storage.EventRecord) (reason error, authNIDs []storage.EventNID, err error) {
	authEvents, err := s.parseAll(authRecs)
	if err != nil {
		return nil, nil, err
	}
	reason = auth.CheckAuthEventsList(ev, authEvents)
	for _, rec := range authRecs {
		if reason == nil && rec.Rejected {
			reason = fmt.Errorf("%w: auth event %s was rejected", auth.ErrNotAllowed, rec.EventID)
		}
	}
	if reason == nil {
		st := auth.NewStateMap(authEvents...)
		st.Add(create.ev)
		reason = auth.Check(ev, st)
	}
	authNIDs = make([]storage.EventNID, 0, len(authRecs)+1)
	for _, rec := range authRecs {
		authNIDs = append(authNIDs, rec.NID)
	}
	if rs.version.RoomIDFromCreateEvent && !slices.Contains(authNIDs, create.nid) {
		authNIDs = append(authNIDs, create.nid)
	}
	return reason, authNIDs, nil
}

func missingIDs(ids []string, recs []storage.EventRecord) []string {
	var out []string
	for _, id := range ids {
		if !slices.ContainsFunc(recs, func(r storage.EventRecord) bool { return r.EventID == id }) {
			out = append(out, id)
		}
	}
	return out
}

// checkAgainst applies the auth rules to ev with the parts of state it needs.
func (s *Server) checkAgainst(ctx context.Context, ev *event.Event, state map[event.StateTuple]*eventRef, create *eventRef) error {
	sk := ""
	if ev.StateKey() != nil {
		sk = *ev.StateKey()
	}
	var refs []*eventRef
	for _, t := range auth.StateNeededForAuth(ev.Type(), sk, ev.Sender(), ev.Content(), ev.Version()) {
		if r := state[t]; r != nil {
			refs = append(refs, r)
		}
	}
	if err := s.load(ctx, refs...); err != nil {
		return err
	}
	m := auth.StateMap{}
	for _, r := range refs {
		m.Add(r.ev)
	}
	m.Add(create.ev)
	return auth.Check(ev, m)
}

// stateBefore is the state after the event's prev events: that of the one prev event, or the
// resolution of theirs. beforeSnap is its snapshot when one exists already (one prev event),
// 0 when it must be written.
func (s *Server) stateBefore(ctx context.Context, rs *roomState, prevs []storage.EventRecord) (map[event.StateTuple]*eventRef, storage.SnapshotNID, error) {
	var sets []map[event.StateTuple]*eventRef
	for _, p := range prevs {
		if p.Outlier {
			return nil, 0, fmt.Errorf("%w: the state after prev event %s is unknown", ErrMissingEvents, p.EventID)
		}
		if len(prevs) == 1 && p.StateAfter == rs.snapshot {
			return rs.state, p.StateAfter, nil
		}
		st, err := s.snapshotRefs(ctx, p.StateAfter)
		if err != nil {
			return nil, 0, err
		}
		sets = append(sets, st)
	}
	if len(sets) == 1 {
		return sets[0], prevs[0].StateAfter, nil
	}
	resolved, err := s.resolve(ctx, rs.version, sets)
	return resolved, 0, err
}

// snapshotRefs reads a full state snapshot as refs.
func (s *Server) snapshotRefs(ctx context.Context, snap storage.SnapshotNID) (map[event.StateTuple]*eventRef, error) {
	entries, err := storage.SnapshotState(ctx, s.db, snap)
	if err != nil {
		return nil, err
	}
	keys := make([]storage.StateKey, len(entries))
	nids := make([]storage.EventNID, len(entries))
	for i, e := range entries {
		keys[i], nids[i] = e.Key, e.Event
	}
	tuples, err := s.intern.tuples(ctx, s.db, keys)
	if err != nil {
		return nil, err
	}
	ids, err := storage.EventIDsByNID(ctx, s.db, nids)
	if err != nil {
		return nil, err
	}
	out := make(map[event.StateTuple]*eventRef, len(entries))
	for _, e := range entries {
		out[tuples[e.Key]] = &eventRef{nid: e.Event, id: ids[e.Event]}
	}
	return out, nil
}

// resolve runs state resolution over states given as refs.
func (s *Server) resolve(ctx context.Context, v event.RoomVersion, sets []map[event.StateTuple]*eventRef) (map[event.StateTuple]*eventRef, error) {
	byID := map[string]*eventRef{}
	stateMaps := make([]stateres.StateMap, len(sets))
	for i, set := range sets {
		stateMaps[i] = make(stateres.StateMap, len(set))
		for t, r := range set {
			stateMaps[i][t] = r.id
			byID[r.id] = r
		}
	}
	resolved, err := stateres.Resolve(v, stateMaps, s.loaderFor(ctx, sets), auth.Check)
	if err != nil {
		return nil, err
	}
	out := make(map[event.StateTuple]*eventRef, len(resolved))
	var unknown []string
	for t, id := range resolved {
		if r := byID[id]; r != nil {
			out[t] = r
		} else {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		// Resolution only picks from the given states; anything else is a broken invariant.
		return nil, fmt.Errorf("roomserver: state resolution chose events outside its input: %v", unknown)
	}
	return out, nil
}

// loader gives state resolution the room's events from storage.
type loader struct {
	ctx context.Context
	s   *Server
}

var _ stateres.Loader = (*loader)(nil)

func (l *loader) Events(ids []string) (map[string]*event.Event, error) {
	recs, err := storage.EventsByID(l.ctx, l.s.db, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*event.Event, len(recs))
	for _, rec := range recs {
		ev, err := l.s.parse(rec)
		if err != nil {
			return nil, err
		}
		out[rec.EventID] = ev
	}
	return out, nil
}

func (l *loader) AuthChain(ids []string) (map[string]struct{}, error) {
	recs, err := storage.EventsByID(l.ctx, l.s.db, ids)
	if err != nil {
		return nil, err
	}
	if len(recs) != len(ids) {
		return nil, fmt.Errorf("%w: auth chain of events not stored", stateres.ErrMissingEvent)
	}
	nids := make([]storage.EventNID, len(recs))
	for i, rec := range recs {
		nids[i] = rec.NID
	}
	chain, err := storage.AuthChain(l.ctx, l.s.db, nids)
	if err != nil {
		return nil, err
	}
	names, err := storage.EventIDsByNID(l.ctx, l.s.db, chain)
	if err != nil {
		return nil, err
	}
	out := make(map[string]struct{}, len(names))
	for _, id := range names {
		out[id] = struct{}{}
	}
	return out, nil
}

func (l *loader) Rejected(ids []string) (map[string]struct{}, error) {
	got, err := storage.RejectedAmong(l.ctx, l.s.db, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]struct{}, len(got))
	for id := range got {
		out[id] = struct{}{}
	}
	return out, nil
}

type remoteInput struct {
	status     InputStatus
	authNIDs   []storage.EventNID
	prevRecs   []storage.EventRecord
	before     map[event.StateTuple]*eventRef
	beforeSnap storage.SnapshotNID
}

// commitRemote stores a checked remote event. An accepted event becomes a forward extremity
// in place of the extremities it cites; the room's current state becomes the state after it
// when it is then the only extremity, else the resolution of the current state and its state.
func (s *Server) commitRemote(ctx context.Context, rs *roomState, ev *event.Event, in remoteInput) error {
	accepted := in.status == Accepted
	ref := &eventRef{id: ev.ID(), depth: ev.Depth(), ev: ev}
	after := in.before
	t, isState := ev.Tuple()
	if isState && in.status != Rejected {
		after = maps.Clone(in.before)
		after[t] = ref
	}
	var (
		newExt     []*eventRef
		newCurrent map[event.StateTuple]*eventRef
	)
	if accepted {
		newExt = []*eventRef{ref}
		for _, e := range rs.extremities {
			if !slices.Contains(ev.PrevEventIDs(), e.id) {
				newExt = append(newExt, e)
			}
		}
		newCurrent = after
		if len(newExt) > 1 {
			var err error
			if newCurrent, err = s.resolve(ctx, rs.version, []map[event.StateTuple]*eventRef{rs.state, after}); err != nil {
				return err
			}
		}
	}
	currentDelta := stateDelta(rs.state, newCurrent)

	ti := txInterner{in: &s.intern}
	var nid storage.EventNID
	var pos int64
	var currentSnap storage.SnapshotNID
	var redacted []string
	err := s.db.WithTx(ctx, func(tx *storage.Tx) error {
		var err error
		beforeSnap := in.beforeSnap
		if beforeSnap == 0 {
			// The resolved state before the event is written as a delta over the state after
			// its first prev event; in full when no prev event has a state here (a gap
			// bridged by input_gap.go).
			var parent storage.SnapshotNID
			base := map[event.StateTuple]*eventRef{}
			if len(in.prevRecs) > 0 {
				parent = in.prevRecs[0].StateAfter
				if base, err = s.snapshotRefs(ctx, parent); err != nil {
					return err
				}
			}
			entries, err := s.entries(ctx, tx, &ti, stateDelta(base, in.before), nil)
			if err != nil {
				return err
			}
			if beforeSnap, err = tx.CreateSnapshot(ctx, rs.nid, parent, entries); err != nil {
				return err
			}
		}
		rec := storage.EventRecord{
			Room: rs.nid, EventID: ev.ID(), Type: ev.Type(), StateKey: ev.StateKey(), Sender: ev.Sender(),
			Depth: ev.Depth(), OriginServerTS: ev.OriginServerTS(), StateBefore: beforeSnap, StateAfter: beforeSnap,
			Rejected: in.status == Rejected, SoftFailed: in.status == SoftFailed, JSON: ev.JSON(),
		}
		if accepted {
			if pos, err = tx.NextStreamPosition(ctx, "events"); err != nil {
				return err
			}
			rec.StreamPos = pos
		}
		var key storage.StateKey
		if isState {
			if key, err = ti.key(ctx, tx, t); err != nil {
				return err
			}
			rec.TypeNID, rec.StateKeyNID = key.Type, key.StateKey
		}
		if nid, err = tx.InsertEvent(ctx, rec); err != nil {
			return err
		}
		if err := tx.InsertAuthEdges(ctx, nid, in.authNIDs); err != nil {
			return err
		}
		if err := tx.InsertPrevEdges(ctx, nid, ev.PrevEventIDs()); err != nil {
			return err
		}
		if accepted {
			if err := indexEvent(ctx, tx, rs.nid, ev, nid, pos); err != nil {
				return err
			}
			if redacted, err = s.redactOnStore(ctx, tx, rs.nid, rs.version, rs.state[createTuple].ev, ev, true); err != nil {
				return err
			}
		}
		afterSnap := beforeSnap
		if isState && in.status != Rejected {
			if afterSnap, err = tx.CreateSnapshot(ctx, rs.nid, beforeSnap, []storage.StateEntry{{Key: key, Event: nid}}); err != nil {
				return err
			}
			if err := tx.SetStateAfter(ctx, nid, afterSnap); err != nil {
				return err
			}
		}
		if !accepted {
			return nil
		}
		var remove []storage.EventNID
		for _, e := range rs.extremities {
			if slices.Contains(ev.PrevEventIDs(), e.id) {
				remove = append(remove, e.nid)
			}
		}
		if err := tx.UpdateForwardExtremities(ctx, rs.nid, nid, remove); err != nil {
			return err
		}
		if len(currentDelta) == 0 {
			currentSnap = rs.snapshot
			return nil
		}
		entries, err := s.entries(ctx, tx, &ti, currentDelta, map[*eventRef]storage.EventNID{ref: nid})
		if err != nil {
			return err
		}
		if err := tx.UpdateCurrentState(ctx, rs.nid, entries); err != nil {
			return err
		}
		if len(newExt) == 1 {
			currentSnap = afterSnap
		} else if currentSnap, err = tx.CreateSnapshot(ctx, rs.nid, rs.snapshot, entries); err != nil {
			return err
		}
		if err := tx.SetCurrentSnapshot(ctx, rs.nid, currentSnap); err != nil {
			return err
		}
		for dt, r := range currentDelta {
			if dt.Type != auth.TypeMember || r == nil {
				continue
			}
			if err := s.load(ctx, r); err != nil {
				return err
			}
			rnid := r.nid
			if r == ref {
				rnid = nid
			}
			if err := setMembership(ctx, tx, rs.nid, r.ev, rnid, pos); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	ti.committed()
	ref.nid = nid
	if !accepted {
		return nil
	}
	for dt, r := range currentDelta {
		if r == nil {
			delete(rs.state, dt)
		} else {
			rs.state[dt] = r
		}
	}
	rs.snapshot = currentSnap
	rs.extremities = newExt
	rs.dropRedactedBodies(redacted)
	s.notify(NewEvent{RoomID: rs.id, Event: ev, StreamPos: pos, RoomNID: rs.nid})
	return nil
}

// stateDelta is what turns state a into state b: changed and added entries, and nil for
// removed ones.
func stateDelta(a, b map[event.StateTuple]*eventRef) map[event.StateTuple]*eventRef {
	d := map[event.StateTuple]*eventRef{}
	if b == nil {
		return d
	}
	for t, r := range b {
		if old := a[t]; old == nil || old.id != r.id {
			d[t] = r
		}
	}
	for t := range a {
		if _, ok := b[t]; !ok {
			d[t] = nil
		}
	}
	return d
}

// entries turns a delta of refs into storage entries; pending gives the short ids of events
// inserted in this transaction.
func (s *Server) entries(ctx context.Context, tx *storage.Tx, ti *txInterner, delta map[event.StateTuple]*eventRef, pending map[*eventRef]storage.EventNID) ([]storage.StateEntry, error) {
	out := make([]storage.StateEntry, 0, len(delta))
	for t, r := range delta {
		k, err := ti.key(ctx, tx, t)
		if err != nil {
			return nil, err
		}
		e := storage.StateEntry{Key: k}
		if r != nil {
			e.Event = r.nid
			if n, ok := pending[r]; ok {
				e.Event = n
			}
			if e.Event == 0 {
				return nil, errors.New("roomserver: state entry of an event without a short id")
			}
		}
		out = append(out, e)
	}
	return out, nil
}
