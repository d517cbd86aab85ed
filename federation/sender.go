package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"myelin/keys"
	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Limits of one transaction (server-server API "Transactions").
const (
	maxTxnPDUs = 50
	maxTxnEDUs = 100
	// feedBatch is how many events of the stream the sender reads at a time.
	feedBatch = 100
)

// Default back-off between failed attempts to reach a destination: it doubles from the
// minimum up to the maximum, and resets when the destination contacts us.
const (
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = time.Hour
)

// Requester sends a signed request to another server; *Client is one.
type Requester interface {
	Do(ctx context.Context, destination, method, uri string, body, out any) error
}

var _ Requester = (*Client)(nil)

// SenderConfig is what a Sender needs.
type SenderConfig struct {
	ServerName string
	DB         *storage.DB
	Client     Requester
	// MinBackoff and MaxBackoff bound the wait after failures; defaults DefaultMinBackoff and
	// DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	Now                    func() time.Time
}

// Sender delivers this server's events and EDUs to other servers: one queue per destination,
// kept in the database so that nothing is lost across a restart or while a destination is
// down, sent in transactions of at most 50 PDUs and 100 EDUs, retried with exponential
// back-off that resets as soon as the destination contacts us.
//
// Events reach the queues from the room server's "events" stream: the sender remembers the
// stream position it has queued up to, so an event committed just before a crash is queued
// at the next start. Only this server's own events are sent; events of other servers reach
// the room from their origin (Forward sends one on behalf of another server when the spec asks
// a resident server to, as after send_join).
type Sender struct {
	cfg SenderConfig
	log *logrus.Entry

	newEvents chan struct{}
	// roomServers caches the servers joined to each room; used only by the feed goroutine.
	roomServers map[storage.RoomNID][]string
	// quiet are the rooms whose cached servers (roomServers) hold no other server: a new
	// local event there sends nothing, so it does not wake the feed (OnNewEvent). Reading the
	// new events' headers on every message cost a twentieth of a message's CPU in the send
	// benchmark, where no other server is in the room (issue 9). Written by the feed
	// goroutine, read by the room server's notification.
	quietMu sync.Mutex
	quiet   map[storage.RoomNID]bool

	mu     sync.Mutex
	queues map[string]*destQueue
	// spawn starts the worker of a queue; nil until Run starts.
	spawn func(*destQueue)
}

// destQueue is the in-memory side of one destination's queue.
type destQueue struct {
	name string
	// work is signalled when something was queued; reset when the destination contacted us.
	work  chan struct{}
	reset chan struct{}
	// running: a worker owns the queue. Guarded by Sender.mu.
	running bool

	// The back-off, guarded by Sender.mu: loaded from the database when the first worker
	// starts, unless Wake cleared it (woken) before.
	loaded   bool
	woken    bool
	failures int64
	retryAt  time.Time
}

// NewSender returns a sender; Run starts it.
func NewSender(cfg SenderConfig, log *logrus.Entry) *Sender {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sender{
		cfg:         cfg,
		log:         log.WithField("component", "federation-sender"),
		newEvents:   make(chan struct{}, 1),
		roomServers: map[storage.RoomNID][]string{},
		quiet:       map[storage.RoomNID]bool{},
		queues:      map[string]*destQueue{},
	}
}

// OnNewEvent is the room server subscription: it only signals the sender, which reads the
// event from the stream. Events that can send nothing do not wake it: another server's
// events (never relayed), and events other than memberships in a quiet room. The feed reads
// them with the next batch that something else wakes it for, and passes them by.
func (s *Sender) OnNewEvent(n roomserver.NewEvent) {
	if n.Event != nil && n.Event.Type() != "m.room.member" {
		if serverOf(n.Event.Sender()) != s.cfg.ServerName {
			return
		}
		if n.RoomNID != 0 {
			s.quietMu.Lock()
			quiet := s.quiet[n.RoomNID]
			s.quietMu.Unlock()
			if quiet {
				return
			}
		}
	}
	s.wake()
}

func (s *Sender) wake() {
	select {
	case s.newEvents <- struct{}{}:
	default:
	}
}

// setQuiet records whether a room's cached servers hold no other server. A room that stops
// being quiet wakes the feed once more: an event that skipped the wake-up just before may
// be bound for the server that made the room loud.
func (s *Sender) setQuiet(room storage.RoomNID, quiet bool) {
	s.quietMu.Lock()
	was := s.quiet[room]
	if quiet {
		s.quiet[room] = true
	} else {
		delete(s.quiet, room)
	}
	s.quietMu.Unlock()
	if was && !quiet {
		s.wake()
	}
}

