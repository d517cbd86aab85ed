package roomserver

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Backfill outbound: the history of a room that precedes what this server has of it (a room
// joined over federation starts at the join; a gap bridged by input_gap.go skips what is in
// it) is fetched from other servers when a client paginates into it. Backfilled events are
// history: each is checked (signatures and hashes by federation; auth against its auth events
// and against the state before it here), stored on the timeline with a negative stream
// position (storage/backfill.go) and the state before it, and never changes the room's
// current state, memberships or forward extremities. Clients see them through the same
// history visibility rules as any event.

const (
	// minBackfill and maxBackfill bound the events asked for in one /backfill request.
	minBackfill = 10
	maxBackfill = 100
	// maxBackfillExtremities bounds the extremities named in one request.
	maxBackfillExtremities = 5
	// maxBackfillServers bounds the servers tried for one request.
	maxBackfillServers = 3
	// maxStateFetches bounds the /state_ids requests one backfill makes, for events whose prev
	// events are not on the timeline.
	maxStateFetches = 3
	// backfillTimeout bounds the exchange with one server.
	backfillTimeout = 20 * time.Second
	// backfillRetryAfter is how long an extremity that no server could be asked about is left
	// alone, so that a dead server does not stall every page.
	backfillRetryAfter = 5 * time.Minute
)

// BackfillBefore fetches history of a room from other servers where its timeline here cites
// events this server lacks (backfill extremities) from events at a depth in [minDepth,
// maxDepth], about limit events, and returns how many events it placed on the timeline. No
// extremity there (the common case, one indexed read) or no federation: 0. Servers that fail
// are not an error: the page is served with what this server has.
func (s *Server) BackfillBefore(ctx context.Context, roomID string, minDepth, maxDepth int64, limit int) (int, error) {
	h := s.history()
	if h == nil {
		return 0, nil
	}
	room, err := s.room(ctx, s.db, roomID)
	if err != nil {
		return 0, err
	}
	now := s.opts.Now()
	exts, err := storage.BackfillExtremities(ctx, s.db, room.NID, minDepth, maxDepth,
		now.Add(-backfillRetryAfter).UnixMilli(), maxBackfillExtremities)
	if err != nil || len(exts) == 0 {
		return 0, err
	}
	v, err := event.Version(room.Version)
	if err != nil {
		return 0, err
	}
	ids := make([]string, len(exts))
	for i, e := range exts {
		ids[i] = e.EventID
	}
	// Extremities another path has filled in since (a transaction carrying them) are done.
	on, err := storage.TimelineAmong(ctx, s.db, ids)
	if err != nil {
		return 0, err
	}
	var done, want []string
	for _, id := range ids {
		if on[id] {
			done = append(done, id)
		} else {
			want = append(want, id)
		}
	}
	if len(done) > 0 {
		if err := s.db.WithTx(ctx, func(tx *storage.Tx) error { return tx.RemoveBackfillExtremities(ctx, room.NID, done) }); err != nil {
			return 0, err
		}
	}
	if len(want) == 0 {
		return 0, nil
	}
	servers, err := s.backfillServers(ctx, room.NID, roomID)
	if err != nil {
		return 0, err
	}
	limit = min(max(limit, minBackfill), maxBackfill)
	var (
		evs    []*event.Event
		server string
		asked  bool
	)
	for _, srv := range servers {
		got, err := func() ([]*event.Event, error) {
			ctx, cancel := context.WithTimeout(ctx, backfillTimeout)
			defer cancel()
			return h.Backfill(ctx, srv, roomID, v, want, limit)
		}()
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			continue
		}
		evs, server, asked = got, srv, true
		break
	}
	if !asked {
		// No server answered: try again later, not on every page.
		return 0, s.db.WithTx(ctx, func(tx *storage.Tx) error {
			return tx.MarkBackfillFailed(ctx, room.NID, want, now.UnixMilli())
		})
	}
	added, err := s.storeBackfill(ctx, h, server, room.NID, v, evs, limit)
	if err != nil {
		return added, err
	}
	// A server answered: what it did not give is not to be had (it may not show it to us,
	// or the chain is bogus), and what was rejected stays out. Forgetting them bounds the
	// work, whatever the chain. What it gave but this request left out (past the bound on
	// state fetches) is asked for again by the next page.
	on, err = storage.TimelineAmong(ctx, s.db, want)
	if err != nil {
		return added, err
	}
	stored, err := storage.EventsByID(ctx, s.db, want)
	if err != nil {
		return added, err
	}
	var givenUp []string
	for _, id := range want {
		returned := slices.ContainsFunc(evs, func(ev *event.Event) bool { return ev.ID() == id })
		_, isStored := findRecord(stored, id)
		if !on[id] && (!returned || isStored) {
			givenUp = append(givenUp, id)
		}
	}
	if len(givenUp) > 0 {
		err = s.db.WithTx(ctx, func(tx *storage.Tx) error { return tx.RemoveBackfillExtremities(ctx, room.NID, givenUp) })
	}
	return added, err
}

