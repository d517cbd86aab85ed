package roomserver

import (
	"context"
	"errors"
	"fmt"

	"myelin/roomserver/auth"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Redactions take effect in the transaction that stores the second of the two events
// involved: the m.room.redaction, or the event it redacts when the redaction came first (over
// federation nothing orders them). Taking effect means the redacted event's stored body is
// replaced by its redacted form, so that every read (clients, federation, auth, state) sees
// only that, and the content is gone from the database. The redacted event keeps its place in
// the DAG and in the room state.

// redactOnStore is called in the transaction that stored ev, an event of room (version v)
// that is neither rejected nor soft-failed. It records ev if it is a redaction, and applies
// whichever redactions now have both events and are allowed. withPending also looks for
// redactions that arrived before ev. It returns the ids of the events whose body was pruned.
func (s *Server) redactOnStore(ctx context.Context, tx *storage.Tx, room storage.RoomNID, v event.RoomVersion, create, ev *event.Event, withPending bool) ([]string, error) {
	var pruned []string
	if ev.Type() == auth.TypeRedaction && ev.Redacts() != "" {
		if err := tx.InsertRedaction(ctx, ev.ID(), ev.Redacts()); err != nil {
			return nil, err
		}
		target, err := storage.EventByID(ctx, tx, ev.Redacts())
		switch {
		case errors.Is(err, storage.ErrNotFound):
			// Applied when the target arrives.
		case err != nil:
			return nil, err
		default:
			ok, err := s.applyRedaction(ctx, tx, room, v, create, ev, target)
			if err != nil {
				return nil, err
			}
			if ok {
				pruned = append(pruned, target.EventID)
			}
		}
	}
	if !withPending {
		return pruned, nil
	}
	waiting, err := storage.PendingRedactions(ctx, tx, ev.ID())
	if err != nil || len(waiting) == 0 {
		return pruned, err
	}
	recs, err := storage.EventsByID(ctx, tx, waiting)
	if err != nil {
		return nil, err
	}
	prunedEv := false
	for _, rec := range recs {
		if rec.Rejected || rec.SoftFailed || rec.Room != room || rec.JSON == nil {
			continue
		}
		redaction, err := event.Parse(rec.JSON, v)
		if err != nil {
			return nil, fmt.Errorf("roomserver: stored redaction %s: %w", rec.EventID, err)
		}
		// Read the target again each time: an earlier redaction in this loop pruned it.
		target, err := storage.EventByID(ctx, tx, ev.ID())
		if err != nil {
			return nil, err
		}
		ok, err := s.applyRedaction(ctx, tx, room, v, create, redaction, target)
		if err != nil {
			return nil, err
		}
		prunedEv = prunedEv || ok
	}
	if prunedEv {
		pruned = append(pruned, ev.ID())
	}
	return pruned, nil
}

// applyRedaction prunes target if redaction may redact it, and reports whether it did. A
// redaction that may not (yet) is left pending: the spec has the server wait for a partner
// event with which it can be applied.
func (s *Server) applyRedaction(ctx context.Context, tx *storage.Tx, room storage.RoomNID, v event.RoomVersion, create, redaction *event.Event, target storage.EventRecord) (bool, error) {
	if target.Room != room || target.Rejected || target.JSON == nil {
		// Another room's event is never redacted from here; a rejected one is never served;
		// a purged one has no body left.
		return false, nil
	}
	targetEv, err := event.Parse(target.JSON, v)
	if err != nil {
		return false, fmt.Errorf("roomserver: stored event %s: %w", target.EventID, err)
	}
	ok, err := s.redactionAllowed(ctx, tx, create, redaction, targetEv)
	if err != nil || !ok {
		return false, err
	}
	pruned, err := event.Redact(target.JSON, v)
	if err != nil {
		return false, fmt.Errorf("roomserver: redacting %s: %w", target.EventID, err)
	}
	if err := tx.ApplyRedaction(ctx, redaction.ID(), target.NID, pruned, s.opts.Now().UnixMilli()); err != nil {
		return false, err
	}
	if err := unindexEvent(ctx, tx, room, target.NID, target.EventID); err != nil {
		return false, err
	}
	return true, nil
}

// redactionAllowed is the check of "Handling redactions" (room versions 3 and later): the
// redaction takes effect if its sender has the redact power level (in the state its auth
// events give) or is of the same server as the redacted event's sender. In versions 1 and 2
// the auth rules made that check already. For our own users this server is the one that
// answers for them, so it applies the stricter rule it applies to their requests (Redact): their
// own events, or any with the redact level.
func (s *Server) redactionAllowed(ctx context.Context, r storage.Reader, create, redaction, target *event.Event) (bool, error) {
	if redaction.Version().EventIDs == event.IDServerMinted {
		return true, nil
	}
	if redaction.Sender() == target.Sender() {
		return true, nil
	}
	if !s.isLocalUser(redaction.Sender()) && redaction.SenderDomain() == target.SenderDomain() {
		return true, nil
	}
	recs, err := storage.EventsByID(ctx, r, redaction.AuthEventIDs())
	if err != nil {
		return false, err
	}
	var pl *event.Event
	for _, rec := range recs {
		if rec.Type == auth.TypePowerLevels && rec.StateKey != nil && *rec.StateKey == "" && rec.JSON != nil {
			if pl, err = event.Parse(rec.JSON, redaction.Version()); err != nil {
				return false, fmt.Errorf("roomserver: stored event %s: %w", rec.EventID, err)
			}
		}
	}
	levels, err := auth.NewPowerLevels(pl, create)
	if err != nil {
		return false, err
	}
	return levels.UserLevel(redaction.Sender()) >= levels.RedactLevel(), nil
}

// dropRedactedBodies makes the cached state of a room forget the bodies of events that were
// just redacted, so that the next use reads the pruned body from storage instead of serving
// (or authorising with) the original. The caller holds the room's lock.
func (rs *roomState) dropRedactedBodies(ids []string) {
	if len(ids) == 0 {
		return
	}
	gone := make(map[string]bool, len(ids))
	for _, id := range ids {
		gone[id] = true
	}
	for _, r := range rs.state {
		if gone[r.id] {
			r.ev = nil
		}
	}
	for _, r := range rs.extremities {
		if gone[r.id] {
			r.ev = nil
		}
	}
}

// RedactionsFor returns, for those of eventIDs that were redacted, the m.room.redaction that
// redacted them, for the unsigned.redacted_because that clients are shown. The events
// themselves are stored redacted already.
func (s *Server) RedactionsFor(ctx context.Context, eventIDs []string) (map[string]*event.Event, error) {
	by, err := storage.RedactionsOf(ctx, s.db, eventIDs)
	if err != nil || len(by) == 0 {
		return nil, err
	}
	ids := make([]string, 0, len(by))
	for _, id := range by {
		ids = append(ids, id)
	}
	recs, err := storage.EventsByID(ctx, s.db, ids)
	if err != nil {
		return nil, err
	}
	redactions := make(map[string]*event.Event, len(recs))
	for _, rec := range recs {
		if rec.JSON == nil {
			continue
		}
		ev, err := s.parse(rec)
		if err != nil {
			return nil, err
		}
		redactions[rec.EventID] = ev
	}
	out := make(map[string]*event.Event, len(by))
	for target, id := range by {
		if ev := redactions[id]; ev != nil {
			out[target] = ev
		}
	}
	return out, nil
}

// UnappliedRedactions returns which of eventIDs are redactions that have not taken effect:
// the spec has them withheld from clients until they can be applied.
func (s *Server) UnappliedRedactions(ctx context.Context, eventIDs []string) (map[string]bool, error) {
	return storage.UnappliedRedactions(ctx, s.db, eventIDs)
}