// Wake tells the sender that server has just contacted us: a back-off towards it is dropped
// and its queue is retried at once.
func (s *Sender) Wake(server string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queueLocked(server)
	if q.loaded && q.failures == 0 {
		return
	}
	q.failures, q.retryAt, q.woken = 0, time.Time{}, true
	select {
	case q.reset <- struct{}{}:
	default:
	}
}

// SendEDU queues an EDU for destinations (this server is skipped). content is marshalled to
// JSON unless it is already json.RawMessage or []byte.
func (s *Sender) SendEDU(ctx context.Context, destinations []string, eduType string, content any) error {
	var raw json.RawMessage
	switch c := content.(type) {
	case json.RawMessage:
		raw = c
	case []byte:
		raw = c
	default:
		var err error
		if raw, err = json.Marshal(content); err != nil {
			return fmt.Errorf("federation: encoding %s EDU: %w", eduType, err)
		}
	}
	edu, err := json.Marshal(struct {
		Type    string          `json:"edu_type"`
		Content json.RawMessage `json:"content"`
	}{eduType, raw})
	if err != nil {
		return fmt.Errorf("federation: encoding %s EDU: %w", eduType, err)
	}
	dests := s.others(destinations)
	if len(dests) == 0 {
		return nil
	}
	if err := s.cfg.DB.WithTx(ctx, func(tx *storage.Tx) error { return tx.QueueEDU(ctx, dests, edu) }); err != nil {
		return err
	}
	s.kick(dests...)
	return nil
}

// Forward queues an event of another server for the servers in its room other than the
// event's own and those in exclude: what a resident server does with the event it received
// through send_join, send_leave or send_knock.
func (s *Sender) Forward(ctx context.Context, eventID string, exclude ...string) error {
	var dests []string
	err := s.cfg.DB.WithTx(ctx, func(tx *storage.Tx) error {
		rec, err := storage.EventByID(ctx, tx, eventID)
		if err != nil {
			return err
		}
		all, err := destinationsOf(ctx, tx, rec)
		if err != nil {
			return err
		}
		origin := serverOf(rec.Sender)
		dests = nil
		for _, d := range s.others(all) {
			if d != origin && !slices.Contains(exclude, d) {
				dests = append(dests, d)
			}
		}
		return tx.QueuePDU(ctx, dests, rec.NID)
	})
	if err != nil {
		return fmt.Errorf("federation: forwarding %s: %w", eventID, err)
	}
	s.kick(dests...)
	return nil
}

// Run feeds the queues from the events stream and sends them until ctx ends.
func (s *Sender) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	s.mu.Lock()
	s.spawn = func(q *destQueue) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.work(ctx, q)
		}()
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.spawn = nil
		for _, q := range s.queues {
			q.running = false
		}
		s.mu.Unlock()
		wg.Wait()
	}()

	dests, err := storage.QueuedDestinations(ctx, s.cfg.DB)
	if err != nil {
		return err
	}
	s.kick(dests...)
	return s.feed(ctx)
}

// feed moves this server's new events from the events stream into the queues of the servers
// in their rooms.
func (s *Sender) feed(ctx context.Context) error {
	pos, ok, err := storage.SenderPosition(ctx, s.cfg.DB)
	if err != nil {
		return err
	}
	if !ok {
		// The first start sends nothing of the past: there was no one to send it to.
		if pos, err = storage.CurrentStreamPosition(ctx, s.cfg.DB, "events"); err != nil {
			return err
		}
		if err := s.cfg.DB.WithTx(ctx, func(tx *storage.Tx) error { return tx.SetSenderPosition(ctx, pos) }); err != nil {
			return err
		}
	}
	for {
		next, touched, err := s.feedOnce(ctx, pos)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.WithError(err).Error("could not queue events for federation")
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		s.kick(touched...)
		if next-pos >= feedBatch {
			pos = next
			continue
		}
		pos = next
		select {
		case <-s.newEvents:
		case <-time.After(30 * time.Second): // a safety net; the subscription is the signal
		case <-ctx.Done():
			return nil
		}
	}
}