// backfillServers lists the servers to ask for history: the one this server joined the room
// through, then the others joined to it now, without this one.
func (s *Server) backfillServers(ctx context.Context, room storage.RoomNID, roomID string) ([]string, error) {
	var out []string
	via, err := storage.RoomJoinedVia(ctx, s.db, room)
	if err != nil {
		return nil, err
	}
	if via != "" && via != s.serverName {
		out = append(out, via)
	}
	joined, err := s.JoinedServers(ctx, roomID)
	if err != nil {
		return nil, err
	}
	for _, srv := range joined {
		if srv != s.serverName && !slices.Contains(out, srv) {
			out = append(out, srv)
		}
	}
	return out[:min(len(out), maxBackfillServers)], nil
}

// storeBackfill places the events of a /backfill answer on the timeline, oldest first (by
// depth), at most limit of them, and returns how many it placed.
func (s *Server) storeBackfill(ctx context.Context, h RemoteHistory, server string, room storage.RoomNID, v event.RoomVersion, evs []*event.Event, limit int) (int, error) {
	seen := map[string]bool{}
	var batch []*event.Event
	for _, ev := range evs {
		if ev.Version().ID != v.ID || seen[ev.ID()] {
			continue
		}
		seen[ev.ID()] = true
		batch = append(batch, ev)
	}
	ids := make([]string, len(batch))
	for i, ev := range batch {
		ids[i] = ev.ID()
	}
	on, err := storage.TimelineAmong(ctx, s.db, ids)
	if err != nil {
		return 0, err
	}
	batch = slices.DeleteFunc(batch, func(ev *event.Event) bool { return on[ev.ID()] })
	slices.SortFunc(batch, func(a, b *event.Event) int {
		return cmp.Or(cmp.Compare(a.Depth(), b.Depth()), strings.Compare(a.ID(), b.ID()))
	})
	batch = batch[:min(len(batch), limit)]
	if len(batch) == 0 {
		return 0, nil
	}
	var lowest int64
	if err := s.db.WithTx(ctx, func(tx *storage.Tx) error {
		var err error
		lowest, err = tx.ReserveBackfillPositions(ctx, len(batch))
		return err
	}); err != nil {
		return 0, err
	}
	added, stateFetches := 0, 0
	for i, ev := range batch {
		ok, err := s.backfillOne(ctx, h, server, ev, lowest+int64(i), &stateFetches)
		if err != nil {
			return added, fmt.Errorf("backfilling %s: %w", ev.ID(), err)
		}
		if ok {
			added++
		}
	}
	return added, nil
}

