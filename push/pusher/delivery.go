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

	"myelin/roomserver/event"
	"myelin/storage"
)

const (
	// deliverBatch is how many notifications a pusher reads at a time.
	deliverBatch = 20
	// idleTimeout: a pusher's goroutine with nothing to send waits this long for more, then
	// ends; the next notification starts another.
	idleTimeout = time.Minute
)

// Kind of the pushers that deliver.
const KindHTTP = "http"

// delivery sends notifications to push gateways: one goroutine per pusher with work, each
// going through the pusher's notifications in order, remembering in the database how far it
// got, and backing off exponentially (per pusher) while the gateway fails.
type delivery struct {
	w      *Worker
	client *http.Client

	mu     sync.Mutex
	queues map[pusherKey]*pusherQueue
	// spawn starts a queue's goroutine; nil while the worker is not running.
	spawn func(*pusherQueue)
	// httpPushers are the HTTP pushers of each user that has any, kept in memory so that the
	// kick after every batch of notifications costs no query: without it, a message into a
	// room of ten local members read the pushers table ten times (a tenth of the CPU of a
	// message in the send benchmark). Pushers are created only through POST /pushers/set,
	// which calls PusherChanged, which re-reads the user's; a pusher deleted behind our back
	// (with its device, by a gateway's rejection, by another user's pushkey) is found gone by
	// its queue, which then drops it from here.
	httpPushers map[string][]pusherKey
	// readGen numbers the reads of a user's pushers; wroteGen is the number of the read that
	// last set each user's entry.
	readGen  uint64
	wroteGen map[string]uint64
}

type pusherKey struct{ userID, appID, pushKey string }

type pusherQueue struct {
	key     pusherKey
	work    chan struct{} // buffered 1
	running bool          // guarded by delivery.mu
}

// errRejected: the gateway rejected the pushkey; the pusher has been deleted.
var errRejected = errors.New("pusher: pushkey rejected by the push gateway")

// errPermanent: the gateway refused this notification for good; it is skipped.
var errPermanent = errors.New("pusher: the push gateway refused the notification")

func newDelivery(w *Worker) *delivery {
	return &delivery{
		w: w, client: gatewayClient(w.cfg.AllowPrivateAddresses), queues: map[pusherKey]*pusherQueue{},
		httpPushers: map[string][]pusherKey{}, wroteGen: map[string]uint64{},
	}
}

// start lets queues run on ctx and kicks every pusher, so that what was pending before a
// restart is sent. The returned function waits for the queues to stop (after ctx ends).
func (d *delivery) start(ctx context.Context) (stop func()) {
	var wg sync.WaitGroup
	d.mu.Lock()
	d.spawn = func(q *pusherQueue) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.run(ctx, q)
		}()
	}
	d.mu.Unlock()
	if ps, err := storage.AllPushers(ctx, d.w.cfg.DB, KindHTTP); err != nil {
		d.w.log.WithError(err).Error("could not read pushers")
	} else {
		for _, p := range ps {
			k := pusherKey{p.UserID, p.AppID, p.PushKey}
			d.mu.Lock()
			// Merged, not replaced: a PusherChanged may have come in since the read.
			if !slices.Contains(d.httpPushers[p.UserID], k) {
				d.httpPushers[p.UserID] = append(d.httpPushers[p.UserID], k)
			}
			d.mu.Unlock()
			d.kick(k)
		}
	}
	return func() {
		d.mu.Lock()
		d.spawn = nil
		d.mu.Unlock()
		wg.Wait()
	}
}

// kickUser wakes the queues of a user's HTTP pushers, as known in memory (httpPushers).
func (d *delivery) kickUser(userID string) {
	d.mu.Lock()
	keys := slices.Clone(d.httpPushers[userID])
	d.mu.Unlock()
	for _, k := range keys {
		d.kick(k)
	}
}

// delivers says whether any of acts notifies a user with HTTP pushers, which read the
// notifications from the database: the worker then writes its pending actions at once.
func (d *delivery) delivers(acts []storage.PushAction) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range acts {
		if a.Notify && len(d.httpPushers[a.UserID]) > 0 {
			return true
		}
	}
	return false
}