// feedOnce queues the events after pos and returns the new position and the destinations that
// got something. It reads on the reader pool and takes the (single, on SQLite) writer only when
// there is something to queue: the stored position then moves in the same transaction as the
// queued events. A batch with nothing to send only moves the position in memory; after a restart
// it is read again and again queues nothing.
func (s *Sender) feedOnce(ctx context.Context, pos int64) (int64, []string, error) {
	recs, err := storage.EventHeadersAfterStream(ctx, s.cfg.DB, pos, feedBatch)
	if err != nil || len(recs) == 0 {
		return pos, nil, err
	}
	type queued struct {
		nid   storage.EventNID
		dests []string
	}
	var (
		work    []queued
		touched []string
	)
	for _, rec := range recs {
		if rec.Type == "m.room.member" {
			delete(s.roomServers, rec.Room) // who is joined may change here
			s.setQuiet(rec.Room, false)
		}
		if serverOf(rec.Sender) != s.cfg.ServerName {
			continue
		}
		all, err := s.cachedDestinations(ctx, rec)
		if err != nil {
			return pos, nil, err
		}
		if dests := s.others(all); len(dests) > 0 {
			work = append(work, queued{rec.NID, dests})
			for _, d := range dests {
				if !slices.Contains(touched, d) {
					touched = append(touched, d)
				}
			}
		}
	}
	next := recs[len(recs)-1].StreamPos
	if len(work) == 0 {
		return next, nil, nil
	}
	err = s.cfg.DB.WithTx(ctx, func(tx *storage.Tx) error {
		for _, w := range work {
			if err := tx.QueuePDU(ctx, w.dests, w.nid); err != nil {
				return err
			}
		}
		return tx.SetSenderPosition(ctx, next)
	})
	if err != nil {
		return pos, nil, err
	}
	return next, touched, nil
}

// maxCachedRooms bounds the per-room cache of joined servers.
const maxCachedRooms = 10000

// cachedDestinations is destinationsOf with the servers joined to each room cached between
// membership events, so that a message in a room of 10,000 members does not read its member list.
func (s *Sender) cachedDestinations(ctx context.Context, rec storage.EventRecord) ([]string, error) {
	servers, ok := s.roomServers[rec.Room]
	if !ok {
		members, err := storage.RoomMembers(ctx, s.cfg.DB, rec.Room, "join")
		if err != nil {
			return nil, err
		}
		for _, m := range members {
			if d := serverOf(m); d != "" && !slices.Contains(servers, d) {
				servers = append(servers, d)
			}
		}
		if len(s.roomServers) >= maxCachedRooms {
			clear(s.roomServers)
			s.quietMu.Lock()
			clear(s.quiet)
			s.quietMu.Unlock()
		}
		s.roomServers[rec.Room] = servers
		s.setQuiet(rec.Room, len(s.others(servers)) == 0)
	}
	if rec.Type == "m.room.member" && rec.StateKey != nil {
		if d := serverOf(*rec.StateKey); d != "" && !slices.Contains(servers, d) {
			if add, err := addsTargetServer(ctx, s.cfg.DB, rec); err != nil || !add {
				return servers, err
			}
			return append(slices.Clip(servers), d), nil
		}
	}
	return servers, nil
}