// backfillOne places one backfilled event on the timeline at stream position pos; ok is false
// when it was left out (rejected, or its state could not be had).
func (s *Server) backfillOne(ctx context.Context, h RemoteHistory, server string, ev *event.Event, pos int64, stateFetches *int) (ok bool, err error) {
	roomID := ev.RoomID()
	existing, err := storage.EventByID(ctx, s.db, ev.ID())
	stored := err == nil
	switch {
	case err != nil && !isNotFound(err):
		return false, err
	case stored && (existing.StreamPos != 0 || existing.Rejected || !existing.Outlier):
		return false, nil // on the timeline already, or refused
	}
	if !stored {
		authRecs, err := storage.EventsByID(ctx, s.db, ev.AuthEventIDs())
		if err != nil {
			return false, err
		}
		if len(missingIDs(ev.AuthEventIDs(), authRecs)) > 0 {
			if chain, err := h.EventAuth(ctx, server, roomID, ev.ID(), ev.Version()); err == nil {
				if err := s.storeOutliers(ctx, h, server, chain); err != nil {
					return false, err
				}
			}
		}
	}

	// The state before the event: after its prev events when they are on the timeline here,
	// else as server knows it.
	prevRecs, err := storage.EventsByID(ctx, s.db, ev.PrevEventIDs())
	if err != nil {
		return false, err
	}
	var fetched map[event.StateTuple]*eventRef
	allKnown := len(prevRecs) == len(ev.PrevEventIDs())
	for _, rec := range prevRecs {
		allKnown = allKnown && onTimelineWithState(rec)
	}
	switch {
	case len(ev.PrevEventIDs()) == 0:
		fetched = map[event.StateTuple]*eventRef{} // the create event
	case !allKnown:
		if *stateFetches >= maxStateFetches {
			return false, nil
		}
		*stateFetches++
		fctx, cancel := context.WithTimeout(ctx, backfillTimeout)
		fetched, err = s.remoteStateBefore(fctx, h, server, roomID, ev.Version(), ev.ID())
		cancel()
		if err != nil {
			return false, nil // the server cannot tell: left out
		}
	}

	rs, unlock, err := s.lockLoaded(ctx, roomID)
	if err != nil {
		return false, err
	}
	defer unlock()
	if rec, err := storage.EventByID(ctx, s.db, ev.ID()); err == nil && (rec.StreamPos != 0 || rec.Rejected || !rec.Outlier) {
		return false, nil // placed meanwhile
	} else if err == nil {
		existing, stored = rec, true
	} else if !isNotFound(err) {
		return false, err
	}
	before := fetched
	var known []storage.EventRecord
	if fetched == nil {
		var sets []map[event.StateTuple]*eventRef
		for _, rec := range prevRecs {
			known = append(known, rec)
			st, err := s.snapshotRefs(ctx, rec.StateAfter)
			if err != nil {
				return false, err
			}
			sets = append(sets, st)
		}
		before = sets[0]
		if len(sets) > 1 {
			if before, err = s.resolve(ctx, rs.version, sets); err != nil {
				return false, err
			}
		}
	}
	create := rs.state[createTuple]
	if err := s.load(ctx, create); err != nil {
		return false, err
	}
	in := backfillInput{ev: ev, pos: pos, before: before, known: known}
	if stored {
		// An outlier (the state a join brought): checked against its auth events when stored.
		in.existing = existing.NID
	} else {
		authRecs, err := storage.EventsByID(ctx, s.db, ev.AuthEventIDs())
		if err != nil {
			return false, err
		}
		if len(missingIDs(ev.AuthEventIDs(), authRecs)) > 0 {
			return false, nil
		}
		reason, authNIDs, err := s.checkAuthEvents(rs, create, ev, authRecs)
		if err != nil {
			return false, err
		}
		if ev.Type() == auth.TypeCreate {
			reason = fmt.Errorf("%w: a second create event", auth.ErrNotAllowed)
		}
		if reason == nil {
			reason = s.checkAgainst(ctx, ev, before, create)
		}
		in.rejected, in.authNIDs = reason != nil, authNIDs
	}
	redacted, err := s.commitBackfill(ctx, rs, in)
	if err != nil {
		return false, err
	}
	rs.dropRedactedBodies(redacted)
	return !in.rejected, nil
}

// backfillInput is a checked backfilled event ready to store.
type backfillInput struct {
	ev       *event.Event
	pos      int64
	before   map[event.StateTuple]*eventRef
	known    []storage.EventRecord // its prev events, when all are on the timeline here
	existing storage.EventNID      // its short id when stored as an outlier
	rejected bool
	authNIDs []storage.EventNID
}

