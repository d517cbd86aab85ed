package federation

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"myelin/mxhttp"
	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
)

const (
	// missingEventsLimit bounds what one get_missing_events request asks for when a PDU of a
	// transaction cites events this server does not have. The gap is filled once, never
	// recursively: events fetched that have gaps of their own stay where they are, so a
	// hostile server cannot make us walk an endless (or cyclic) DAG.
	missingEventsLimit = 10
	// maxAuthChainFetch bounds the auth chain taken from one /event_auth answer.
	maxAuthChainFetch = 2000
	// txnProcessingTimeout bounds the work of one transaction, which continues when the
	// sender hangs up so that a retry finds it done.
	txnProcessingTimeout = 5 * time.Minute
	// inboundTxnRetention is how long the answer to a transaction is kept for retries.
	inboundTxnRetention = 24 * time.Hour
)

// inboundState is what the inbound room endpoints share across requests.
type inboundState struct {
	mu sync.Mutex
	// byOrigin serialises the transactions of each origin: the spec has a sender wait for
	// the answer before sending the next one, so only a retry can run concurrently, and it
	// must find the first one's answer.
	byOrigin  map[string]*sync.Mutex
	lastPrune time.Time
}

func (st *inboundState) originLock(origin string) *sync.Mutex {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.byOrigin == nil {
		st.byOrigin = map[string]*sync.Mutex{}
	}
	m := st.byOrigin[origin]
	if m == nil {
		m = &sync.Mutex{}
		st.byOrigin[origin] = m
	}
	return m
}

// inboundTxn is the body of PUT /send/{txnId} (definitions/transaction.yaml).
type inboundTxn struct {
	Origin         string            `json:"origin"`
	OriginServerTS int64             `json:"origin_server_ts"`
	PDUs           []json.RawMessage `json:"pdus"`
	EDUs           []inboundEDU      `json:"edus"`
}

// inboundEDU is definitions/edu.yaml.
type inboundEDU struct {
	Type    string          `json:"edu_type"`
	Content json.RawMessage `json:"content"`
}

// PDUResult is the outcome of one PDU of a transaction; no error means it was handled.
type PDUResult struct {
	Error string `json:"error,omitempty"`
}

// SendResponse is the answer to PUT /send/{txnId}.
type SendResponse struct {
	PDUs map[string]PDUResult `json:"pdus"`
}

// sendTransaction is PUT /_matrix/federation/v1/send/{txnId}.
func (s *Server) sendTransaction(r *http.Request) (mxhttp.Response, error) {
	if _, err := s.rooms(); err != nil {
		return mxhttp.Response{}, err
	}
	origin := OriginFromContext(r.Context())
	txnID, err := pathVar(r, "txnID")
	if err != nil {
		return mxhttp.Response{}, err
	}
	var body inboundTxn
	if err := mxhttp.ReadJSON(r, &body); err != nil {
		return mxhttp.Response{}, err
	}
	if len(body.PDUs) > maxTxnPDUs || len(body.EDUs) > maxTxnEDUs {
		return mxhttp.Response{}, mxhttp.BadJSON("a transaction holds at most %d PDUs and %d EDUs", maxTxnPDUs, maxTxnEDUs)
	}
	lock := s.inbound.originLock(origin)
	lock.Lock()
	defer lock.Unlock()
	// A retried transaction gets the first answer, and nothing is processed twice.
	if s.cfg.DB != nil {
		prev, err := storage.InboundTxnResponse(r.Context(), s.cfg.DB, origin, txnID)
		if err == nil {
			return mxhttp.OK(json.RawMessage(prev)), nil
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return mxhttp.Response{}, mxhttp.Internal(err)
		}
	}
	// The origin is up: a sender backing off from it may stop waiting.
	if w, ok := s.cfg.Forwarder.(interface{ Wake(server string) }); ok {
		w.Wake(origin)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), txnProcessingTimeout)
	defer cancel()
	resp := SendResponse{PDUs: s.processPDUs(ctx, origin, body.PDUs)}
	s.processEDUs(ctx, origin, body.EDUs)
	raw, err := json.Marshal(resp)
	if err != nil {
		return mxhttp.Response{}, mxhttp.Internal(err)
	}
	if s.cfg.DB != nil {
		now := s.now()
		err := s.cfg.DB.WithTx(ctx, func(tx *storage.Tx) error {
			if err := tx.InsertInboundTxn(ctx, origin, txnID, raw, now.UnixMilli()); err != nil {
				return err
			}
			if s.inbound.shouldPrune(now) {
				return tx.PruneInboundTxns(ctx, now.Add(-inboundTxnRetention).UnixMilli())
			}
			return nil
		})
		if err != nil {
			// The transaction was processed; a retry would find every event known already.
			mxhttp.Logger(ctx).WithError(err).Warn("could not record the answer to a transaction")
		}
	}
	return mxhttp.OK(json.RawMessage(raw)), nil
}

func (st *inboundState) shouldPrune(now time.Time) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if now.Sub(st.lastPrune) < time.Hour {
		return false
	}
	st.lastPrune = now
	return true
}

