package pusher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"myelin/storage"
)

// Badge updates (push gateway API, POST /_matrix/push/v1/notify: "The counts may be sent
// along with a notification about an event or by themselves"). When a user's unread count
// goes down without anything new to notify about (they read a room, with an m.read or
// m.read.private receipt, /read_markers, or by writing in it), their HTTP pushers get a
// notification with only counts and devices, so that the app's badge on their phone follows.
// It carries no event id, room id or type: nothing but the number, at low priority, since it
// alerts no one.
//
// A badge update is idempotent and not worth a queue: it is sent once, best effort. If the
// gateway fails, the next change of the count or the next notification about an event (which
// carries the count of its time) sets the badge right. While a pusher backs off after
// failures, badge updates to it are skipped.
//
// What each pusher's gateway was last told is kept in memory (badges.last, also set by
// delivery.send), so that a receipt that does not change the count sends nothing; after a
// restart the first change is sent whatever it was.

const (
	// badgeDelay gathers the reads of one moment (a client sends its message, then its receipt;
	// /read_markers sets two receipts) into one badge update.
	badgeDelay = 200 * time.Millisecond
	// badgeTimeout bounds one badge update; shorter than an event's notification, as nothing
	// waits for it.
	badgeTimeout = 10 * time.Second
)

type badges struct {
	w *Worker

	mu sync.Mutex
	// pending are the users whose count may have gone down since the last round.
	pending map[string]bool
	// last is the count each pusher's gateway last got.
	last map[pusherKey]int
	wake chan struct{}
}

func newBadges(w *Worker) *badges {
	return &badges{w: w, pending: map[string]bool{}, last: map[pusherKey]int{}, wake: make(chan struct{}, 1)}
}

// ReadChanged tells the worker that a local user's read position moved (a read receipt or
// read marker): their unread count may have gone down, and their pushers' badges with it.
func (w *Worker) ReadChanged(userID string) { w.badges.changed(userID) }

// changed queues a badge update for a user who has HTTP pushers; it costs nothing for one
// who has none.
func (b *badges) changed(userID string) {
	d := b.w.deliver
	d.mu.Lock()
	has := len(d.httpPushers[userID]) > 0
	d.mu.Unlock()
	if !has {
		return
	}
	b.mu.Lock()
	b.pending[userID] = true
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// sent records the count a pusher's gateway was just given.
func (b *badges) sent(k pusherKey, unread int) {
	b.mu.Lock()
	b.last[k] = unread
	b.mu.Unlock()
}

func (b *badges) forget(k pusherKey) {
	b.mu.Lock()
	delete(b.last, k)
	b.mu.Unlock()
}

// start runs badge updates on ctx; the returned function waits for them to stop (after ctx
// ends).
func (b *badges) start(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.run(ctx)
	}()
	return func() { <-done }
}

func (b *badges) run(ctx context.Context) {
	for {
		select {
		case <-b.wake:
		case <-ctx.Done():
			return
		}
		select {
		case <-time.After(badgeDelay):
		case <-ctx.Done():
			return
		}
		b.mu.Lock()
		users := make([]string, 0, len(b.pending))
		for u := range b.pending {
			users = append(users, u)
		}
		clear(b.pending)
		b.mu.Unlock()
		// Users in parallel: one slow gateway does not hold up the others' badges.
		var wg sync.WaitGroup
		for _, u := range users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b.update(ctx, u)
			}()
		}
		wg.Wait()
	}
}

// update sends a user's count to each of their HTTP pushers whose gateway has another.
func (b *badges) update(ctx context.Context, userID string) {
	cfg := b.w.cfg
	d := b.w.deliver
	d.mu.Lock()
	keys := slices.Clone(d.httpPushers[userID])
	d.mu.Unlock()
	if len(keys) == 0 {
		return
	}
	unread, err := b.w.totalUnread(ctx, userID)
	if err != nil {
		if ctx.Err() == nil {
			b.w.log.WithError(err).WithField("user_id", userID).Error("could not count unread notifications")
		}
		return
	}
	for _, k := range keys {
		b.mu.Lock()
		last, known := b.last[k]
		b.mu.Unlock()
		if known && last == unread {
			continue
		}
		log := b.w.log.WithFields(logrus.Fields{"user_id": k.userID, "app_id": k.appID})
		p, err := storage.GetPusher(ctx, cfg.DB, k.userID, k.appID, k.pushKey)
		if errors.Is(err, storage.ErrNotFound) {
			b.forget(k)
			d.pushersChanged(userID)
			continue
		}
		if err != nil {
			log.WithError(err).Error("could not read a pusher")
			continue
		}
		if p.Kind != KindHTTP || p.RetryAtTS > cfg.Now().UnixMilli() {
			continue
		}
		switch err := b.send(ctx, p, unread); {
		case err == nil:
			b.sent(k, unread)
		case errors.Is(err, errRejected):
			b.forget(k)
			d.pushersChanged(userID)
		case ctx.Err() != nil:
			return
		default:
			log.WithError(err).Debug("could not send a badge update")
		}
	}
}

// badgeNotification is the notification that carries only a pusher's count: no event, and
// counts left empty when nothing is unread (zero counts are omitted, as the spec asks), which
// clears the badge.
func badgeNotification(p storage.Pusher, unread int) notifyRequest {
	return notifyRequest{Notification: notification{
		Prio:   "low",
		Counts: counts{Unread: unread},
		Devices: []device{{
			AppID: p.AppID, PushKey: p.PushKey, PushKeyTS: p.PushKeyTS / 1000, Data: dataWithoutURL(p.Data),
		}},
	}}
}

// send posts a badge update to the pusher's gateway; errRejected when the gateway rejected the
// pushkey, after which the pusher is deleted, as for a notification about an event.
func (b *badges) send(ctx context.Context, p storage.Pusher, unread int) error {
	body, err := json.Marshal(badgeNotification(p, unread))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, badgeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gatewayURL(p.Data), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("badge update: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.w.deliver.client.Do(req)
	if err != nil {
		return fmt.Errorf("badge update: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxGatewayResponse))
	if err != nil {
		return fmt.Errorf("badge update: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return fmt.Errorf("badge update: push gateway answered HTTP %d", resp.StatusCode)
	}
	var out struct {
		Rejected []string `json:"rejected"`
	}
	_ = json.Unmarshal(raw, &out)
	if !slices.Contains(out.Rejected, p.PushKey) {
		return nil
	}
	err = b.w.cfg.DB.WithTx(ctx, func(tx *storage.Tx) error { return tx.DeletePusher(ctx, p.UserID, p.AppID, p.PushKey) })
	if err != nil {
		return fmt.Errorf("badge update: deleting a rejected pusher: %w", err)
	}
	b.w.log.WithFields(logrus.Fields{"user_id": p.UserID, "app_id": p.AppID}).Info("the push gateway rejected a pushkey: pusher deleted")
	return errRejected
}