// pushersChanged re-reads a user's HTTP pushers, after POST /pushers/set or when a queue
// found its pusher gone, and wakes their queues.
func (d *delivery) pushersChanged(userID string) {
	d.mu.Lock()
	d.readGen++
	gen := d.readGen
	d.mu.Unlock()
	ps, err := storage.PushersOfUser(context.Background(), d.w.cfg.DB, userID)
	if err != nil {
		d.w.log.WithError(err).WithField("user_id", userID).Error("could not read pushers")
		return
	}
	var keys []pusherKey
	for _, p := range ps {
		if p.Kind == KindHTTP {
			keys = append(keys, pusherKey{p.UserID, p.AppID, p.PushKey})
		}
	}
	d.mu.Lock()
	// Two reads of one user may finish out of order; the one that started last wins.
	if gen > d.wroteGen[userID] {
		d.wroteGen[userID] = gen
		if len(keys) == 0 {
			delete(d.httpPushers, userID)
		} else {
			d.httpPushers[userID] = keys
		}
	}
	d.mu.Unlock()
	if len(keys) > 0 && d.w.hasPendingReads(userID) {
		// Their badge is counted from the database, which lacks their pending reads until a
		// flush (flushDue writes the reads of users with pushers at once from now on).
		go func() {
			if err := d.w.Flush(context.Background()); err != nil {
				d.w.log.WithError(err).Warn("could not write pending notifications")
			}
		}()
	}
	d.kickUser(userID)
}

// pushesTo says whether the user has an HTTP pusher.
func (d *delivery) pushesTo(userID string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.httpPushers[userID]) > 0
}

func (d *delivery) kick(k pusherKey) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.spawn == nil {
		return
	}
	q := d.queues[k]
	if q == nil {
		q = &pusherQueue{key: k, work: make(chan struct{}, 1)}
		d.queues[k] = q
	}
	select {
	case q.work <- struct{}{}:
	default:
	}
	if !q.running {
		q.running = true
		d.spawn(q)
	}
}