// commitBackfill stores a backfilled event with the state before it (and after it, for a state
// event), in one transaction with the backfill extremities it fills and opens. The room's
// current state, memberships and forward extremities stay as they are. It returns the ids of
// the events whose body a redaction pruned.
func (s *Server) commitBackfill(ctx context.Context, rs *roomState, in backfillInput) ([]string, error) {
	ev := in.ev
	ti := txInterner{in: &s.intern}
	var redacted []string
	err := s.db.WithTx(ctx, func(tx *storage.Tx) error {
		var beforeSnap storage.SnapshotNID
		if len(in.known) == 1 {
			beforeSnap = in.known[0].StateAfter
		} else {
			var parent storage.SnapshotNID
			base := map[event.StateTuple]*eventRef{}
			if len(in.known) > 0 {
				parent = in.known[0].StateAfter
				var err error
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
		t, isState := ev.Tuple()
		var key storage.StateKey
		if isState {
			var err error
			if key, err = ti.key(ctx, tx, t); err != nil {
				return err
			}
		}
		nid := in.existing
		if nid == 0 {
			rec := storage.EventRecord{
				Room: rs.nid, EventID: ev.ID(), Type: ev.Type(), StateKey: ev.StateKey(), Sender: ev.Sender(),
				Depth: ev.Depth(), OriginServerTS: ev.OriginServerTS(), StateBefore: beforeSnap, StateAfter: beforeSnap,
				Rejected: in.rejected, JSON: ev.JSON(), TypeNID: key.Type, StateKeyNID: key.StateKey,
			}
			if !in.rejected {
				rec.StreamPos = in.pos
			}
			var err error
			if nid, err = tx.InsertEvent(ctx, rec); err != nil {
				return err
			}
			if err := tx.InsertAuthEdges(ctx, nid, in.authNIDs); err != nil {
				return err
			}
			if err := tx.InsertPrevEdges(ctx, nid, ev.PrevEventIDs()); err != nil {
				return err
			}
			if in.rejected {
				return nil
			}
			if err := indexEvent(ctx, tx, rs.nid, ev, nid, in.pos); err != nil {
				return err
			}
			if redacted, err = s.redactOnStore(ctx, tx, rs.nid, rs.version, rs.state[createTuple].ev, ev, true); err != nil {
				return err
			}
		}
		afterSnap := beforeSnap
		if isState {
			var err error
			if afterSnap, err = tx.CreateSnapshot(ctx, rs.nid, beforeSnap, []storage.StateEntry{{Key: key, Event: nid}}); err != nil {
				return err
			}
		}
		if in.existing != 0 {
			if err := tx.PlaceOnTimeline(ctx, nid, in.pos, beforeSnap, afterSnap); err != nil {
				return err
			}
		} else if afterSnap != beforeSnap {
			if err := tx.SetStateAfter(ctx, nid, afterSnap); err != nil {
				return err
			}
		}
		if err := tx.RemoveBackfillExtremities(ctx, rs.nid, []string{ev.ID()}); err != nil {
			return err
		}
		return recordGaps(ctx, tx, rs.nid, ev.Depth(), ev.PrevEventIDs())
	})
	if err != nil {
		return nil, err
	}
	ti.committed()
	return redacted, nil
}

// recordJoinGap records, in the transaction that stores a room joined over federation, the
// prev events of the join as backfill extremities: the history before the join that
// /messages fetches when a client reads back past it.
func recordJoinGap(ctx context.Context, tx *storage.Tx, room storage.RoomNID, join *event.Event) error {
	return recordGaps(ctx, tx, room, join.Depth(), join.PrevEventIDs())
}

// noteJoinedVia remembers the server a room was joined through, the first to ask for its
// history. It is a hint: failing to store it only changes whom backfill asks first.
func (s *Server) noteJoinedVia(ctx context.Context, roomID, server string) {
	room, err := s.room(ctx, s.db, roomID)
	if err != nil {
		return
	}
	_ = s.db.WithTx(ctx, func(tx *storage.Tx) error { return tx.SetRoomJoinedVia(ctx, room.NID, server) })
}
