package roomserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Queries the federation server answers other servers with. Like the other queries they read
// what is committed, without taking a room's lock.

// ErrStateUnknown: the event is stored, but not with a state this server can vouch for (an
// outlier, or a rejected event).
var ErrStateUnknown = errors.New("roomserver: state at the event is unknown")

// maxFederationEvents bounds what one backfill or get_missing_events answer walks, whatever
// limit the asking server chose.
const maxFederationEvents = 100

// JoinedServers returns the servers with at least one user joined to the room now, sorted.
func (s *Server) JoinedServers(ctx context.Context, roomID string) ([]string, error) {
	members, err := s.Members(ctx, roomID, "join")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range members {
		if u, err := event.ParseUserID(m); err == nil && !slices.Contains(out, string(u.Domain())) {
			out = append(out, string(u.Domain()))
		}
	}
	slices.Sort(out)
	return out, nil
}

// ServerInRoom says whether server has a user joined to the room now.
func (s *Server) ServerInRoom(ctx context.Context, roomID, server string) (bool, error) {
	servers, err := s.JoinedServers(ctx, roomID)
	return slices.Contains(servers, server), err
}

// FederationEvent returns a stored event of any room with what federation needs to know
// about it; ErrNotFound if it is not stored.
func (s *Server) eventRecord(ctx context.Context, r storage.Reader, eventID string) (storage.EventRecord, error) {
	rec, err := storage.EventByID(ctx, r, eventID)
	if errors.Is(err, storage.ErrNotFound) {
		return rec, fmt.Errorf("%w: event %s", ErrNotFound, eventID)
	}
	return rec, err
}

// roomEventRecord returns the stored record of an event of a room; ErrNotFound if the event is
// not stored or not in the room.
func (s *Server) roomEventRecord(ctx context.Context, r storage.Reader, roomID, eventID string) (storage.EventRecord, error) {
	rec, err := s.eventRecord(ctx, r, eventID)
	if err != nil {
		return rec, err
	}
	room, err := s.room(ctx, r, roomID)
	if err != nil {
		return rec, err
	}
	if rec.Room != room.NID {
		return rec, fmt.Errorf("%w: event %s is not in %s", ErrNotFound, eventID, roomID)
	}
	return rec, nil
}

// StateForFederation returns the state of a room before an event and the auth chain of that
// state, as /state and /state_ids answer. ErrNotFound if the event is not an event of the
// room; ErrStateUnknown if this server does not know the state at it.
func (s *Server) StateForFederation(ctx context.Context, roomID, eventID string) (state, authChain []*event.Event, err error) {
	err = s.db.WithReadTx(ctx, func(r storage.Reader) error {
		rec, err := s.roomEventRecord(ctx, r, roomID, eventID)
		if err != nil {
			return err
		}
		if rec.Outlier || rec.Rejected || rec.StateBefore == 0 {
			return fmt.Errorf("%w: %s", ErrStateUnknown, eventID)
		}
		nids, recs, err := snapshotEvents(ctx, r, rec.StateBefore)
		if err != nil {
			return err
		}
		if state, err = s.parseAll(recs); err != nil {
			return err
		}
		authChain, err = s.authChainOf(ctx, r, nids)
		return err
	})
	return state, authChain, err
}

// AuthChainForFederation returns the auth chain of an event of a room, as /event_auth
// answers: every event reachable through auth_events, the event itself excluded.
func (s *Server) AuthChainForFederation(ctx context.Context, roomID, eventID string) ([]*event.Event, error) {
	var out []*event.Event
	err := s.db.WithReadTx(ctx, func(r storage.Reader) error {
		rec, err := s.roomEventRecord(ctx, r, roomID, eventID)
		if err != nil {
			return err
		}
		out, err = s.authChainOf(ctx, r, []storage.EventNID{rec.NID})
		return err
	})
	return out, err
}

// AuthChain returns the union of the auth chains of events given by id, the given events
// excluded unless one is in another's chain. Unknown ids are skipped.
func (s *Server) AuthChain(ctx context.Context, eventIDs []string) ([]*event.Event, error) {
	var out []*event.Event
	err := s.db.WithReadTx(ctx, func(r storage.Reader) error {
		recs, err := storage.EventsByID(ctx, r, eventIDs)
		if err != nil {
			return err
		}
		nids := make([]storage.EventNID, len(recs))
		for i, rec := range recs {
			nids[i] = rec.NID
		}
		out, err = s.authChainOf(ctx, r, nids)
		return err
	})
	return out, err
}

