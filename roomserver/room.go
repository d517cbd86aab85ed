package roomserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"myelin/roomserver/event"
	"myelin/storage"
)

// roomSlot serialises the input of one room: whoever holds lock is the room's one writer, and
// owns state, the room's committed state as cached in memory.
type roomSlot struct {
	lock  chan struct{}
	state *roomState // nil until loaded; replaced only by the lock holder
	// refs counts who holds or waits for lock, lastUse when it was last asked for (a tick of
	// Server.useClock); both guarded by Server.mu.
	refs    int
	lastUse uint64
	// queue holds local events waiting to be committed together (SendEventAlso); guarded by
	// Server.mu.
	queue []*sendReq
}

// eventRef is an event of a room as input sees it. nid is 0 until the event is committed; ev
// is loaded on first use, so a room of 100,000 members keeps 100,000 small refs, not events.
type eventRef struct {
	nid   storage.EventNID
	id    string
	depth int64
	ev    *event.Event
}

// roomState is the committed state of a room, cached behind the room's lock and changed only
// after a commit, so that an event refused or rolled back leaves it as it was.
type roomState struct {
	nid         storage.RoomNID
	id          string
	version     event.RoomVersion
	snapshot    storage.SnapshotNID
	state       map[event.StateTuple]*eventRef
	extremities []*eventRef
}

// lockLoaded takes the input lock of a room and loads its state; the caller must call the
// returned unlock.
func (s *Server) lockLoaded(ctx context.Context, roomID string) (*roomState, func(), error) {
	slot, unlock, err := s.lockRoom(ctx, roomID)
	if err != nil {
		return nil, nil, err
	}
	rs, err := s.loadRoom(ctx, slot, roomID)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return rs, unlock, nil
}

// maxIdleRooms bounds the rooms whose state stays cached while nobody uses them: beyond it, the
// least recently used idle rooms are dropped (and read again from storage on next use).
const maxIdleRooms = 10_000

// lockRoom takes the input lock of a room; the caller must call the returned unlock. A slot
// lives in s.rooms while anyone holds or waits for it; after that, a room that turned out not
// to exist is dropped at once (so asking about made-up room ids costs no memory), and a known
// room stays cached until evictIdle drops it.
func (s *Server) lockRoom(ctx context.Context, roomID string) (*roomSlot, func(), error) {
	slot, release := s.acquireSlot(roomID, nil)
	select {
	case slot.lock <- struct{}{}:
		return slot, func() { <-slot.lock; release() }, nil
	case <-ctx.Done():
		release()
		return nil, nil, ctx.Err()
	}
}

// acquireSlot returns the slot of a room, counted as used until release is called, with send
// (if not nil) added to its queue of local events.
func (s *Server) acquireSlot(roomID string, send *sendReq) (*roomSlot, func()) {
	s.mu.Lock()
	slot := s.rooms[roomID]
	if slot == nil {
		slot = &roomSlot{lock: make(chan struct{}, 1)}
		s.rooms[roomID] = slot
	}
	slot.refs++
	s.useClock++
	slot.lastUse = s.useClock
	if send != nil {
		slot.queue = append(slot.queue, send)
	}
	s.mu.Unlock()
	return slot, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		slot.refs--
		if slot.refs == 0 && slot.state == nil {
			delete(s.rooms, roomID)
		}
		if len(s.rooms) > maxIdleRooms {
			s.evictIdle()
		}
	}
}

// evictIdle drops the least recently used idle rooms until a tenth of maxIdleRooms is free, so
// that it runs once per that many new rooms, not on every unlock. The caller holds s.mu.
func (s *Server) evictIdle() {
	idle := make([]string, 0, len(s.rooms))
	for id, slot := range s.rooms {
		if slot.refs == 0 {
			idle = append(idle, id)
		}
	}
	slices.SortFunc(idle, func(a, b string) int { return cmp.Compare(s.rooms[a].lastUse, s.rooms[b].lastUse) })
	for _, id := range idle {
		if len(s.rooms) <= maxIdleRooms*9/10 {
			break
		}
		delete(s.rooms, id)
	}
}

