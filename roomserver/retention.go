package roomserver

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/sirupsen/logrus"

	"myelin/roomserver/event"
	"myelin/storage"
)

// Message retention: a room's non-state events older than its lifetime are purged. The
// lifetime is the max_lifetime (ms) of the room's current m.room.retention event (MSC1763, as
// Synapse reads it), clamped to the bounds the operator allows, or the server's default for
// rooms without one; zero keeps history forever.
//
// Purging an event replaces its stored body by nothing, keeps its redacted form (its room
// version's redaction algorithm) as a stub for other servers, and makes the derived indexes
// (relations, threads, search, notifications) forget it, all in one transaction. The event
// keeps its place in the DAG: its row, depth, stream position and prev/auth edges stay, so
// state resolution, backfill walks and the events that cite it still work. Clients are served
// nothing of it: every client read path skips events without a body, and the single-event
// reads answer 404. Other servers get the stub (federation /event, /backfill,
// /get_missing_events), which their signature checks accept.
//
// State events are never purged, so neither is the create event nor anything in current state;
// nor is a forward extremity, which this server's next event cites as a prev_event.

// TypeRetention is the room retention policy state event of MSC1763.
const TypeRetention = "m.room.retention"

// retentionBatch bounds the events one purge transaction rewrites, so that the room's lock and
// the database's writer are held briefly; a room with more to purge takes several batches.
const retentionBatch = 100

// RetentionPolicy is the operator's configuration of retention.
type RetentionPolicy struct {
	// DefaultMaxLifetime applies to rooms without an m.room.retention max_lifetime; 0: forever.
	DefaultMaxLifetime time.Duration
	// MinLifetime and MaxLifetime bound what a room's m.room.retention may ask for; 0: no bound.
	MinLifetime, MaxLifetime time.Duration
}

// Lifetime returns how long a room keeps its messages given the content of its m.room.retention
// event (nil if it has none); 0 means forever. A max_lifetime that is not a positive integer
// counts as absent, as Synapse reads it.
func (p RetentionPolicy) Lifetime(content json.RawMessage) time.Duration {
	var c struct {
		MaxLifetime *json.Number `json:"max_lifetime"`
	}
	if len(content) == 0 || json.Unmarshal(content, &c) != nil || c.MaxLifetime == nil {
		return p.DefaultMaxLifetime
	}
	ms, err := c.MaxLifetime.Int64()
	if err != nil || ms <= 0 {
		return p.DefaultMaxLifetime
	}
	d := time.Duration(math.MaxInt64) // beyond what a Duration holds: forever, unless bounded
	if ms < math.MaxInt64/int64(time.Millisecond) {
		d = time.Duration(ms) * time.Millisecond
	}
	if p.MinLifetime > 0 && d < p.MinLifetime {
		d = p.MinLifetime
	}
	if p.MaxLifetime > 0 && d > p.MaxLifetime {
		d = p.MaxLifetime
	}
	if d == time.Duration(math.MaxInt64) {
		return 0
	}
	return d
}

// RunRetention purges expired events now and then every interval, until ctx is done.
func (s *Server) RunRetention(ctx context.Context, p RetentionPolicy, interval time.Duration, log *logrus.Entry) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.PurgeExpired(ctx, p)
		switch {
		case err != nil && ctx.Err() == nil:
			log.WithError(err).Warn("could not purge expired events")
		case n > 0:
			log.WithField("count", n).Info("purged expired events")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PurgeExpired makes one pass over the rooms and purges every expired event; it returns how
// many it purged. A room that fails does not stop the others; the first error is returned.
func (s *Server) PurgeExpired(ctx context.Context, p RetentionPolicy) (int, error) {
	rooms, err := storage.RetentionRooms(ctx, s.db, p.DefaultMaxLifetime > 0)
	if err != nil {
		return 0, err
	}
	total := 0
	var first error
	for _, room := range rooms {
		if ctx.Err() != nil {
			return total, ctx.Err()
		}
		n, err := s.purgeRoom(ctx, p, room)
		total += n
		if err != nil && first == nil {
			first = fmt.Errorf("roomserver: purging %s: %w", room.ID, err)
		}
	}
	return total, first
}

// purgeRoom purges the expired events of one room, a batch per transaction.
func (s *Server) purgeRoom(ctx context.Context, p RetentionPolicy, room storage.RetentionRoom) (int, error) {
	var content json.RawMessage
	if room.Policy != 0 {
		recs, err := storage.EventsByNID(ctx, s.db, []storage.EventNID{room.Policy})
		if err != nil {
			return 0, err
		}
		if len(recs) == 1 && recs[0].JSON != nil {
			ev, err := s.parse(recs[0])
			if err != nil {
				return 0, err
			}
			content = ev.Content()
		}
	}
	lifetime := p.Lifetime(content)
	if lifetime <= 0 {
		return 0, nil
	}
	v, err := event.Version(room.Version)
	if err != nil {
		return 0, err
	}
	total := 0
	for {
		cutoff := s.opts.Now().Add(-lifetime).UnixMilli()
		// A read first: most passes find nothing, and need neither the room's lock nor a write.
		if some, err := storage.ExpiredEvents(ctx, s.db, room.NID, cutoff, 1); err != nil || len(some) == 0 {
			return total, err
		}
		n, err := s.purgeBatch(ctx, room, v, cutoff)
		total += n
		if err != nil || n < retentionBatch {
			return total, err
		}
	}
}

// purgeBatch purges up to retentionBatch events of room sent before cutoff (ms), holding the
// room's input lock so that no event enters the room (and no extremity changes) meanwhile.
func (s *Server) purgeBatch(ctx context.Context, room storage.RetentionRoom, v event.RoomVersion, cutoff int64) (int, error) {
	slot, unlock, err := s.lockRoom(ctx, room.ID)
	if err != nil {
		return 0, err
	}
	defer unlock()
	var purged []string
	err = s.db.WithTx(ctx, func(tx *storage.Tx) error {
		purged = purged[:0]
		recs, err := storage.ExpiredEvents(ctx, tx, room.NID, cutoff, retentionBatch)
		if err != nil {
			return err
		}
		now := s.opts.Now().UnixMilli()
		for _, rec := range recs {
			stub, err := event.Redact(rec.JSON, v)
			if err != nil {
				return fmt.Errorf("roomserver: redacting %s for its stub: %w", rec.EventID, err)
			}
			if err := tx.PurgeEvent(ctx, room.NID, rec.NID, stub, now); err != nil {
				return err
			}
			if err := unindexEvent(ctx, tx, room.NID, rec.NID, rec.EventID); err != nil {
				return err
			}
			purged = append(purged, rec.EventID)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	// Purged events are neither state nor extremities, so the cached state holds none of them;
	// dropping them anyway keeps the cache honest should that ever change.
	if slot.state != nil {
		slot.state.dropRedactedBodies(purged)
	}
	return len(purged), nil
}

// FederationEvent returns a stored event as other servers are served it: whole, or its stub if
// retention purged it; ErrNotFound if this server does not have it.
func (s *Server) FederationEvent(ctx context.Context, eventID string) (*event.Event, error) {
	rec, err := s.eventRecord(ctx, s.db, eventID)
	if err != nil {
		return nil, err
	}
	recs, err := storage.WithPurgedStubs(ctx, s.db, []storage.EventRecord{rec})
	if err != nil {
		return nil, err
	}
	if recs[0].JSON == nil {
		return nil, fmt.Errorf("%w: event %s has no body", ErrNotFound, eventID)
	}
	return s.parse(recs[0])
}
