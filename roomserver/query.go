package roomserver

import (
	"context"
	"errors"
	"fmt"

	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Queries read what is committed, from the reader pool, without taking any room's lock.

// RoomVersion returns the version of a room; ErrNotFound if the room is unknown.
func (s *Server) RoomVersion(ctx context.Context, roomID string) (event.RoomVersion, error) {
	room, err := s.room(ctx, s.db, roomID)
	if err != nil {
		return event.RoomVersion{}, err
	}
	return event.Version(room.Version)
}

func (s *Server) room(ctx context.Context, r storage.Reader, roomID string) (storage.Room, error) {
	room, err := storage.GetRoom(ctx, r, roomID)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Room{}, fmt.Errorf("%w: room %s", ErrNotFound, roomID)
	}
	return room, err
}

// Event returns a stored event; ErrNotFound if this server does not have it, or has only the
// stub retention left of it (retention.go; FederationEvent serves stubs).
func (s *Server) Event(ctx context.Context, eventID string) (*event.Event, error) {
	rec, err := storage.EventByID(ctx, s.db, eventID)
	if errors.Is(err, storage.ErrNotFound) || err == nil && rec.JSON == nil {
		return nil, fmt.Errorf("%w: event %s", ErrNotFound, eventID)
	}
	if err != nil {
		return nil, err
	}
	return s.parse(rec)
}

func (s *Server) parseAll(recs []storage.EventRecord) ([]*event.Event, error) {
	out := make([]*event.Event, 0, len(recs))
	for _, rec := range recs {
		ev, err := s.parse(rec)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}

// CurrentState returns the current state of a room, or only its events of the given types.
func (s *Server) CurrentState(ctx context.Context, roomID string, types ...string) ([]*event.Event, error) {
	room, err := s.room(ctx, s.db, roomID)
	if err != nil {
		return nil, err
	}
	entries, err := storage.CurrentState(ctx, s.db, room.NID, types...)
	if err != nil {
		return nil, err
	}
	nids := make([]storage.EventNID, len(entries))
	for i, e := range entries {
		nids[i] = e.Event
	}
	recs, err := storage.EventsByNID(ctx, s.db, nids)
	if err != nil {
		return nil, err
	}
	return s.parseAll(recs)
}

// CurrentStateEvent returns one event of a room's current state; ErrNotFound if the room or
// the entry does not exist.
func (s *Server) CurrentStateEvent(ctx context.Context, roomID, typ, stateKey string) (*event.Event, error) {
	room, err := s.room(ctx, s.db, roomID)
	if err != nil {
		return nil, err
	}
	rec, err := storage.CurrentStateEvent(ctx, s.db, room.NID, typ, stateKey)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s %q in %s", ErrNotFound, typ, stateKey, roomID)
	}
	if err != nil {
		return nil, err
	}
	return s.parse(rec)
}

// StateBefore returns the state of the room before an event; StateAfter the state after it,
// which differs for an accepted state event.
func (s *Server) StateBefore(ctx context.Context, eventID string) ([]*event.Event, error) {
	return s.stateAt(ctx, eventID, false)
}

// StateAfter: see StateBefore.
func (s *Server) StateAfter(ctx context.Context, eventID string) ([]*event.Event, error) {
	return s.stateAt(ctx, eventID, true)
}

func (s *Server) stateAt(ctx context.Context, eventID string, after bool) ([]*event.Event, error) {
	var out []*event.Event
	err := s.db.WithReadTx(ctx, func(r storage.Reader) error {
		rec, err := storage.EventByID(ctx, r, eventID)
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%w: event %s", ErrNotFound, eventID)
		}
		if err != nil {
			return err
		}
		snap := rec.StateBefore
		if after {
			snap = rec.StateAfter
		}
		_, recs, err := snapshotEvents(ctx, r, snap)
		if err != nil {
			return err
		}
		out, err = s.parseAll(recs)
		return err
	})
	return out, err
}

// Membership returns a user's current membership of a room, "" if they have none.
func (s *Server) Membership(ctx context.Context, roomID, userID string) (string, error) {
	room, err := s.room(ctx, s.db, roomID)
	if err != nil {
		return "", err
	}
	m, err := storage.GetMembership(ctx, s.db, room.NID, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	}
	return m.Membership, err
}

// Members returns the users with the given membership of a room now, sorted.
func (s *Server) Members(ctx context.Context, roomID, membership string) ([]string, error) {
	room, err := s.room(ctx, s.db, roomID)
	if err != nil {
		return nil, err
	}
	return storage.RoomMembers(ctx, s.db, room.NID, membership)
}

// MembersAt returns the users with the given membership in the state before an event.
func (s *Server) MembersAt(ctx context.Context, eventID, membership string) ([]string, error) {
	state, err := s.StateBefore(ctx, eventID)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ev := range state {
		if ev.Type() != auth.TypeMember {
			continue
		}
		if m, err := ev.Membership(); err == nil && m == membership {
			out = append(out, *ev.StateKey())
		}
	}
	return out, nil
}

// JoinedRooms returns the rooms a user is joined to now, sorted.
func (s *Server) JoinedRooms(ctx context.Context, userID string) ([]string, error) {
	return storage.RoomsOfUser(ctx, s.db, userID, "join")
}

// RoomsWithMembership returns the rooms where a user has the given membership now (invites,
// knocks, ...), sorted.
func (s *Server) RoomsWithMembership(ctx context.Context, userID, membership string) ([]string, error) {
	return storage.RoomsOfUser(ctx, s.db, userID, membership)
}

// snapshotEvents reads the events of a full state snapshot, and their short ids.
func snapshotEvents(ctx context.Context, r storage.Reader, snap storage.SnapshotNID) ([]storage.EventNID, []storage.EventRecord, error) {
	entries, err := storage.SnapshotState(ctx, r, snap)
	if err != nil {
		return nil, nil, err
	}
	nids := make([]storage.EventNID, len(entries))
	for i, e := range entries {
		nids[i] = e.Event
	}
	recs, err := storage.EventsByNID(ctx, r, nids)
	if err != nil {
		return nil, nil, err
	}
	return nids, recs, nil
}