// run works through one pusher's notifications until it has none for idleTimeout, the pusher
// is gone, or ctx ends.
func (d *delivery) run(ctx context.Context, q *pusherQueue) {
	log := d.w.log.WithFields(logrus.Fields{"user_id": q.key.userID, "app_id": q.key.appID})
	// A pusher found gone is forgotten (httpPushers), unless it was set again meanwhile: the
	// re-read then kicks it anew, once this queue is out of the way.
	gone := false
	defer func() {
		if gone {
			d.pushersChanged(q.key.userID)
		}
	}()
	defer func() {
		d.mu.Lock()
		q.running = false
		if d.queues[q.key] == q {
			delete(d.queues, q.key)
		}
		d.mu.Unlock()
	}()
	for {
		select {
		case <-q.work:
		default:
		}
		var (
			wait time.Duration
			err  error
		)
		wait, gone, err = d.step(ctx, q.key)
		switch {
		case ctx.Err() != nil:
			return
		case gone:
			return
		case err != nil:
			log.WithError(err).Error("could not deliver notifications")
			wait = time.Second
		}
		if wait == 0 {
			continue
		}
		var idle <-chan time.Time
		if wait < 0 { // nothing to send: wait for work, or end after a while
			t := time.NewTimer(idleTimeout)
			idle = t.C
			select {
			case <-q.work:
				t.Stop()
				continue
			case <-idle:
				d.mu.Lock()
				pending := len(q.work) > 0
				if !pending {
					q.running = false
					delete(d.queues, q.key)
				}
				d.mu.Unlock()
				if pending {
					continue
				}
				return
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
		// Backing off: new work does not shorten the wait.
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// step sends what the pusher has pending, in order, until it is done (wait < 0), the gateway
// fails (wait > 0: the back-off) or more may be pending (wait == 0). gone: the pusher no
// longer exists.
func (d *delivery) step(ctx context.Context, k pusherKey) (wait time.Duration, gone bool, err error) {
	cfg := d.w.cfg
	p, err := storage.GetPusher(ctx, cfg.DB, k.userID, k.appID, k.pushKey)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, true, nil
	}
	if err != nil {
		return 0, false, err
	}
	if p.Kind != KindHTTP {
		return 0, true, nil
	}
	now := cfg.Now()
	if retry := time.UnixMilli(p.RetryAtTS); p.RetryAtTS > 0 && now.Before(retry) {
		return retry.Sub(now), false, nil
	}
	acts, err := storage.PushActions(ctx, cfg.DB, storage.NotificationsQuery{
		UserID: p.UserID, After: p.DeliveredPos, Limit: deliverBatch, OnlyNotify: true, Ascending: true,
	})
	if err != nil {
		return 0, false, err
	}
	if len(acts) == 0 {
		return -1, false, nil
	}
	for _, act := range acts {
		// A notification already read, or too old to matter, is not sent.
		if !act.Read && now.Sub(time.UnixMilli(act.TS)) < cfg.MaxAge {
			err := d.send(ctx, p, act)
			switch {
			case errors.Is(err, errRejected):
				return 0, true, nil
			case errors.Is(err, errPermanent):
				d.w.log.WithError(err).WithFields(logrus.Fields{"user_id": p.UserID, "app_id": p.AppID, "event_id": act.EventID}).
					Warn("the push gateway refused a notification; skipping it")
			case err != nil:
				if ctx.Err() != nil {
					return 0, false, nil
				}
				p.Failures++
				backoff := d.backoff(p.Failures)
				d.w.log.WithError(err).WithFields(logrus.Fields{"user_id": p.UserID, "app_id": p.AppID, "retry_in": backoff}).
					Warn("could not reach the push gateway")
				if err := d.progress(ctx, p, p.DeliveredPos, p.Failures, now.Add(backoff).UnixMilli()); err != nil {
					return 0, false, err
				}
				return backoff, false, nil
			}
		}
		p.DeliveredPos, p.Failures = act.StreamPos, 0
		if err := d.progress(ctx, p, p.DeliveredPos, 0, 0); err != nil {
			return 0, false, err
		}
	}
	if len(acts) < deliverBatch {
		return -1, false, nil
	}
	return 0, false, nil
}

func (d *delivery) progress(ctx context.Context, p storage.Pusher, pos, failures, retryAt int64) error {
	return d.w.cfg.DB.WithTx(ctx, func(tx *storage.Tx) error {
		return tx.SetPusherProgress(ctx, p.UserID, p.AppID, p.PushKey, pos, failures, retryAt)
	})
}

// backoff is the wait after the n-th consecutive failure: MinBackoff doubled n-1 times,
// capped at MaxBackoff.
func (d *delivery) backoff(n int64) time.Duration {
	b := d.w.cfg.MinBackoff
	for i := int64(1); i < n && b < d.w.cfg.MaxBackoff; i++ {
		b *= 2
	}
	return min(b, d.w.cfg.MaxBackoff)
}

// send posts one notification to the pusher's gateway.
func (d *delivery) send(ctx context.Context, p storage.Pusher, act storage.PushAction) error {
	cfg := d.w.cfg
	info, err := d.eventInfo(ctx, act)
	if err != nil {
		return err
	}
	unread, err := d.w.totalUnread(ctx, p.UserID)
	if err != nil {
		return err
	}
	body, err := json.Marshal(buildNotification(p, act, info, unread, cfg.IncludeContent))
	if err != nil {
		return err
	}
	url := gatewayURL(p.Data)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxGatewayResponse))
	if err != nil {
		return err
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("push gateway answered HTTP %d", resp.StatusCode)
	default:
		return fmt.Errorf("%w: HTTP %d", errPermanent, resp.StatusCode)
	}
	var out struct {
		Rejected []string `json:"rejected"`
	}
	_ = json.Unmarshal(raw, &out)
	if slices.Contains(out.Rejected, p.PushKey) {
		err := cfg.DB.WithTx(ctx, func(tx *storage.Tx) error { return tx.DeletePusher(ctx, p.UserID, p.AppID, p.PushKey) })
		if err != nil {
			return err
		}
		d.w.log.WithFields(logrus.Fields{"user_id": p.UserID, "app_id": p.AppID}).Info("the push gateway rejected a pushkey: pusher deleted")
		return errRejected
	}
	d.w.badges.sent(pusherKey{p.UserID, p.AppID, p.PushKey}, unread) // badge.go
	return nil
}

// eventInfo reads the event of an action and what the payload may say of its room.
func (d *delivery) eventInfo(ctx context.Context, act storage.PushAction) (eventInfo, error) {
	db := d.w.cfg.DB
	rec, err := storage.EventByID(ctx, db, act.EventID)
	if errors.Is(err, storage.ErrNotFound) {
		return eventInfo{}, nil
	}
	if err != nil || rec.JSON == nil {
		return eventInfo{}, err
	}
	room, err := storage.GetRoomByNID(ctx, db, rec.Room)
	if err != nil {
		return eventInfo{}, err
	}
	v, err := event.Version(room.Version)
	if err != nil {
		return eventInfo{}, err
	}
	ev, err := event.Parse(rec.JSON, v)
	if err != nil {
		// Stored events were checked on the way in; if one cannot be read back, its
		// notification still goes out, with ids only, rather than blocking the pusher.
		d.w.log.WithError(err).WithField("event_id", act.EventID).Warn("could not parse a notified event")
		return eventInfo{}, nil
	}
	info := eventInfo{ev: ev}
	if !d.w.cfg.IncludeContent {
		return info, nil
	}
	str := func(typ, key, field string) string {
		content, ok, err := d.w.stateContent(ctx, rec.Room, typ, key)
		if err != nil || !ok {
			return ""
		}
		var m map[string]any
		_ = json.Unmarshal(content, &m)
		s, _ := m[field].(string)
		return s
	}
	info.senderDisplayName = str("m.room.member", ev.Sender(), "displayname")
	info.roomName = str("m.room.name", "", "name")
	info.roomAlias = str("m.room.canonical_alias", "", "alias")
	return info, nil
}
