// Package pusher is the acting half of push notifications: it follows the timeline, evaluates
// each new event against the push rules of every local member of its room (package push does
// the evaluation, this package the I/O around it), records the events that notify or highlight
// (the unread counts of /sync and the list of GET /notifications), and delivers notifications
// to the users' HTTP pushers, that is to their push gateways.
//
// It lives under push/ because it is the part of the push module that does I/O and talks to
// the network; it is not in clientapi because it runs in the background, on the process
// context, whatever requests come and go.
package pusher

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"myelin/push"
	"myelin/roomserver"
	"myelin/storage"
)

// Defaults of Config.
const (
	// DefaultRetention is how long recorded notifications are kept: /notifications lists them
	// and unread counts count them for that long.
	DefaultRetention = 30 * 24 * time.Hour
	// DefaultMinBackoff and DefaultMaxBackoff bound the wait after a push gateway failed; it
	// doubles from the minimum to the maximum.
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = time.Hour
	// DefaultMaxAge: a notification that could not be delivered for this long is dropped, as
	// a push that old would only confuse.
	DefaultMaxAge = 24 * time.Hour

	// feedBatch is how many events of the stream are read at a time.
	feedBatch = 100
	// persistEvery: the worker's position is written at least every so many events even when
	// nothing notified, so that a restart does not re-read a long stretch.
	persistEvery = 1000
	// pruneInterval is how often old notifications are pruned.
	pruneInterval = time.Hour
	// maxBatchFailures: after so many failed attempts at the same batch, an event whose
	// evaluation fails is skipped (and logged) rather than holding up every notification
	// after it.
	maxBatchFailures = 5

	// streamWindow and lingerMax batch the worker's writes while events stream in (issue 9).
	// Recording push actions costs mostly the pages each transaction writes to the
	// write-ahead log: a row per local member and event, in indexes keyed by member, so a
	// transaction for several events writes nearly the same pages as one for a single event
	// (the key puts each member's rows in stream order: migration 0022). When a wake-up comes
	// less than streamWindow after the previous batch started, the worker waits lingerMax
	// before reading the next batch. A lone event (a conversation at its usual pace, the
	// sync-wake measurement) is evaluated at once; while events stream in, a /sync waiting for their counts waits up to
	// lingerMax longer. In the send benchmark this wrote 23 % fewer bytes and raised
	// throughput by a fifth.
	streamWindow = 5 * time.Millisecond
	lingerMax    = 2 * time.Millisecond
)

// RuleSource gives a user's effective push rules; *push.Store is one.
type RuleSource interface {
	Rules(ctx context.Context, userID string) (*push.Ruleset, error)
}

var _ RuleSource = (*push.Store)(nil)

// Waker wakes the long-polling /sync requests of users whose counts changed;
// *clientapi.Notifier is one.
type Waker interface {
	UserChanged(userIDs ...string)
}

// Config is what a Worker needs.
type Config struct {
	ServerName string
	DB         *storage.DB
	Rules      RuleSource
	Waker      Waker
	// IncludeContent sends the event's content, sender, sender display name, room name and
	// alias to push gateways (push.include_content). Off by default: see payload.go.
	IncludeContent bool
	// AllowPrivateAddresses lets deliveries go to loopback, private and link-local addresses
	// (push.allow_private_addresses).
	AllowPrivateAddresses bool
	// Retention, MinBackoff, MaxBackoff, MaxAge: see the defaults above.
	Retention              time.Duration
	MinBackoff, MaxBackoff time.Duration
	MaxAge                 time.Duration
	Now                    func() time.Time
}

// Worker evaluates push rules for new events and delivers notifications. Run starts it.
type Worker struct {
	cfg Config
	log *logrus.Entry

	newEvents chan struct{}
	// rooms caches what evaluation needs to know of a room; used only by the feed goroutine.
	rooms map[storage.RoomNID]*roomContext

	mu sync.Mutex
	// pos is the events stream position up to which actions are recorded; progress is
	// closed (and replaced) each time it moves; running is set once Run has loaded it.
	pos      int64
	progress chan struct{}
	running  bool

	deliver *delivery
	// badges sends counts-only notifications when a user reads (badge.go).
	badges *badges
}

