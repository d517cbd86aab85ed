package clientapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"myelin/keys"
	"myelin/mxhttp"
	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
)

// Sending events: messages, state and redactions.

// readContent reads an event's content: a JSON object, at most the size of a whole event.
func readContent(r *http.Request) (json.RawMessage, error) {
	var raw json.RawMessage
	if err := mxhttp.ReadJSON(r, &raw); err != nil {
		return nil, err
	}
	if len(raw) > event.MaxEventBytes {
		return nil, mxhttp.TooLarge("event content exceeds %d bytes", event.MaxEventBytes)
	}
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return nil, mxhttp.BadJSON("event content must be a JSON object")
	}
	// Canonical JSON rejects what other servers would (floats, out-of-range integers), so
	// that a client learns now rather than when federation refuses the event.
	if err := keys.CheckStrictValues(raw); err != nil {
		return nil, mxhttp.BadJSON("event content is not valid canonical JSON: %v", err)
	}
	return raw, nil
}

func eventIDResponse(id string) mxhttp.Response {
	return mxhttp.OK(map[string]string{"event_id": id})
}

// txnLocks serialises the requests of one transaction key within this process, so that a
// retry arriving while the first attempt is still sending waits for it and gets its answer.
// The keys include the device, so API instances sharing it never contend.
var txnLocks keyedMutex

type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*refMutex
}