func (s *Server) authChainOf(ctx context.Context, r storage.Reader, nids []storage.EventNID) ([]*event.Event, error) {
	chain, err := storage.AuthChain(ctx, r, nids)
	if err != nil {
		return nil, err
	}
	recs, err := storage.EventsByNID(ctx, r, chain)
	if err != nil {
		return nil, err
	}
	sortRecords(recs)
	return s.parseAll(recs)
}

// sortRecords orders events by depth, then by short id, so that answers are stable and a
// receiver can process them in order.
func sortRecords(recs []storage.EventRecord) {
	slices.SortFunc(recs, func(a, b storage.EventRecord) int {
		return cmp.Or(cmp.Compare(a.Depth, b.Depth), cmp.Compare(a.NID, b.NID))
	})
}

// Backfill returns up to limit events of a room preceding the given ones, the given ones
// included, walking prev_events newest (deepest) first, as /backfill answers. Events this
// server does not have, rejected events and events of other rooms are skipped.
func (s *Server) Backfill(ctx context.Context, roomID string, from []string, limit int) ([]*event.Event, error) {
	limit = min(max(limit, 0), maxFederationEvents)
	return s.walkPrev(ctx, roomID, from, nil, limit, 0, true)
}

// MissingEvents returns up to limit events of a room that precede latest and are not
// earliest nor before them, with depth at least minDepth, breadth-first from latest, as
// /get_missing_events answers. The latest events themselves are not included. The result is
// in depth order, oldest first.
func (s *Server) MissingEvents(ctx context.Context, roomID string, earliest, latest []string, limit int, minDepth int64) ([]*event.Event, error) {
	limit = min(max(limit, 0), maxFederationEvents)
	return s.walkPrev(ctx, roomID, latest, earliest, limit, minDepth, false)
}

func (s *Server) walkPrev(ctx context.Context, roomID string, start, stop []string, limit int, minDepth int64, includeStart bool) ([]*event.Event, error) {
	if limit == 0 {
		return nil, nil
	}
	var out []storage.EventRecord
	err := s.db.WithReadTx(ctx, func(r storage.Reader) error {
		room, err := s.room(ctx, r, roomID)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, id := range stop {
			seen[id] = true
		}
		var frontier []storage.EventRecord
		visit := func(ids []string) error {
			var fresh []string
			for _, id := range ids {
				if !seen[id] {
					seen[id] = true
					fresh = append(fresh, id)
				}
			}
			recs, err := storage.EventsByID(ctx, r, fresh)
			if err != nil {
				return err
			}
			for _, rec := range recs {
				if rec.Room == room.NID && !rec.Rejected && !rec.Outlier && rec.Depth >= minDepth {
					frontier = append(frontier, rec)
				}
			}
			return nil
		}
		if includeStart {
			if err := visit(start); err != nil {
				return err
			}
		} else {
			recs, err := storage.EventsByID(ctx, r, start)
			if err != nil {
				return err
			}
			var nids []storage.EventNID
			for _, rec := range recs {
				seen[rec.EventID] = true
				if rec.Room == room.NID {
					nids = append(nids, rec.NID)
				}
			}
			prevs, err := storage.PrevEventIDs(ctx, r, nids)
			if err != nil {
				return err
			}
			for _, n := range nids {
				if err := visit(prevs[n]); err != nil {
					return err
				}
			}
		}
		for len(frontier) > 0 && len(out) < limit {
			// Deepest first: the events closest to where the asking server stands.
			slices.SortFunc(frontier, func(a, b storage.EventRecord) int {
				return cmp.Or(cmp.Compare(b.Depth, a.Depth), cmp.Compare(b.NID, a.NID))
			})
			next := frontier[0]
			frontier = frontier[1:]
			out = append(out, next)
			prevs, err := storage.PrevEventIDs(ctx, r, []storage.EventNID{next.NID})
			if err != nil {
				return err
			}
			if err := visit(prevs[next.NID]); err != nil {
				return err
			}
		}
		// Events that retention purged go out as their stubs: the walk must not break there.
		out, err = storage.WithPurgedStubs(ctx, r, out)
		return err
	})
	if err != nil {
		return nil, err
	}
	sortRecords(out)
	return s.parseAll(out)
}

