package stateres

import (
	"fmt"
	"strings"

	"myelin/roomserver/event"
)

// store memoises what the Loader returned during one resolution, so that every event is fetched
// once, and turns an absent event into ErrMissingEvent.
type store struct {
	l        Loader
	v        event.RoomVersion
	roomID   string
	events   map[string]*event.Event
	rejected map[string]bool // rejection status of the ids asked about so far
}

func newStore(v event.RoomVersion, l Loader) *store {
	return &store{l: l, v: v, events: map[string]*event.Event{}, rejected: map[string]bool{}}
}

// load fetches the events not fetched yet, in one call.
func (s *store) load(ids []string) error {
	var want []string
	seen := map[string]bool{}
	for _, id := range ids {
		if _, ok := s.events[id]; !ok && !seen[id] {
			seen[id] = true
			want = append(want, id)
		}
	}
	if len(want) == 0 {
		return nil
	}
	got, err := s.l.Events(want)
	if err != nil {
		return fmt.Errorf("stateres: loading events: %w", err)
	}
	for _, id := range want {
		e, ok := got[id]
		if !ok || e == nil {
			return fmt.Errorf("%w: %s", ErrMissingEvent, id)
		}
		if e.ID() != id {
			return fmt.Errorf("%w: asked for %s, loader returned %s", ErrBadEvent, id, e.ID())
		}
		if err := s.checkRoom(e); err != nil {
			return err
		}
		s.events[id] = e
	}
	return nil
}

// checkRoom keeps events of other rooms out: state resolution over a mixed set has no meaning,
// and a loader that returns one is broken or being fooled.
func (s *store) checkRoom(e *event.Event) error {
	room := e.RoomID()
	if room == "" {
		// A v12 create event carries no room_id; its id is checked against the room's instead.
		return nil
	}
	if s.roomID == "" {
		s.roomID = room
		return nil
	}
	if room != s.roomID {
		return fmt.Errorf("%w: %s is in room %s, not %s", ErrBadEvent, e.ID(), room, s.roomID)
	}
	return nil
}

func (s *store) get(id string) (*event.Event, error) {
	if e, ok := s.events[id]; ok {
		return e, nil
	}
	if err := s.load([]string{id}); err != nil {
		return nil, err
	}
	return s.events[id], nil
}

// getState is get for an event that must be a state event.
func (s *store) getState(id string) (*event.Event, event.StateTuple, error) {
	e, err := s.get(id)
	if err != nil {
		return nil, event.StateTuple{}, err
	}
	t, ok := e.Tuple()
	if !ok {
		return nil, event.StateTuple{}, fmt.Errorf("%w: %s is not a state event", ErrBadEvent, id)
	}
	return e, t, nil
}

// authEventIDs are the auth events of e as state resolution sees them. From room version 12 the
// create event is never listed, yet it is part of the auth of every other event: its id is
// derived from the room id.
func (s *store) authEventIDs(e *event.Event) []string {
	ids := e.AuthEventIDs()
	if !s.v.RoomIDFromCreateEvent || e.Type() == "m.room.create" && e.StateKeyEquals("") {
		return ids
	}
	create := createEventID(e.RoomID())
	if create == "" {
		return ids
	}
	out := make([]string, 0, len(ids)+1)
	for _, id := range ids {
		if id != create {
			out = append(out, id)
		}
	}
	return append(out, create)
}

// createEventID is the id of the create event of a room whose id is derived from it (v12+):
// both are the same reference hash, with "$" for "!".
func createEventID(roomID string) string {
	if !strings.HasPrefix(roomID, "!") || len(roomID) < 2 {
		return ""
	}
	return "$" + roomID[1:]
}

// authEvents loads the auth events of e and returns them by state key.
func (s *store) authEvents(e *event.Event) (map[event.StateTuple]*event.Event, error) {
	ids := s.authEventIDs(e)
	if err := s.load(ids); err != nil {
		return nil, fmt.Errorf("auth events of %s: %w", e.ID(), err)
	}
	m := make(map[event.StateTuple]*event.Event, len(ids))
	for _, id := range ids {
		ae := s.events[id]
		t, ok := ae.Tuple()
		if !ok {
			return nil, fmt.Errorf("%w: auth event %s of %s is not a state event", ErrBadEvent, id, e.ID())
		}
		m[t] = ae
	}
	return m, nil
}

// loadRejected asks the loader once about the ids not asked about yet.
func (s *store) loadRejected(ids []string) error {
	var want []string
	for _, id := range ids {
		if _, ok := s.rejected[id]; !ok {
			s.rejected[id] = false
			want = append(want, id)
		}
	}
	if len(want) == 0 {
		return nil
	}
	got, err := s.l.Rejected(want)
	if err != nil {
		for _, id := range want {
			delete(s.rejected, id)
		}
		return fmt.Errorf("stateres: loading rejection status: %w", err)
	}
	for _, id := range want {
		if _, ok := got[id]; ok {
			s.rejected[id] = true
		}
	}
	return nil
}