// New returns a worker; Run starts it.
func New(cfg Config, log *logrus.Entry) *Worker {
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	w := &Worker{
		cfg:       cfg,
		log:       log.WithField("component", "pusher"),
		newEvents: make(chan struct{}, 1),
		rooms:     map[storage.RoomNID]*roomContext{},
		progress:  make(chan struct{}),
	}
	w.deliver = newDelivery(w)
	w.badges = newBadges(w)
	return w
}

// OnNewEvent is the room server subscription: it only signals the worker, which reads the
// event from the stream.
func (w *Worker) OnNewEvent(roomserver.NewEvent) {
	select {
	case w.newEvents <- struct{}{}:
	default:
	}
}

// PusherChanged tells the worker that a user's pushers changed, so that delivery to a new
// pusher starts (and a deleted one's stops) without waiting for the next notification.
func (w *Worker) PusherChanged(userID string) { w.deliver.pushersChanged(userID) }

// Position is the events stream position up to which push actions are recorded.
func (w *Worker) Position() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pos
}

// WaitFor waits until the actions of the events up to pos are recorded, at most limit, and
// returns the position reached. /sync calls it so that the counts of an event appear in the
// same response as the event, as the spec asks. Before Run has started it returns at once.
func (w *Worker) WaitFor(ctx context.Context, pos int64, limit time.Duration) int64 {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		w.mu.Lock()
		cur, ch, running := w.pos, w.progress, w.running
		w.mu.Unlock()
		if cur >= pos || !running {
			return cur
		}
		select {
		case <-ch:
		case <-timer.C:
			return cur
		case <-ctx.Done():
			return cur
		}
	}
}

func (w *Worker) setPos(pos int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.running = true
	if pos == w.pos {
		return
	}
	w.pos = pos
	close(w.progress)
	w.progress = make(chan struct{})
}

// Run follows the events stream and delivers notifications until ctx ends.
func (w *Worker) Run(ctx context.Context) error {
	defer func() {
		w.mu.Lock()
		w.running = false
		w.mu.Unlock()
	}()
	pos, ok, err := storage.PushWorkerPosition(ctx, w.cfg.DB)
	if err != nil {
		return err
	}
	if !ok {
		// The first start evaluates nothing of the past.
		if pos, err = storage.CurrentStreamPosition(ctx, w.cfg.DB, "events"); err != nil {
			return err
		}
		if err := w.cfg.DB.WithTx(ctx, func(tx *storage.Tx) error { return tx.SetPushWorkerPosition(ctx, pos) }); err != nil {
			return err
		}
	}
	w.setPos(pos)
	stopDelivery := w.deliver.start(ctx)
	defer stopDelivery()
	defer w.badges.start(ctx)()

	persisted := pos
	lastPrune := time.Time{}
	failures := 0
	for {
		if now := w.cfg.Now(); now.Sub(lastPrune) >= pruneInterval {
			w.prune(ctx, now)
			lastPrune = now
		}
		started := w.cfg.Now()
		next, users, wrote, err := w.processBatch(ctx, pos, mustPersist(persisted, pos), failures >= maxBatchFailures)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			failures++
			w.log.WithError(err).Error("could not evaluate push rules")
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		failures = 0
		if wrote {
			persisted = next
		}
		full := next-pos >= feedBatch
		pos = next
		w.setPos(pos)
		if len(users) > 0 {
			w.cfg.Waker.UserChanged(users...)
			for _, u := range users {
				w.deliver.kickUser(u)
			}
		}
		if full {
			continue
		}
		select {
		case <-w.newEvents:
		case <-time.After(30 * time.Second): // a safety net; the subscription is the signal
		case <-ctx.Done():
			return nil
		}
		if w.cfg.Now().Sub(started) < streamWindow {
			// Events are streaming in: let a few more arrive, so that one transaction
			// records them all (see streamWindow).
			select {
			case <-time.After(lingerMax):
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// mustPersist says whether the position must be written with the next batch even if nothing
// notifies: it is written at least every persistEvery events.
func mustPersist(persisted, pos int64) bool { return pos-persisted >= persistEvery }

// prune deletes notifications older than the retention.
func (w *Worker) prune(ctx context.Context, now time.Time) {
	var n int64
	err := w.cfg.DB.WithTx(ctx, func(tx *storage.Tx) error {
		var err error
		n, err = tx.PrunePushActions(ctx, now.Add(-w.cfg.Retention).UnixMilli())
		return err
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		w.log.WithError(err).Warn("could not prune old notifications")
		return
	}
	if n > 0 {
		w.log.WithField("count", n).Debug("pruned old notifications")
	}
}