// EventNearTimestamp returns the timeline event of a room closest to ts in a direction, as
// /timestamp_to_event answers; ErrNotFound if there is none.
func (s *Server) EventNearTimestamp(ctx context.Context, roomID string, ts int64, backwards bool) (*event.Event, error) {
	room, err := s.room(ctx, s.db, roomID)
	if err != nil {
		return nil, err
	}
	rec, err := storage.EventNearTimestamp(ctx, s.db, room.NID, ts, backwards)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no event near %d", ErrNotFound, ts)
	}
	if err != nil {
		return nil, err
	}
	recs, err := storage.WithPurgedStubs(ctx, s.db, []storage.EventRecord{rec}) // retention.go
	if err != nil {
		return nil, err
	}
	return s.parse(recs[0])
}

// ServerVisibleEvents returns the events among evs that server may see, in their order: an
// event is visible to a server if any of its users could see it (server-server API, history
// visibility applied per server). With the state before each event:
//
//   - world_readable: visible;
//   - a user of the server was joined (or, for their own membership event, is joined after
//     it): visible;
//   - invited, and a user of the server was invited: visible;
//   - shared, and a user of the server is joined now, so could read back to the event: visible;
//   - otherwise not.
//
// Outliers and rejected events are never visible: this server cannot vouch for their state.
func (s *Server) ServerVisibleEvents(ctx context.Context, server string, evs []*event.Event) ([]*event.Event, error) {
	return s.visibleEvents(ctx, evs, &serverVisibility{server: server, intern: &s.intern, joinedNow: map[storage.RoomNID]bool{}})
}

// serverVisibility is the visibility policy for a server: the memberships of all its users count.
type serverVisibility struct {
	server    string
	intern    *interner
	joinedNow map[storage.RoomNID]bool
}

func (v *serverVisibility) stateEvents(ctx context.Context, r storage.Reader, snap storage.SnapshotNID) ([]storage.EventNID, error) {
	entries, err := storage.SnapshotState(ctx, r, snap)
	if err != nil {
		return nil, err
	}
	keys := make([]storage.StateKey, len(entries))
	for i, e := range entries {
		keys[i] = e.Key
	}
	tuples, err := v.intern.tuples(ctx, r, keys)
	if err != nil {
		return nil, err
	}
	var wanted []storage.EventNID
	for _, e := range entries {
		t := tuples[e.Key]
		switch {
		case t.Type == typeHistoryVisibility && t.StateKey == "":
			wanted = append(wanted, e.Event)
		case t.Type == auth.TypeMember && userOnServer(t.StateKey, v.server):
			wanted = append(wanted, e.Event)
		}
	}
	return wanted, nil
}

func (v *serverVisibility) allow(ctx context.Context, r storage.Reader, ev *event.Event, rec storage.EventRecord, st historyState) (bool, error) {
	// The state before the create event is empty, not unknown: it is history like any event.
	if rec.StateBefore == 0 && ev.Type() != auth.TypeCreate {
		return false, nil
	}
	if ev.Type() == typeHistoryVisibility && ev.StateKeyEquals("") &&
		historyVisibility(ev.JSON()) == VisibilityWorldReadable {
		st.visibility = VisibilityWorldReadable
	}
	if ev.Type() == auth.TypeMember && ev.StateKey() != nil && userOnServer(*ev.StateKey(), v.server) {
		if m, _ := ev.Membership(); m == "join" {
			st.joined = true
		} else if m == "invite" {
			st.invited = true
		}
	}
	if st.visibility == VisibilityWorldReadable || st.joined || (st.visibility == VisibilityInvited && st.invited) {
		return true, nil
	}
	if st.visibility != VisibilityShared {
		return false, nil
	}
	return v.inRoomNow(ctx, r, rec.Room)
}

// inRoomNow reports whether a user of the server is joined to the room now, so could read back
// through "shared" history.
func (v *serverVisibility) inRoomNow(ctx context.Context, r storage.Reader, room storage.RoomNID) (bool, error) {
	if joined, ok := v.joinedNow[room]; ok {
		return joined, nil
	}
	members, err := storage.RoomMembers(ctx, r, room, "join")
	if err != nil {
		return false, err
	}
	joined := slices.ContainsFunc(members, func(m string) bool { return userOnServer(m, v.server) })
	v.joinedNow[room] = joined
	return joined, nil
}

func userOnServer(userID, server string) bool {
	u, err := event.ParseUserID(userID)
	return err == nil && string(u.Domain()) == server
}