type refMutex struct {
	sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*refMutex{}
	}
	m := k.locks[key]
	if m == nil {
		m = &refMutex{}
		k.locks[key] = m
	}
	m.refs++
	k.mu.Unlock()
	m.Lock()
	return func() {
		m.Unlock()
		k.mu.Lock()
		if m.refs--; m.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// withTxn makes an event-sending request idempotent per (device, endpoint, transaction id): a
// retransmission gets the event id of the first request, whatever its body, as Synapse does.
//
// When inTx, send passes record to the room server, which stores the transaction id in the
// event's own transaction: a crash can never leave an event without the record that makes its
// retry idempotent, and no look-up is needed first (a tenth of a message's CPU in the send
// benchmark, issue 9): a retry's new event fails to commit on the transaction id's key, and
// any failure is answered with the first request's event if there is one. Otherwise the
// transaction id is looked up first and stored after the event, in two steps; a crash between
// them would let a retry send the event again.
func (a *API) withTxn(ctx context.Context, who Requester, endpoint, txnID string, inTx bool, send func(record roomserver.AlsoInTx) (*event.Event, error)) (mxhttp.Response, error) {
	unlock := txnLocks.lock(who.Localpart + "\x00" + who.DeviceID + "\x00" + endpoint + "\x00" + txnID)
	defer unlock()
	if !inTx {
		id, err := storage.ClientTxnEvent(ctx, a.db, who.Localpart, who.DeviceID, endpoint, txnID)
		if err == nil {
			return eventIDResponse(id), nil
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
	}
	txn := func(ev *event.Event) storage.ClientTxn {
		return storage.ClientTxn{
			Localpart: who.Localpart, DeviceID: who.DeviceID, Endpoint: endpoint, TxnID: txnID,
			EventID: ev.ID(), CreatedTS: a.now().UnixMilli(),
		}
	}
	// Where the room server can, the transaction id commits with the event itself, so that a
	// crash can never leave an event without the record that makes its retry idempotent.
	recorded := false
	ev, err := send(func(ctx context.Context, tx *storage.Tx, ev *event.Event) error {
		recorded = true
		return tx.InsertClientTxn(ctx, txn(ev))
	})
	if err != nil && (inTx || errors.Is(err, storage.ErrConflict)) {
		// A retry (or another process stored the same transaction first): answer with the
		// first event. A retry fails on the transaction id's key, or on a check the first
		// request passed (the room may have changed since).
		if id, lerr := storage.ClientTxnEvent(context.WithoutCancel(ctx), a.db, who.Localpart, who.DeviceID, endpoint, txnID); lerr == nil {
			return eventIDResponse(id), nil
		}
	}
	if err != nil {
		return mxhttp.Response{}, roomError(err)
	}
	if !recorded {
		err = a.db.WithTx(context.WithoutCancel(ctx), func(tx *storage.Tx) error {
			return tx.InsertClientTxn(ctx, txn(ev))
		})
		if err != nil && !errors.Is(err, storage.ErrConflict) {
			// The event is in the room; only the retry protection is missing. Answer with it.
			mxhttp.Logger(ctx).WithError(err).WithField("event_id", ev.ID()).Warn("could not record a transaction id")
		}
	}
	return eventIDResponse(ev.ID()), nil
}

// eventPut is what PUT /send and PUT /state read alike: the room, the event type, the last path
// variable (transaction id or state key) and the content.
type eventPut struct {
	roomID, typ, last string
	content           json.RawMessage
}

// readEventPut reads an eventPut, once the sender is within the rate limit for sending.
func (a *API) readEventPut(r *http.Request, who Requester, last string) (eventPut, error) {
	roomID, v, err := pathRoomVars(r, "eventType", last)
	if err != nil {
		return eventPut{}, err
	}
	if err := a.allowUser("send", who.Localpart); err != nil {
		return eventPut{}, err
	}
	content, err := readContent(r)
	if err != nil {
		return eventPut{}, err
	}
	return eventPut{roomID: roomID, typ: v[0], last: v[1], content: content}, nil
}

// sendMessage is PUT /rooms/{roomId}/send/{eventType}/{txnId}.
func (a *API) sendMessage(r *http.Request, who Requester) (mxhttp.Response, error) {
	p, err := a.readEventPut(r, who, "txnId")
	if err != nil {
		return mxhttp.Response{}, err
	}
	roomID, typ, txnID, content := p.roomID, p.typ, p.last, p.content
	ctx := r.Context()
	if typ == "m.room.redaction" {
		// Since v1.18 a redaction may be sent this way in every room version; it gets the
		// same checks as /redact, which also puts "redacts" where the room version wants it.
		var red struct {
			Redacts string `json:"redacts"`
			Reason  string `json:"reason"`
		}
		if err := json.Unmarshal(content, &red); err != nil || red.Redacts == "" {
			return mxhttp.Response{}, mxhttp.BadJSON("an m.room.redaction needs content.redacts, an event id")
		}
		if err := a.checkSuspendedRedaction(ctx, who, roomID, red.Redacts); err != nil { // redactions.go
			return mxhttp.Response{}, err
		}
		return a.withTxn(ctx, who, "send/"+roomID+"/"+typ, txnID, false, func(roomserver.AlsoInTx) (*event.Event, error) {
			return a.cfg.Rooms.Redact(ctx, roomID, who.UserID, red.Redacts, red.Reason)
		})
	}
	return a.withTxn(ctx, who, "send/"+roomID+"/"+typ, txnID, true, func(record roomserver.AlsoInTx) (*event.Event, error) {
		if err := a.checkRelation(ctx, who, roomID, typ, content); err != nil { // relations_send.go
			return nil, err
		}
		return a.cfg.Rooms.SendEventAlso(ctx, event.Proto{Type: typ, Sender: who.UserID, RoomID: roomID, Content: content}, record)
	})
}

// putState is PUT /rooms/{roomId}/state/{eventType}/{stateKey}. Setting a state entry to what
// it already holds sends nothing and answers with the current event, as Synapse does, so that
// clients retrying a state change do not fill the timeline.
func (a *API) putState(r *http.Request, who Requester) (mxhttp.Response, error) {
	p, err := a.readEventPut(r, who, "stateKey")
	if err != nil {
		return mxhttp.Response{}, err
	}
	roomID, typ, stateKey, content := p.roomID, p.typ, p.last, p.content
	ctx := r.Context()
	if typ == "m.room.canonical_alias" && stateKey == "" {
		if err := a.checkCanonicalAlias(ctx, roomID, content); err != nil {
			return mxhttp.Response{}, err
		}
	}
	if cur, err := a.cfg.Rooms.CurrentStateEvent(ctx, roomID, typ, stateKey); err == nil && cur.Sender() == who.UserID {
		if same, _ := sameJSON(cur.Content(), content); same {
			if m, _ := a.cfg.Rooms.Membership(ctx, roomID, who.UserID); m == "join" {
				return eventIDResponse(cur.ID()), nil
			}
		}
	}
	ev, err := a.cfg.Rooms.SendEvent(ctx, event.Proto{Type: typ, StateKey: &stateKey, Sender: who.UserID, RoomID: roomID, Content: content})
	if err != nil {
		return mxhttp.Response{}, roomError(err)
	}
	return eventIDResponse(ev.ID()), nil
}

func sameJSON(a, b []byte) (bool, error) {
	ca, err := keys.CanonicalJSON(a)
	if err != nil {
		return false, err
	}
	cb, err := keys.CanonicalJSON(b)
	if err != nil {
		return false, err
	}
	return bytes.Equal(ca, cb), nil
}

// checkCanonicalAlias: the aliases of m.room.canonical_alias must be valid and, where they are
// this server's, point to the room (400 M_BAD_ALIAS otherwise), as the spec requires.
func (a *API) checkCanonicalAlias(ctx context.Context, roomID string, content json.RawMessage) error {
	var c struct {
		Alias      *string  `json:"alias"`
		AltAliases []string `json:"alt_aliases"`
	}
	if err := json.Unmarshal(content, &c); err != nil {
		return mxhttp.BadJSON("alias and alt_aliases must be strings")
	}
	var all []string
	if c.Alias != nil && *c.Alias != "" {
		all = append(all, *c.Alias)
	}
	all = append(all, c.AltAliases...)
	for _, alias := range all {
		local, err := a.parseAlias(alias)
		if err != nil {
			return badAlias("%q is not a valid room alias", alias)
		}
		if !local {
			continue // other servers' aliases cannot be checked without federation queries
		}
		target, err := a.resolveAlias(ctx, alias)
		if err != nil || target != roomID {
			return badAlias("room alias %s does not point to this room", alias)
		}
	}
	return nil
}

func badAlias(format string, args ...any) *mxhttp.Error {
	e := mxhttp.InvalidParam(format, args...)
	e.Code = "M_BAD_ALIAS"
	return e
}

// redact is PUT /rooms/{roomId}/redact/{eventId}/{txnId}.
func (a *API) redact(r *http.Request, who Requester) (mxhttp.Response, error) {
	roomID, v, err := pathRoomVars(r, "eventId", "txnId")
	if err != nil {
		return mxhttp.Response{}, err
	}
	eventID, txnID := v[0], v[1]
	if err := a.allowUser("send", who.Localpart); err != nil {
		return mxhttp.Response{}, err
	}
	var req struct {
		Reason string `json:"reason"`
	}
	if err := readOptionalJSON(r, &req); err != nil {
		return mxhttp.Response{}, err
	}
	ctx := r.Context()
	if err := a.checkSuspendedRedaction(ctx, who, roomID, eventID); err != nil { // redactions.go
		return mxhttp.Response{}, err
	}
	return a.withTxn(ctx, who, "redact/"+roomID+"/"+eventID, txnID, false, func(roomserver.AlsoInTx) (*event.Event, error) {
		return a.cfg.Rooms.Redact(ctx, roomID, who.UserID, eventID, req.Reason)
	})
}

// TxnRetention is how long a transaction id is kept: long enough for any client's retries
// and its own echo, as Synapse keeps them, not long enough to become a record of which device
// sent what.
const TxnRetention = 24 * time.Hour

// txnPruneInterval is how often expired transaction ids are deleted.
const txnPruneInterval = time.Hour

// RunTxnRetention deletes transaction ids older than TxnRetention, now and every hour, until
// ctx ends.
func RunTxnRetention(ctx context.Context, db *storage.DB, log *logrus.Entry) {
	prunePeriodically(ctx, db, txnPruneInterval, "transaction ids", log, func(tx *storage.Tx) (int64, error) {
		return tx.PruneClientTxns(ctx, time.Now().Add(-TxnRetention).UnixMilli())
	})
}
