// Package pusher is the acting half of push notifications: it follows the timeline, evaluates
// each new event against the push rules of every local member of its room (package push does
// the evaluation, this package the I/O around it), records the events that notify or highlight
// (the unread counts of /sync and the list of GET /notifications), and delivers notifications
// to the users' HTTP pushers, that is to their push gateways.
//
// The worker's position is the events stream position up to which it has evaluated push
// rules. In memory (Position, WaitFor) it moves as soon as a batch is evaluated; the actions
// then wait in memory, pending, and are written in large transactions together with the
// position in the database, from which a restart resumes (pending.go). The counts it serves
// (UnreadCounts, RoomsWithCountChanges) are what is written plus what is pending.
//
// It lives under push/ because it is the part of the push module that does I/O and talks to
// the network; it is not in clientapi because it runs in the background, on the process
// context, whatever requests come and go.
package pusher

import (
	"context"
	"errors"
	"math"
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
	// persistEvery: the worker's position is written at least every so many events, even when
	// nothing notified, so that a restart does not re-read a long stretch.
	persistEvery = 1000
	// pruneInterval is how often old notifications are pruned.
	pruneInterval = time.Hour
	// maxBatchFailures: after so many failed attempts at the same batch, an event whose
	// evaluation fails is skipped (and logged) rather than holding up every notification
	// after it.
	maxBatchFailures = 5

	// streamWindow and lingerMax batch the worker's reads and small writes (own reads) while
	// events stream in (issue 9); its actions are batched far more by pending.go. When a
	// wake-up comes less than streamWindow after the previous batch started, the worker waits
	// lingerMax before reading the next batch. A lone event (a conversation at its usual pace,
	// the sync-wake measurement) is evaluated at once; while events stream in, a /sync waiting
	// for their counts waits up to lingerMax longer.
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
	// feed holds the room server's announcements not yet evaluated, by position (feed.go).
	feedMu sync.Mutex
	feed   map[int64]roomserver.NewEvent
	// rooms caches what evaluation needs to know of a room; used only by the feed goroutine.
	rooms map[storage.RoomNID]*roomContext

	// flushReq carries Flush's requests to Run.
	flushReq chan chan error

	mu sync.Mutex
	// pos is the events stream position up to which actions are evaluated; progress is
	// closed (and replaced) each time it moves; running is set once Run has loaded it.
	pos      int64
	progress chan struct{}
	running  bool
	// stopped is closed when Run returns; nil before Run.
	stopped chan struct{}
	// pending are the actions evaluated but not written yet, by user, each user's in stream
	// order; recorded is the position written with the last flush: the database holds every
	// action up to it, pending every action after it (math.MaxInt64 before Run: everything is
	// in the database). Only Run's goroutine changes them, and a published slice is never
	// changed in place (only appended to, or replaced), so readers use it after unlocking
	// (pending.go).
	pending  map[string][]storage.PushAction
	recorded int64
	// pendingReads are the own reads (a user's own event reads its thread) evaluated but not
	// written yet, by user: written with the pending actions, and under the same rules.
	pendingReads map[string]storage.ReadPositions
	// nPending counts pending; pendingSince is when the oldest action or read was published.
	// Used only by Run's goroutine.
	nPending     int
	pendingSince time.Time

	// counts keeps the database's unread counts between /syncs (countcache.go).
	counts countCache

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
		cfg:          cfg,
		log:          log.WithField("component", "pusher"),
		newEvents:    make(chan struct{}, 1),
		feed:         map[int64]roomserver.NewEvent{},
		rooms:        map[storage.RoomNID]*roomContext{},
		flushReq:     make(chan chan error),
		progress:     make(chan struct{}),
		pending:      map[string][]storage.PushAction{},
		pendingReads: map[string]storage.ReadPositions{},
		recorded:     math.MaxInt64,
	}
	w.deliver = newDelivery(w)
	w.badges = newBadges(w)
	return w
}

// PusherChanged tells the worker that a user's pushers changed, so that delivery to a new
// pusher starts (and a deleted one's stops) without waiting for the next notification.
func (w *Worker) PusherChanged(userID string) { w.deliver.pushersChanged(userID) }

// Position is the events stream position up to which push actions are evaluated: the counts
// the worker serves include them, written or pending.
func (w *Worker) Position() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pos
}

// WaitFor waits until the actions of the events up to pos are evaluated, at most limit, and
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

// advance moves the position in memory; w.mu is held.
func (w *Worker) advance(pos int64) {
	w.running = true
	if pos == w.pos {
		return
	}
	w.pos = pos
	close(w.progress)
	w.progress = make(chan struct{})
}

// Run follows the events stream and delivers notifications until ctx ends; it then writes
// what is pending.
func (w *Worker) Run(ctx context.Context) error {
	stopped := make(chan struct{})
	w.mu.Lock()
	w.stopped = stopped
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.running = false
		w.mu.Unlock()
		close(stopped)
	}()
	pos, err := w.load(ctx)
	if err != nil {
		return err
	}
	stopDelivery := w.deliver.start(ctx)
	defer stopDelivery()
	defer w.badges.start(ctx)()

	// asked are the Flush requests taken and not yet answered; every one is answered.
	var asked []chan error
	answer := func(err error) {
		for _, c := range asked {
			c <- err
		}
		asked = nil
	}
	defer func() {
		// What is pending is written on the way out, on a context of its own: ctx has ended.
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopFlushTimeout)
		defer cancel()
		err := w.commit(stopCtx, &batch{next: pos}, true)
		if err != nil {
			w.log.WithError(err).Error("could not write pending notifications")
		}
		answer(err)
	}()

	lastPrune := time.Time{}
	failures := 0
	for {
		if now := w.cfg.Now(); now.Sub(lastPrune) >= pruneInterval {
			w.prune(ctx, now)
			lastPrune = now
		}
	take:
		for {
			select {
			case c := <-w.flushReq:
				asked = append(asked, c)
			default:
				break take
			}
		}
		started := w.cfg.Now()
		next, err := w.processBatch(ctx, pos, len(asked) > 0, failures >= maxBatchFailures)
		answer(err)
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
		full := next-pos >= feedBatch
		pos = next
		if full {
			continue
		}
		// Wake for new events, a Flush, or when the oldest pending action is due.
		wait := 30 * time.Second // a safety net; the subscription is the signal
		if w.hasPending() {
			wait = time.Until(w.pendingSince.Add(flushInterval))
		}
		timer := time.NewTimer(wait)
		newEvents := false
		select {
		case <-w.newEvents:
			newEvents = true
		case c := <-w.flushReq:
			asked = append(asked, c)
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
		if ctx.Err() != nil {
			return nil
		}
		if newEvents && w.cfg.Now().Sub(started) < streamWindow {
			// Events are streaming in: let a few more arrive, so that one batch takes them
			// all (see streamWindow).
			select {
			case <-time.After(lingerMax):
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// load reads the position written last, from which the worker resumes, and publishes it.
func (w *Worker) load(ctx context.Context) (int64, error) {
	pos, ok, err := storage.PushWorkerPosition(ctx, w.cfg.DB)
	if err != nil {
		return 0, err
	}
	if !ok {
		// The first start evaluates nothing of the past.
		if pos, err = storage.CurrentStreamPosition(ctx, w.cfg.DB, "events"); err != nil {
			return 0, err
		}
		if err := w.cfg.DB.WithTx(ctx, func(tx *storage.Tx) error { return tx.SetPushWorkerPosition(ctx, pos) }); err != nil {
			return 0, err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.recorded = pos
	w.advance(pos)
	return pos, nil
}

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
