package roomserver

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"myelin/keys"
	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
)

// maxPrevEvents caps the prev_events of a local event. Servers reject events with more than
// event.MaxPrevEvents; citing fewer keeps events small while still merging forks over time.
const maxPrevEvents = 10

var createTuple = event.StateTuple{Type: auth.TypeCreate}

// roomWork is a room's state extended by local events that are authorised but not committed
// yet. Several events (a whole createRoom) commit in one transaction, or none does.
type roomWork struct {
	rs          *roomState
	overlay     map[event.StateTuple]*eventRef
	extremities []*eventRef
	batch       []staged
	// also runs last inside the transaction that stores the batch (see SendEventAlso).
	also func(ctx context.Context, tx *storage.Tx) error
}

type staged struct {
	ref  *eventRef
	auth []*eventRef // the auth events, with the create event in room versions that omit it
	prev []*eventRef // the forward extremities the event cites
}

func newWork(rs *roomState) *roomWork {
	return &roomWork{rs: rs, overlay: map[event.StateTuple]*eventRef{}, extremities: rs.extremities}
}

func (w *roomWork) get(t event.StateTuple) *eventRef {
	if r, ok := w.overlay[t]; ok {
		return r
	}
	return w.rs.state[t]
}

// addLocal completes p (room, prev and auth events, depth, timestamp), builds and signs it,
// authorises it against the state it will follow, and stages it. A refused event leaves w as
// it was.
func (s *Server) addLocal(ctx context.Context, w *roomWork, p event.Proto) (*event.Event, error) {
	v := w.rs.version
	isCreate := p.Type == auth.TypeCreate && p.StateKey != nil && *p.StateKey == ""
	if isCreate && v.RoomIDFromCreateEvent {
		p.RoomID = ""
	} else {
		p.RoomID = w.rs.id
	}
	if len(p.Content) == 0 {
		p.Content = json.RawMessage("{}")
	}
	sk := ""
	if p.StateKey != nil {
		sk = *p.StateKey
	}
	var authRefs []*eventRef
	for _, t := range auth.StateNeededForAuth(p.Type, sk, p.Sender, p.Content, v) {
		if r := w.get(t); r != nil {
			authRefs = append(authRefs, r)
		}
	}
	create := w.get(createTuple)
	if err := s.load(ctx, append(slices.Clone(authRefs), create)...); err != nil {
		return nil, err
	}
	p.AuthEvents = make([]string, len(authRefs))
	for i, r := range authRefs {
		p.AuthEvents[i] = r.id
	}
	prev := sortedExtremities(w.extremities)
	prev = prev[:min(len(prev), maxPrevEvents)]
	p.PrevEvents = make([]string, len(prev))
	p.Depth = 0
	for i, r := range prev {
		p.PrevEvents[i] = r.id
		p.Depth = max(p.Depth, r.depth)
	}
	p.Depth++
	if v.Format == event.FormatV1 {
		if err := s.referenceHashes(ctx, &p, authRefs, prev); err != nil {
			return nil, err
		}
	}
	if p.OriginServerTS == 0 {
		p.OriginServerTS = s.opts.Now().UnixMilli()
	}
	ev, err := event.Build(p, v, s.serverName, s.key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	state := make(auth.StateMap, len(authRefs)+1)
	for _, r := range authRefs {
		state.Add(r.ev)
	}
	if create != nil {
		state.Add(create.ev)
		if v.RoomIDFromCreateEvent && !isCreate {
			authRefs = append(authRefs, create)
		}
	}
	if err := auth.Check(ev, state); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotAllowed, err)
	}
	if isCreate && w.rs.id == "" {
		w.rs.id = ev.RoomID()
	}
	ref := &eventRef{id: ev.ID(), depth: ev.Depth(), ev: ev}
	if t, ok := ev.Tuple(); ok {
		w.overlay[t] = ref
	}
	ext := []*eventRef{ref}
	for _, e := range w.extremities {
		if !slices.Contains(prev, e) {
			ext = append(ext, e)
		}
	}
	w.extremities = ext
	w.batch = append(w.batch, staged{ref: ref, auth: authRefs, prev: prev})
	return ev, nil
}