// destinationsOf is where an event goes: the servers of the room's joined members, and for a
// membership event the server of its target (a kicked, banned or leaving user; not an invitee,
// whose server got the invite through the invite API: see addsTargetServer).
func destinationsOf(ctx context.Context, r storage.Reader, rec storage.EventRecord) ([]string, error) {
	members, err := storage.RoomMembers(ctx, r, rec.Room, "join")
	if err != nil {
		return nil, err
	}
	if rec.Type == "m.room.member" && rec.StateKey != nil {
		add, err := addsTargetServer(ctx, r, rec)
		if err != nil {
			return nil, err
		}
		if add {
			members = append(members, *rec.StateKey)
		}
	}
	var out []string
	for _, m := range members {
		if d := serverOf(m); d != "" && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out, nil
}

func serverOf(userID string) string {
	u, err := event.ParseUserID(userID)
	if err != nil {
		return ""
	}
	return string(u.Domain())
}

func (s *Sender) others(dests []string) []string {
	var out []string
	for _, d := range dests {
		if d != "" && d != s.cfg.ServerName && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// kick makes sure each destination's worker runs and looks at its queue.
func (s *Sender) kick(dests ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range dests {
		q := s.queueLocked(d)
		if q.running {
			select {
			case q.work <- struct{}{}:
			default:
			}
			continue
		}
		if s.spawn != nil {
			q.running = true
			s.spawn(q)
		}
	}
}

func (s *Sender) queueLocked(name string) *destQueue {
	q := s.queues[name]
	if q == nil {
		q = &destQueue{name: name, work: make(chan struct{}, 1), reset: make(chan struct{}, 1)}
		s.queues[name] = q
	}
	return q
}

// work sends a destination's queue until it is empty.
func (s *Sender) work(ctx context.Context, q *destQueue) {
	log := s.log.WithField("destination", q.name)
	for ctx.Err() == nil {
		if err := s.loadBackoff(ctx, q); err != nil {
			log.WithError(err).Error("could not read the sending state")
			if !sleep(ctx, s.cfg.MinBackoff, nil) {
				return
			}
			continue
		}
		s.mu.Lock()
		wait := q.retryAt.Sub(s.cfg.Now())
		s.mu.Unlock()
		if wait > 0 {
			sleep(ctx, wait, q.reset)
			continue
		}
		txn, err := s.transaction(ctx, q.name)
		if err != nil {
			log.WithError(err).Error("could not prepare a transaction")
			s.failed(ctx, q, log)
			continue
		}
		if txn == nil {
			s.mu.Lock()
			select {
			case <-q.work:
				s.mu.Unlock()
				continue
			default:
			}
			q.running = false
			s.mu.Unlock()
			return
		}
		err = s.cfg.Client.Do(ctx, q.name, http.MethodPut, "/_matrix/federation/v1/send/"+url.PathEscape(txn.id), txn.body, &txn.resp)
		if err != nil && ctx.Err() != nil {
			return
		}
		var re *RemoteError
		if err != nil && errors.As(err, &re) && (re.Status == http.StatusBadRequest || re.Status == http.StatusRequestEntityTooLarge) {
			// The destination refuses this transaction as such; sending it again would only
			// block everything behind it.
			log.WithError(err).WithField("txn_id", txn.id).Warn("destination refused a transaction; dropping it")
			err = nil
		}
		if err != nil {
			log.WithError(err).WithField("txn_id", txn.id).Debug("sending a transaction failed")
			s.failed(ctx, q, log)
			continue
		}
		for id, r := range txn.resp.PDUs {
			if r.Error != "" {
				log.WithFields(logrus.Fields{"event_id": id, "error": r.Error}).Debug("destination did not accept an event")
			}
		}
		if err := s.delivered(ctx, q, txn); err != nil {
			log.WithError(err).Error("could not record a delivered transaction")
			sleep(ctx, s.cfg.MinBackoff, nil)
		}
	}
}

// sleep waits for d, or until wake is signalled (when not nil); false if ctx ended.
func sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-wake:
	case <-ctx.Done():
		return false
	}
	return true
}

func (s *Sender) loadBackoff(ctx context.Context, q *destQueue) error {
	s.mu.Lock()
	loaded := q.loaded
	s.mu.Unlock()
	if loaded {
		return nil
	}
	d, err := storage.GetDestination(ctx, s.cfg.DB, q.name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !q.loaded {
		q.loaded = true
		if !q.woken {
			q.failures, q.retryAt = d.Failures, time.UnixMilli(d.RetryAtTS)
		}
	}
	return nil
}

// backoff is the wait after the n-th failure in a row.
func (s *Sender) backoff(n int64) time.Duration {
	if n <= 0 {
		return 0
	}
	d := float64(s.cfg.MinBackoff) * math.Pow(2, float64(n-1))
	if d > float64(s.cfg.MaxBackoff) {
		return s.cfg.MaxBackoff
	}
	return time.Duration(d)
}

func (s *Sender) failed(ctx context.Context, q *destQueue, log *logrus.Entry) {
	s.mu.Lock()
	q.failures++
	q.retryAt = s.cfg.Now().Add(s.backoff(q.failures))
	failures, retryAt := q.failures, q.retryAt
	s.mu.Unlock()
	err := s.cfg.DB.WithTx(ctx, func(tx *storage.Tx) error {
		d, err := storage.GetDestination(ctx, tx, q.name)
		if err != nil {
			return err
		}
		d.Failures, d.RetryAtTS = failures, retryAt.UnixMilli()
		return tx.SetDestination(ctx, d)
	})
	if err != nil && ctx.Err() == nil {
		log.WithError(err).Error("could not record a failed attempt")
	}
}

func (s *Sender) delivered(ctx context.Context, q *destQueue, txn *transaction) error {
	s.mu.Lock()
	q.failures, q.retryAt = 0, time.Time{}
	s.mu.Unlock()
	return s.cfg.DB.WithTx(ctx, func(tx *storage.Tx) error {
		if err := tx.DequeueUpTo(ctx, q.name, txn.pduPos, txn.eduPos); err != nil {
			return err
		}
		return tx.SetDestination(ctx, storage.Destination{Name: q.name})
	})
}

// transaction is one PUT /send/{txnId}.
type transaction struct {
	id             string
	pduPos, eduPos int64
	body           txnBody
	resp           struct {
		PDUs map[string]struct {
			Error string `json:"error"`
		} `json:"pdus"`
	}
}

type txnBody struct {
	Origin         string            `json:"origin"`
	OriginServerTS int64             `json:"origin_server_ts"`
	PDUs           []json.RawMessage `json:"pdus"`
	EDUs           []json.RawMessage `json:"edus,omitempty"`
}

// transaction returns the transaction to send to destination: the one attempted before, with
// the same id and contents, or a new one over the head of the queue; nil when the queue is
// empty.
func (s *Sender) transaction(ctx context.Context, destination string) (*transaction, error) {
	var (
		txn  *transaction
		pdus []storage.QueuedPDU
		edus []storage.QueuedEDU
	)
	err := s.cfg.DB.WithTx(ctx, func(tx *storage.Tx) error {
		txn = nil
		d, err := storage.GetDestination(ctx, tx, destination)
		if err != nil {
			return err
		}
		if d.TxnID != "" {
			if pdus, err = storage.QueuedPDUs(ctx, tx, destination, d.TxnPDUPos, maxTxnPDUs); err != nil {
				return err
			}
			if edus, err = storage.QueuedEDUs(ctx, tx, destination, d.TxnEDUPos, maxTxnEDUs); err != nil {
				return err
			}
			if len(pdus)+len(edus) > 0 {
				txn = &transaction{id: d.TxnID, pduPos: d.TxnPDUPos, eduPos: d.TxnEDUPos}
				return nil
			}
		}
		if pdus, err = storage.QueuedPDUs(ctx, tx, destination, math.MaxInt64, maxTxnPDUs); err != nil {
			return err
		}
		if edus, err = storage.QueuedEDUs(ctx, tx, destination, math.MaxInt64, maxTxnEDUs); err != nil {
			return err
		}
		if len(pdus)+len(edus) == 0 {
			if d.TxnID != "" {
				return tx.SetDestination(ctx, storage.Destination{Name: destination, Failures: d.Failures, RetryAtTS: d.RetryAtTS})
			}
			return nil
		}
		txn = &transaction{}
		if txn.id, err = tx.NextTxnID(ctx); err != nil {
			return err
		}
		if len(pdus) > 0 {
			txn.pduPos = pdus[len(pdus)-1].Pos
		}
		if len(edus) > 0 {
			txn.eduPos = edus[len(edus)-1].Pos
		}
		d.TxnID, d.TxnPDUPos, d.TxnEDUPos = txn.id, txn.pduPos, txn.eduPos
		return tx.SetDestination(ctx, d)
	})
	if err != nil || txn == nil {
		return nil, err
	}
	nids := make([]storage.EventNID, len(pdus))
	for i, p := range pdus {
		nids[i] = p.Event
	}
	recs, err := storage.EventsByNID(ctx, s.cfg.DB, nids)
	if err != nil {
		return nil, err
	}
	byNID := make(map[storage.EventNID][]byte, len(recs))
	for _, rec := range recs {
		byNID[rec.NID] = rec.JSON
	}
	txn.body = txnBody{Origin: s.cfg.ServerName, OriginServerTS: s.cfg.Now().UnixMilli(), PDUs: []json.RawMessage{}}
	for _, p := range pdus {
		raw := byNID[p.Event]
		if raw == nil {
			continue // pruned since it was queued: nothing left to send
		}
		txn.body.PDUs = append(txn.body.PDUs, federationPDU(raw))
	}
	for _, e := range edus {
		txn.body.EDUs = append(txn.body.EDUs, e.JSON)
	}
	return txn, nil
}

// federationPDU is a stored event as it goes over federation: without "unsigned", which holds
// what this server adds for its own clients.
func federationPDU(raw []byte) json.RawMessage {
	o, err := keys.ParseObject(raw)
	if err != nil {
		return raw
	}
	return o.Without("unsigned").JSON()
}