// processPDUs handles the PDUs of a transaction one by one, parents first; one PDU's failure
// never affects the others.
func (s *Server) processPDUs(ctx context.Context, origin string, raws []json.RawMessage) map[string]PDUResult {
	results := make(map[string]PDUResult, len(raws))
	log := mxhttp.Logger(ctx)
	fail := func(raw json.RawMessage, id string, msg string) {
		if id == "" {
			id = pduEventID(raw)
		}
		if id != "" {
			results[id] = PDUResult{Error: msg}
		}
	}
	var evs []*event.Event
	for _, raw := range raws {
		roomID := pduRoomID(raw)
		if roomID == "" {
			fail(raw, "", "the PDU has no room_id")
			continue
		}
		v, err := s.cfg.Rooms.RoomVersion(ctx, roomID)
		if errors.Is(err, roomserver.ErrNotFound) {
			fail(raw, "", "this server is not in the room")
			continue
		}
		if err != nil {
			log.WithError(err).Error("reading a room's version")
			fail(raw, "", "internal error")
			continue
		}
		if in, err := s.cfg.Rooms.ServerInRoom(ctx, roomID, s.cfg.ServerName); err != nil || !in {
			// A room we left: its events are no longer ours to take.
			fail(raw, "", "this server is not in the room")
			continue
		}
		if err := s.checkACL(ctx, roomID, origin); err != nil {
			fail(raw, "", "the server ACL of the room denies "+origin)
			continue
		}
		ev, err := s.checkPDU(ctx, raw, v)
		if err != nil {
			fail(raw, "", err.Error())
			continue
		}
		evs = append(evs, ev)
	}
	// Parents before children, so that a transaction carrying a chain needs no fetching.
	slices.SortStableFunc(evs, func(a, b *event.Event) int { return cmp.Compare(a.Depth(), b.Depth()) })
	for _, ev := range evs {
		if err := s.inputPDU(ctx, origin, ev); err != nil {
			results[ev.ID()] = PDUResult{Error: err.Error()}
			continue
		}
		results[ev.ID()] = PDUResult{}
	}
	return results
}

// inputPDU gives a checked PDU to the room server, fetching once what it cites and this
// server lacks: its auth chain from /event_auth, its prev events from /get_missing_events.
// When the prev events stay missing, the gap is bridged with the state at them (/state_ids,
// roomserver/input_gap.go); only when that fails too is the event kept as an outlier. A
// soft-failed event is handled (no error); a rejected one is an error.
func (s *Server) inputPDU(ctx context.Context, origin string, ev *event.Event) error {
	rooms := s.cfg.Rooms
	status, err := rooms.InputRemote(ctx, ev)
	var missing *roomserver.MissingEventsError
	if errors.As(err, &missing) {
		if len(missing.Auth) > 0 {
			s.fetchAuthChain(ctx, origin, ev)
		}
		if len(missing.Prev) > 0 {
			s.fetchMissingPrev(ctx, origin, ev)
		}
		status, err = rooms.InputRemote(ctx, ev)
	}
	if errors.Is(err, roomserver.ErrMissingEvents) && s.cfg.Remote != nil {
		// get_missing_events did not close the gap: bridge it with the state at the prev
		// events (/state_ids), so that the event still reaches the timeline.
		status, err = rooms.InputRemoteAfterGap(ctx, origin, ev)
		if err != nil && errors.Is(err, roomserver.ErrMissingEvents) {
			mxhttp.Logger(ctx).WithError(err).WithField("event_id", ev.ID()).Debug("could not bridge a gap with /state_ids")
		}
	}
	if errors.Is(err, roomserver.ErrMissingEvents) {
		// The gap could not be filled (or a prev event is an outlier, whose state is
		// unknown): keep the event outside the timeline, checked against its auth events.
		if _, oerr := rooms.InputOutlier(ctx, ev); oerr != nil {
			if errors.Is(oerr, roomserver.ErrRejected) {
				return fmt.Errorf("rejected: %w", oerr)
			}
			return fmt.Errorf("events it cites are missing: %w", err)
		}
		mxhttp.Logger(ctx).WithField("event_id", ev.ID()).Debug("prev events unavailable: stored as an outlier")
		return nil
	}
	return pduOutcome(ctx, status, err)
}

func pduOutcome(ctx context.Context, status roomserver.InputStatus, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, roomserver.ErrRejected):
		return err
	case errors.Is(err, roomserver.ErrInvalid), errors.Is(err, roomserver.ErrNotFound):
		return err
	}
	mxhttp.Logger(ctx).WithError(err).Error("inputting a PDU")
	return errors.New("internal error")
}