// commit stores the staged events of w in one transaction: each event with its auth and prev
// edges and a stream position, a state snapshot per state event (a delta of one entry over the
// one before; other events share the snapshot they follow), the current state, memberships and
// forward extremities. Only after the commit does the cached room state change and do
// subscribers hear of the events.
func (s *Server) commit(ctx context.Context, w *roomWork) error {
	if len(w.batch) == 0 {
		return nil
	}
	rs := w.rs
	var (
		nids      = make(map[*eventRef]storage.EventNID, len(w.batch))
		positions = make([]int64, len(w.batch))
		ti        = txInterner{in: &s.intern}
		snap      = rs.snapshot
		redacted  []string
		roomNID   = rs.nid
	)
	nidOf := func(r *eventRef) storage.EventNID {
		if r.nid != 0 {
			return r.nid
		}
		return nids[r]
	}
	err := s.db.WithTx(ctx, func(tx *storage.Tx) error {
		snap, roomNID = rs.snapshot, rs.nid // WithTx does not retry, but keep fn self-contained
		var err error
		if roomNID == 0 {
			if roomNID, err = tx.InsertRoom(ctx, rs.id, rs.version.ID); err != nil {
				return err
			}
		}
		for i, st := range w.batch {
			ev := st.ref.ev
			pos, err := tx.NextStreamPosition(ctx, "events")
			if err != nil {
				return err
			}
			positions[i] = pos
			rec := storage.EventRecord{
				Room: roomNID, EventID: ev.ID(), Type: ev.Type(), StateKey: ev.StateKey(), Sender: ev.Sender(),
				Depth: ev.Depth(), StreamPos: pos, OriginServerTS: ev.OriginServerTS(),
				StateBefore: snap, StateAfter: snap, JSON: ev.JSON(),
			}
			t, isState := ev.Tuple()
			var key storage.StateKey
			if isState {
				if key, err = ti.key(ctx, tx, t); err != nil {
					return err
				}
				rec.TypeNID, rec.StateKeyNID = key.Type, key.StateKey
			}
			nid, err := tx.InsertEvent(ctx, rec)
			if err != nil {
				return err
			}
			nids[st.ref] = nid
			if err := indexEvent(ctx, tx, roomNID, ev, nid, pos); err != nil {
				return err
			}
			authNIDs := make([]storage.EventNID, len(st.auth))
			for j, a := range st.auth {
				authNIDs[j] = nidOf(a)
			}
			if err := tx.InsertAuthEdges(ctx, nid, authNIDs); err != nil {
				return err
			}
			if err := tx.InsertPrevEdges(ctx, nid, ev.PrevEventIDs()); err != nil {
				return err
			}
			if ev.Type() == auth.TypeRedaction {
				// A local event's id is fresh: no redaction can have been waiting for it.
				p, err := s.redactOnStore(ctx, tx, roomNID, rs.version, w.get(createTuple).ev, ev, false)
				if err != nil {
					return err
				}
				redacted = append(redacted, p...)
			}
			if isState {
				entry := []storage.StateEntry{{Key: key, Event: nid}}
				if snap, err = tx.CreateSnapshot(ctx, roomNID, snap, entry); err != nil {
					return err
				}
				if err := tx.SetStateAfter(ctx, nid, snap); err != nil {
					return err
				}
				if err := tx.UpdateCurrentState(ctx, roomNID, entry); err != nil {
					return err
				}
				if err := setMembership(ctx, tx, roomNID, ev, nid, pos); err != nil {
					return err
				}
			}
			remove := make([]storage.EventNID, len(st.prev))
			for j, p := range st.prev {
				remove[j] = nidOf(p)
			}
			if err := tx.UpdateForwardExtremities(ctx, roomNID, nid, remove); err != nil {
				return err
			}
		}
		if snap != rs.snapshot {
			if err := tx.SetCurrentSnapshot(ctx, roomNID, snap); err != nil {
				return err
			}
		}
		if w.also != nil {
			return w.also(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return err
	}
	ti.committed()
	for ref, nid := range nids {
		ref.nid = nid
	}
	if rs.nid == 0 {
		rs.nid = roomNID
		if rs.state == nil {
			rs.state = map[event.StateTuple]*eventRef{}
		}
	}
	s.mu.Lock()
	s.roomVersions[roomNID] = rs.version
	s.mu.Unlock()
	rs.snapshot = snap
	for t, r := range w.overlay {
		rs.state[t] = r
	}
	rs.extremities = w.extremities
	rs.dropRedactedBodies(redacted)
	for i, st := range w.batch {
		s.notify(NewEvent{RoomID: rs.id, Event: st.ref.ev, StreamPos: positions[i], RoomNID: rs.nid})
	}
	return nil
}

// setMembership records the membership an m.room.member event gave its target, once the event
// is in the current state.
func setMembership(ctx context.Context, tx *storage.Tx, room storage.RoomNID, ev *event.Event, nid storage.EventNID, pos int64) error {
	if ev.Type() != auth.TypeMember || ev.StateKey() == nil {
		return nil
	}
	m, err := ev.Membership()
	if err != nil {
		return nil // auth accepted it, so the room version tolerates it; it names no membership
	}
	return tx.SetMembership(ctx, storage.Membership{Room: room, UserID: *ev.StateKey(), Membership: m, Event: nid, StreamPos: pos})
}

// SendEvent is the input of a local event: p needs Type, Sender (a local user), Content, the
// room in RoomID and StateKey for state events; the room server fills in the rest, signs it and
// stores it if the auth rules allow it. It returns the event as stored.
func (s *Server) SendEvent(ctx context.Context, p event.Proto) (*event.Event, error) {
	return s.SendEventAlso(ctx, p, nil)
}

// AlsoInTx is work a caller wants committed atomically with a local event, such as the client
// transaction id that makes a retried send return the same event.
type AlsoInTx func(ctx context.Context, tx *storage.Tx, ev *event.Event) error

// SendEventAlso is SendEvent that also runs also (if not nil) inside the transaction storing the
// event: both commit, or neither does.
//
// Local events into one room are committed in groups: a send that finds the room busy queues
// its event, and whoever holds the room's lock next builds every queued event and commits them
// all in one transaction (see commitQueued). One sender at a time pays one transaction per
// event as before; ten senders into one room share the cost of a transaction, which is most
// of the cost of an event (issue 9).
func (s *Server) SendEventAlso(ctx context.Context, p event.Proto, also AlsoInTx) (*event.Event, error) {
	if p.Type == auth.TypeCreate {
		return nil, fmt.Errorf("%w: m.room.create is sent by CreateRoom only", ErrInvalid)
	}
	if !s.isLocalUser(p.Sender) {
		return nil, fmt.Errorf("%w: sender %q is not a user of this server", ErrInvalid, p.Sender)
	}
	req := &sendReq{p: p, also: also, done: make(chan struct{})}
	slot, release := s.acquireSlot(p.RoomID, req)
	select {
	case slot.lock <- struct{}{}:
		select {
		case <-req.done: // the lock's previous holder committed it
		default:
			s.commitQueued(context.WithoutCancel(ctx), slot, p.RoomID)
		}
		<-slot.lock
	case <-req.done:
	case <-ctx.Done():
		s.mu.Lock()
		i := slices.Index(slot.queue, req)
		if i >= 0 {
			slot.queue = slices.Delete(slot.queue, i, i+1)
		}
		s.mu.Unlock()
		if i >= 0 {
			release()
			return nil, ctx.Err()
		}
		<-req.done // taken by a committer: its outcome is the answer
	}
	release()
	return req.ev, req.err
}

// sendReq is a local event waiting in its room's queue; ev and err are set before done closes.
type sendReq struct {
	p    event.Proto
	also AlsoInTx
	ev   *event.Event
	err  error
	done chan struct{}
}

// commitQueued builds every event queued in a room and commits them in one transaction; the
// caller holds the room's lock. An event the auth rules refuse fails alone. If the transaction
// fails, each event is tried again in a transaction of its own, so that one event's failure
// (another process recording the same client transaction id first, say) is its own.
func (s *Server) commitQueued(ctx context.Context, slot *roomSlot, roomID string) {
	s.mu.Lock()
	batch := slot.queue
	slot.queue = nil
	s.mu.Unlock()
	defer func() {
		for _, r := range batch {
			close(r.done)
		}
	}()
	if len(batch) == 0 {
		return
	}
	accepted, err := s.commitSends(ctx, slot, roomID, batch)
	if err == nil || len(batch) == 1 {
		return
	}
	for _, r := range accepted {
		_, _ = s.commitSends(ctx, slot, roomID, []*sendReq{r})
	}
}

// commitSends builds the events of reqs over the room's state and commits those the auth rules
// allow (accepted) in one transaction, setting each request's outcome.
func (s *Server) commitSends(ctx context.Context, slot *roomSlot, roomID string, reqs []*sendReq) (accepted []*sendReq, err error) {
	rs, err := s.loadRoom(ctx, slot, roomID)
	if err != nil {
		for _, r := range reqs {
			r.ev, r.err = nil, err
		}
		return nil, err
	}
	w := newWork(rs)
	for _, r := range reqs {
		r.ev, r.err = s.addLocal(ctx, w, r.p)
		if r.err == nil {
			accepted = append(accepted, r)
		}
	}
	if len(accepted) == 0 {
		return nil, nil
	}
	w.also = func(ctx context.Context, tx *storage.Tx) error {
		for _, r := range accepted {
			if r.also != nil {
				if err := r.also(ctx, tx, r.ev); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := s.commit(ctx, w); err != nil {
		for _, r := range accepted {
			r.ev, r.err = nil, err
		}
		return accepted, err
	}
	return accepted, nil
}

// withRoom runs fn with the room locked and loaded, then commits what fn staged.
func (s *Server) withRoom(ctx context.Context, roomID string, fn func(w *roomWork) error) error {
	slot, unlock, err := s.lockRoom(ctx, roomID)
	if err != nil {
		return err
	}
	defer unlock()
	rs, err := s.loadRoom(ctx, slot, roomID)
	if err != nil {
		return err
	}
	w := newWork(rs)
	if err := fn(w); err != nil {
		return err
	}
	return s.commit(ctx, w)
}

// referenceHashes fills p.PrevEventHashes for room versions 1 and 2, whose PDUs repeat the
// reference hash of every prev and auth event next to its id.
func (s *Server) referenceHashes(ctx context.Context, p *event.Proto, authRefs, prev []*eventRef) error {
	refs := append(slices.Clone(authRefs), prev...)
	if err := s.load(ctx, refs...); err != nil {
		return err
	}
	p.PrevEventHashes = make(map[string]string, len(refs))
	for _, r := range refs {
		h, err := r.ev.ReferenceHash()
		if err != nil {
			return fmt.Errorf("roomserver: reference hash of %s: %w", r.id, err)
		}
		p.PrevEventHashes[r.id] = keys.EncodeBase64(h[:])
	}
	return nil
}
