package pusher

import (
	"context"

	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
)

// The feed (performance, issue 9). The room server announces every event it stores on the events
// stream, after the commit, with the event it already holds parsed (OnNewEvent). The worker
// keeps those announcements and evaluates from them, rather than reading each event back from
// the database and parsing it again, which was a fifth of its work. It reads from the database
// whenever the announcements do not continue its position without a gap: at start, after
// falling behind by more than maxFeed events, or when the announcement of a committed event has
// not arrived yet (rooms commit in stream order but announce concurrently). The database stays
// the source of truth: what the feed holds is only ever committed events.

// maxFeed bounds the announcements kept; past it new ones are dropped and the database is read.
const maxFeed = 10000

// feedItem is one event of the stream to evaluate: announced, or read from the database.
type feedItem struct {
	pos  int64
	room storage.RoomNID
	// ev is the announced event; nil for one read from the database, whose body is rec.
	ev  *event.Event
	rec storage.EventRecord
}

// OnNewEvent is the room server subscription: it keeps the event for the worker and wakes it.
func (w *Worker) OnNewEvent(n roomserver.NewEvent) {
	if n.Event != nil && n.StreamPos > 0 {
		w.feedMu.Lock()
		if len(w.feed) < maxFeed {
			w.feed[n.StreamPos] = n
		}
		w.feedMu.Unlock()
	}
	select {
	case w.newEvents <- struct{}{}:
	default:
	}
}

// next returns the events after pos to evaluate, at most feedBatch, in stream order: the
// announced ones when they follow pos without a gap, else those the database holds.
func (w *Worker) next(ctx context.Context, pos int64) ([]feedItem, error) {
	items, ok := w.announced(pos)
	if ok {
		return items, nil
	}
	recs, err := storage.TimelineEventsAfter(ctx, w.cfg.DB, pos, feedBatch)
	if err != nil {
		return nil, err
	}
	items = make([]feedItem, len(recs))
	for i, rec := range recs {
		items[i] = feedItem{pos: rec.StreamPos, room: rec.Room, rec: rec}
	}
	return items, nil
}

// announced takes the announcements that continue pos without a gap; ok is false when the
// first position after pos was not announced. An announcement without a room (an invite to a
// room this server is not in, kept apart from room events) counts as a gap: the database read
// passes over its position. Announcements at or before pos, which a database read covered, are
// dropped.
func (w *Worker) announced(pos int64) (items []feedItem, ok bool) {
	w.feedMu.Lock()
	defer w.feedMu.Unlock()
	for p := range w.feed {
		if p <= pos {
			delete(w.feed, p)
		}
	}
	for p := pos + 1; len(items) < feedBatch; p++ {
		n, found := w.feed[p]
		if !found || n.RoomNID == 0 {
			break
		}
		delete(w.feed, p)
		ok = true
		items = append(items, feedItem{pos: p, room: n.RoomNID, ev: n.Event})
	}
	return items, ok
}

// id is the item's event id, for logs.
func (it feedItem) id() string {
	if it.ev != nil {
		return it.ev.ID()
	}
	return it.rec.EventID
}