// fetchMissingPrev asks origin for the events between our forward extremities and ev, once,
// bounded by missingEventsLimit and by the depth of our extremities, and inputs those it
// gives, oldest first. Failures are logged: the caller falls back to an outlier.
func (s *Server) fetchMissingPrev(ctx context.Context, origin string, ev *event.Event) {
	if s.cfg.Remote == nil {
		return
	}
	log := mxhttp.Logger(ctx).WithFields(logrus.Fields{"event_id": ev.ID(), "room_id": ev.RoomID()})
	ext, err := s.cfg.Rooms.ForwardExtremities(ctx, ev.RoomID())
	if err != nil {
		log.WithError(err).Warn("reading forward extremities")
		return
	}
	earliest := make([]string, 0, len(ext))
	var minDepth int64
	for i, e := range ext {
		earliest = append(earliest, e.ID())
		if i == 0 || e.Depth() < minDepth {
			minDepth = e.Depth()
		}
	}
	req := map[string]any{
		"earliest_events": earliest, "latest_events": []string{ev.ID()},
		"limit": missingEventsLimit, "min_depth": minDepth,
	}
	var resp struct {
		Events []json.RawMessage `json:"events"`
	}
	uri := "/_matrix/federation/v1/get_missing_events/" + url.PathEscape(ev.RoomID())
	if err := s.cfg.Remote.Do(ctx, origin, http.MethodPost, uri, req, &resp); err != nil {
		log.WithError(err).Debug("get_missing_events failed")
		return
	}
	var got []*event.Event
	for _, raw := range resp.Events[:min(len(resp.Events), missingEventsLimit)] {
		if pduRoomID(raw) != ev.RoomID() {
			continue
		}
		e, err := s.checkPDU(ctx, raw, ev.Version())
		if err != nil || e.ID() == ev.ID() {
			continue
		}
		got = append(got, e)
	}
	slices.SortStableFunc(got, func(a, b *event.Event) int { return cmp.Compare(a.Depth(), b.Depth()) })
	for _, e := range got {
		_, err := s.cfg.Rooms.InputRemote(ctx, e)
		var missing *roomserver.MissingEventsError
		if errors.As(err, &missing) && len(missing.Auth) > 0 && len(missing.Prev) == 0 {
			s.fetchAuthChain(ctx, origin, e)
			_, err = s.cfg.Rooms.InputRemote(ctx, e)
		}
		if err != nil && !errors.Is(err, roomserver.ErrRejected) {
			log.WithError(err).WithField("missing_event_id", e.ID()).Debug("a fetched missing event was not accepted")
		}
	}
}

// fetchAuthChain takes the auth chain of ev from origin (/event_auth) and stores the events
// this server lacks as outliers, oldest first.
func (s *Server) fetchAuthChain(ctx context.Context, origin string, ev *event.Event) {
	if s.cfg.Remote == nil {
		return
	}
	log := mxhttp.Logger(ctx).WithFields(logrus.Fields{"event_id": ev.ID(), "room_id": ev.RoomID()})
	var resp struct {
		AuthChain []json.RawMessage `json:"auth_chain"`
	}
	uri := "/_matrix/federation/v1/event_auth/" + url.PathEscape(ev.RoomID()) + "/" + url.PathEscape(ev.ID())
	if err := s.cfg.Remote.Do(ctx, origin, http.MethodGet, uri, nil, &resp); err != nil {
		log.WithError(err).Debug("event_auth failed")
		return
	}
	var chain []*event.Event
	for _, raw := range resp.AuthChain[:min(len(resp.AuthChain), maxAuthChainFetch)] {
		e, err := s.checkPDU(ctx, raw, ev.Version())
		if err != nil || e.RoomID() != ev.RoomID() {
			continue
		}
		chain = append(chain, e)
	}
	slices.SortStableFunc(chain, func(a, b *event.Event) int { return cmp.Compare(a.Depth(), b.Depth()) })
	for _, e := range chain {
		if _, err := s.cfg.Rooms.InputOutlier(ctx, e); err != nil && !errors.Is(err, roomserver.ErrRejected) {
			log.WithError(err).WithField("auth_event_id", e.ID()).Debug("an auth event was not stored")
		}
	}
}

// processEDUs hands the EDUs of a transaction to their handlers, after applying server ACLs
// to those local to a room (typing notifications and receipts). Unknown types are ignored.
func (s *Server) processEDUs(ctx context.Context, origin string, edus []inboundEDU) {
	log := mxhttp.Logger(ctx)
	for _, e := range edus {
		h := s.cfg.EDUHandlers[e.Type]
		if h == nil {
			continue
		}
		content := e.Content
		switch e.Type {
		case "m.typing":
			var c struct {
				RoomID string `json:"room_id"`
			}
			if json.Unmarshal(content, &c) != nil || s.checkACL(ctx, c.RoomID, origin) != nil {
				continue
			}
		case "m.receipt":
			var byRoom map[string]json.RawMessage
			if json.Unmarshal(content, &byRoom) != nil {
				continue
			}
			for roomID := range byRoom {
				if s.checkACL(ctx, roomID, origin) != nil {
					delete(byRoom, roomID)
				}
			}
			if len(byRoom) == 0 {
				continue
			}
			content, _ = json.Marshal(byRoom)
		}
		if err := h.HandleEDU(ctx, origin, content); err != nil {
			log.WithError(err).WithField("edu_type", e.Type).Debug("an EDU was not handled")
		}
	}
}