// loadRoom returns the cached state of a room, reading it from storage on first use. The
// caller holds the room's lock. ErrNotFound if the room is unknown.
func (s *Server) loadRoom(ctx context.Context, slot *roomSlot, roomID string) (*roomState, error) {
	if slot.state != nil {
		return slot.state, nil
	}
	var rs *roomState
	err := s.db.WithReadTx(ctx, func(r storage.Reader) error {
		room, err := storage.GetRoom(ctx, r, roomID)
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%w: room %s", ErrNotFound, roomID)
		}
		if err != nil {
			return err
		}
		v, err := event.Version(room.Version)
		if err != nil {
			return err
		}
		rs = &roomState{nid: room.NID, id: roomID, version: v, snapshot: room.CurrentSnapshot}
		entries, err := storage.CurrentState(ctx, r, room.NID)
		if err != nil {
			return err
		}
		rs.state = make(map[event.StateTuple]*eventRef, len(entries))
		for _, e := range entries {
			t := event.StateTuple{Type: e.EventType, StateKey: e.StateKey}
			rs.state[t] = &eventRef{nid: e.Event, id: e.EventID}
			s.intern.add(t, e.Key)
		}
		ext, err := storage.ForwardExtremities(ctx, r, room.NID)
		if err != nil {
			return err
		}
		recs, err := storage.EventsByNID(ctx, r, ext)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			ev, err := s.parse(rec)
			if err != nil {
				return err
			}
			rs.extremities = append(rs.extremities, &eventRef{nid: rec.NID, id: rec.EventID, depth: rec.Depth, ev: ev})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slot.state = rs
	return rs, nil
}

// parse turns a stored event back into an Event. Stored events were validated on the way in.
func (s *Server) parse(rec storage.EventRecord) (*event.Event, error) {
	if rec.JSON == nil {
		return nil, fmt.Errorf("roomserver: event %s has no body", rec.EventID)
	}
	room, err := s.roomVersionByNID(rec.Room)
	if err != nil {
		return nil, err
	}
	ev, err := event.Parse(rec.JSON, room)
	if err != nil {
		return nil, fmt.Errorf("roomserver: stored event %s: %w", rec.EventID, err)
	}
	return ev, nil
}

// roomVersionByNID is the version of a room by short id, from the cache of loaded rooms.
func (s *Server) roomVersionByNID(nid storage.RoomNID) (event.RoomVersion, error) {
	s.mu.Lock()
	v, ok := s.roomVersions[nid]
	s.mu.Unlock()
	if ok {
		return v, nil
	}
	room, err := storage.GetRoomByNID(context.Background(), s.db, nid)
	if err != nil {
		return event.RoomVersion{}, err
	}
	v, err = event.Version(room.Version)
	if err != nil {
		return event.RoomVersion{}, err
	}
	s.mu.Lock()
	s.roomVersions[nid] = v
	s.mu.Unlock()
	return v, nil
}

// load fills in the events of refs that are not loaded yet, in one read.
func (s *Server) load(ctx context.Context, refs ...*eventRef) error {
	var nids []storage.EventNID
	for _, r := range refs {
		if r != nil && r.ev == nil {
			nids = append(nids, r.nid)
		}
	}
	if len(nids) == 0 {
		return nil
	}
	recs, err := storage.EventsByNID(ctx, s.db, nids)
	if err != nil {
		return err
	}
	byNID := make(map[storage.EventNID]*event.Event, len(recs))
	for _, rec := range recs {
		ev, err := s.parse(rec)
		if err != nil {
			return err
		}
		byNID[rec.NID] = ev
	}
	for _, r := range refs {
		if r != nil && r.ev == nil {
			if r.ev = byNID[r.nid]; r.ev == nil {
				return fmt.Errorf("roomserver: event %d vanished from storage", r.nid)
			}
		}
	}
	return nil
}

// sortedExtremities returns the extremities newest first, as prev_events are chosen.
func sortedExtremities(ext []*eventRef) []*eventRef {
	out := slices.Clone(ext)
	slices.SortFunc(out, func(a, b *eventRef) int {
		if a.depth != b.depth {
			if a.depth > b.depth {
				return -1
			}
			return 1
		}
		return int(b.nid - a.nid)
	})
	return out
}
