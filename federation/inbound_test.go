package federation

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"myelin/keys"
	"myelin/roomserver"
	"myelin/roomserver/event"
	"myelin/storage"
	"myelin/storage/storagetest"
)

// inboundEnv is our server ("hs1.test": a room server behind a federation server over real
// TLS) and hand-driven remote servers ("remote.test", "other.test") that sign with their own
// keys, publish them from a tiny key endpoint, and answer what we ask them through handlers
// the test sets.
type inboundEnv struct {
	t      *testing.T
	ctx    context.Context
	db     *storage.DB
	rooms  *roomserver.Server
	fed    *Server
	remote *fakeServer
	other  *fakeServer
	edus   *eduRecorder
}

type fakeServer struct {
	name   string
	key    keys.SigningKey
	client *Client

	mu       sync.Mutex
	handlers map[string]http.HandlerFunc // by path prefix, for what hs1 asks this server
	calls    map[string]int
}

func (f *fakeServer) handle(prefix string, h http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers[prefix] = h
}

func (f *fakeServer) callsTo(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[prefix]
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_matrix/key/v2/server" {
		b, _ := json.Marshal(ServerKeys{ServerName: f.name, ValidUntilTS: time.Now().Add(time.Hour).UnixMilli(),
			VerifyKeys: map[string]VerifyKey{f.key.ID: {Key: keys.EncodeBase64(f.key.Public())}}, OldVerifyKeys: map[string]OldVerifyKey{}})
		signed, _ := keys.SignJSON(f.name, f.key.ID, f.key.Private, b)
		_, _ = w.Write(signed)
		return
	}
	f.mu.Lock()
	var h http.HandlerFunc
	for p, hh := range f.handlers {
		if strings.HasPrefix(r.URL.Path, p) {
			h = hh
			f.calls[p]++
		}
	}
	f.mu.Unlock()
	if h == nil {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errcode":"M_UNRECOGNIZED","error":"no"}`))
		return
	}
	h(w, r)
}

type eduRecorder struct {
	mu  sync.Mutex
	got []string
}

func (e *eduRecorder) HandleEDU(_ context.Context, origin string, content json.RawMessage) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, origin+" "+string(content))
	return nil
}

func newInboundEnv(t *testing.T, db *storage.DB) *inboundEnv {
	t.Helper()
	ca := newTestCA(t)
	res := &mapResolver{addrs: map[string]string{}}
	key, _ := keys.GenerateSigningKey()
	client, err := NewClient("hs1.test", key, []string{ca.path}, WithResolver(res), WithTimeout(10*time.Second), WithPrivateAddresses(true))
	if err != nil {
		t.Fatal(err)
	}
	ring := NewKeyRing(KeyRingConfig{ServerName: "hs1.test", SigningKey: key}, db, client)
	rooms := roomserver.New(db, "hs1.test", key, roomserver.Options{})
	log := logrus.New()
	log.SetOutput(io.Discard)
	edus := &eduRecorder{}
	fed := NewServer(Config{ServerName: "hs1.test", SigningKey: key, MaxBodyBytes: 1 << 20, KeyRing: ring,
		Rooms: rooms, DB: db, Remote: client,
		EDUHandlers: map[string]EDUHandler{"m.typing": edus, "m.receipt": edus}}, logrus.NewEntry(log))
	hs := httptest.NewUnstartedServer(fed.Handler())
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "hs1.test")}}
	hs.StartTLS()
	t.Cleanup(hs.Close)
	res.addrs["hs1.test"] = hs.Listener.Addr().String()

	fake := func(name string) *fakeServer {
		k, _ := keys.GenerateSigningKey()
		c, err := NewClient(name, k, []string{ca.path}, WithResolver(res), WithTimeout(10*time.Second), WithPrivateAddresses(true))
		if err != nil {
			t.Fatal(err)
		}
		f := &fakeServer{name: name, key: k, client: c, handlers: map[string]http.HandlerFunc{}, calls: map[string]int{}}
		srv := httptest.NewUnstartedServer(f)
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, name)}}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		res.mu.Lock()
		res.addrs[name] = srv.Listener.Addr().String()
		res.mu.Unlock()
		return f
	}
	return &inboundEnv{t: t, ctx: context.Background(), db: db, rooms: rooms, fed: fed,
		remote: fake("remote.test"), other: fake("other.test"), edus: edus}
}

// do sends a signed request from f to hs1.
func (f *fakeServer) do(t *testing.T, method, uri string, body, out any) error {
	t.Helper()
	return f.client.Do(context.Background(), "hs1.test", method, uri, body, out)
}

// build makes an event of f's server by hand.
func (f *fakeServer) build(t *testing.T, v event.RoomVersion, p event.Proto) *event.Event {
	t.Helper()
	if p.OriginServerTS == 0 {
		p.OriginServerTS = time.Now().UnixMilli()
	}
	ev, err := event.Build(p, v, f.name, f.key)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// signTemplate completes a make_* template as the joining server must, and signs it.
func (f *fakeServer) signTemplate(t *testing.T, v event.RoomVersion, tmpl json.RawMessage) *event.Event {
	t.Helper()
	o, err := keys.ParseObject(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	o = o.With("origin", keys.Quote(f.name)).With("origin_server_ts", []byte("1700000000000"))
	if v.EventIDs == event.IDServerMinted {
		o = o.With("event_id", keys.Quote("$"+strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", "")+":"+f.name))
	}
	signed, err := event.HashAndSign(o.JSON(), v, f.name, f.key)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := event.Parse(signed, v)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func remoteCode(err error) (int, string) {
	var re *RemoteError
	if errors.As(err, &re) {
		return re.Status, re.Code
	}
	return 0, ""
}

func esc(s string) string { return url.PathEscape(s) }

// join makes user (of f) join roomID on hs1 through make_join and send_join v2.
func (e *inboundEnv) join(f *fakeServer, roomID, user string) (*event.Event, map[string]json.RawMessage) {
	t := e.t
	t.Helper()
	var tmpl struct {
		RoomVersion string          `json:"room_version"`
		Event       json.RawMessage `json:"event"`
	}
	q := "?ver=1&ver=10&ver=12"
	if err := f.do(t, "GET", "/_matrix/federation/v1/make_join/"+esc(roomID)+"/"+esc(user)+q, nil, &tmpl); err != nil {
		t.Fatalf("make_join: %v", err)
	}
	v := event.MustVersion(tmpl.RoomVersion)
	ev := f.signTemplate(t, v, tmpl.Event)
	var resp map[string]json.RawMessage
	if err := f.do(t, "PUT", "/_matrix/federation/v2/send_join/"+esc(roomID)+"/"+esc(ev.ID()), json.RawMessage(ev.JSON()), &resp); err != nil {
		t.Fatalf("send_join: %v", err)
	}
	return ev, resp
}

// send sends a transaction from f and returns the per-PDU results.
func (e *inboundEnv) send(f *fakeServer, txnID string, pdus []*event.Event, edus ...map[string]any) map[string]PDUResult {
	e.t.Helper()
	raws := make([]json.RawMessage, len(pdus))
	for i, p := range pdus {
		raws[i] = p.JSON()
	}
	body := map[string]any{"origin": f.name, "origin_server_ts": time.Now().UnixMilli(), "pdus": raws}
	if len(edus) > 0 {
		body["edus"] = edus
	}
	var resp SendResponse
	if err := f.do(e.t, "PUT", "/_matrix/federation/v1/send/"+txnID, body, &resp); err != nil {
		e.t.Fatalf("send %s: %v", txnID, err)
	}
	return resp.PDUs
}

func (e *inboundEnv) record(id string) storage.EventRecord {
	e.t.Helper()
	rec, err := storage.EventByID(e.ctx, e.db, id)
	if err != nil {
		e.t.Fatalf("event %s: %v", id, err)
	}
	return rec
}

func (e *inboundEnv) stateEvent(roomID, typ, sk string) *event.Event {
	e.t.Helper()
	ev, err := e.rooms.CurrentStateEvent(e.ctx, roomID, typ, sk)
	if err != nil {
		e.t.Fatal(err)
	}
	return ev
}

const (
	alice = "@alice:hs1.test"
	bob   = "@bob:remote.test"
)

func TestInboundRooms(t *testing.T) {
	for _, version := range []string{"1", "10", "12"} {
		t.Run("v"+version, func(t *testing.T) {
			storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
				testInboundRooms(t, db, version)
			})
		})
	}
}

func testInboundRooms(t *testing.T, db *storage.DB, version string) {
	e := newInboundEnv(t, db)
	ctx := e.ctx
	v := event.MustVersion(version)
	roomID, err := e.rooms.CreateRoom(ctx, roomserver.CreateRoomRequest{Creator: alice, RoomVersion: version, Preset: roomserver.PresetPublicChat})
	if err != nil {
		t.Fatal(err)
	}
	remote := e.remote

	// Joining: make_join, then send_join.
	if version != "1" {
		err := remote.do(t, "GET", "/_matrix/federation/v1/make_join/"+esc(roomID)+"/"+esc(bob)+"?ver=1", nil, nil)
		if st, code := remoteCode(err); st != 400 || code != "M_INCOMPATIBLE_ROOM_VERSION" {
			t.Errorf("make_join with an unsupported version: %v", err)
		}
	}
	err = remote.do(t, "GET", "/_matrix/federation/v1/make_join/"+esc(roomID)+"/"+esc("@bob:other.test")+"?ver="+version, nil, nil)
	if st, code := remoteCode(err); st != 403 || code != "M_FORBIDDEN" {
		t.Errorf("make_join for another server's user: %v", err)
	}
	err = remote.do(t, "GET", "/_matrix/federation/v1/make_join/"+esc("!nope:hs1.test")+"/"+esc(bob)+"?ver="+version, nil, nil)
	if st, code := remoteCode(err); st != 404 || code != "M_NOT_FOUND" {
		t.Errorf("make_join for an unknown room: %v", err)
	}
	join, resp := e.join(remote, roomID, bob)
	if m, _ := e.rooms.Membership(ctx, roomID, bob); m != "join" {
		t.Fatalf("bob is %q after send_join", m)
	}
	var state, chain []json.RawMessage
	_ = json.Unmarshal(resp["state"], &state)
	_ = json.Unmarshal(resp["auth_chain"], &chain)
	if len(state) < 4 || len(chain) == 0 {
		t.Errorf("send_join answer: %d state, %d auth chain", len(state), len(chain))
	}
	if got, err := event.Parse(resp["event"], v); err != nil || got.ID() != join.ID() {
		t.Errorf("send_join answer's event: %v", err)
	}
	for _, raw := range state {
		if ev, err := event.Parse(raw, v); err != nil || ev.ID() == join.ID() {
			t.Errorf("state before the join holds %v / the join", err)
		}
	}

	pl := e.stateEvent(roomID, "m.room.power_levels", "")
	create := e.stateEvent(roomID, "m.room.create", "")
	authOf := func(evs ...*event.Event) []string {
		var ids []string
		if !v.RoomIDFromCreateEvent {
			ids = append(ids, create.ID())
		}
		for _, ev := range evs {
			ids = append(ids, ev.ID())
		}
		return ids
	}
	msg := func(body string, prev ...*event.Event) *event.Event {
		p := event.Proto{Type: "m.room.message", Sender: bob, RoomID: roomID, Content: json.RawMessage(`{"msgtype":"m.text","body":"` + body + `"}`),
			AuthEvents: authOf(pl, join)}
		for _, ev := range prev {
			p.PrevEvents = append(p.PrevEvents, ev.ID())
			p.Depth = max(p.Depth, ev.Depth()+1)
		}
		return remote.build(t, v, p)
	}

	t.Run("send", func(t *testing.T) {
		m1 := msg("hello", join)
		res := e.send(remote, "t1", []*event.Event{m1})
		if r, ok := res[m1.ID()]; !ok || r.Error != "" {
			t.Fatalf("results %+v", res)
		}
		if rec := e.record(m1.ID()); rec.StreamPos == 0 || rec.Rejected {
			t.Errorf("message stored as %+v", rec)
		}
		// The same transaction id again: the first answer, nothing processed.
		m2 := msg("not processed", m1)
		again := e.send(remote, "t1", []*event.Event{m2})
		if _, ok := again[m1.ID()]; !ok || len(again) != 1 {
			t.Errorf("retried transaction answered %+v", again)
		}
		if _, err := storage.EventByID(ctx, db, m2.ID()); err == nil {
			t.Errorf("the retried transaction's new body was processed")
		}
		// A transaction id is per origin.
		if res := e.send(e.other, "t1", nil); len(res) != 0 {
			t.Errorf("other's t1: %+v", res)
		}

		// One bad PDU does not fail the others.
		forged := msg("forged", m1)
		o, _ := keys.ParseObject(forged.JSON())
		otherKey, _ := keys.GenerateSigningKey()
		resigned, _ := event.HashAndSign(o.Without("signatures").JSON(), v, "remote.test", keys.SigningKey{ID: remote.key.ID, Private: otherKey.Private})
		forgedEv, _ := event.Parse(resigned, v)
		// Signed by other.test's server for a remote.test sender: the sender's server
		// signature is missing.
		wrongOrigin := e.other.build(t, v, event.Proto{Type: "m.room.message", Sender: bob, RoomID: roomID,
			Content: json.RawMessage(`{"body":"x"}`), PrevEvents: []string{m1.ID()}, Depth: m1.Depth() + 1, AuthEvents: authOf(pl, join)})
		// A content hash mismatch: the signature covers the redacted event and still holds.
		tampered := msg("original", m1)
		to, _ := keys.ParseObject(tampered.JSON())
		to = to.With("content", []byte(`{"msgtype":"m.text","body":"tampered"}`))
		tamperedEv, err := event.Parse(to.JSON(), v)
		if err != nil {
			t.Fatal(err)
		}
		good := msg("good", m1)
		noRoom := remote.build(t, v, event.Proto{Type: "m.room.message", Sender: bob, RoomID: "!unknown:remote.test",
			Content: json.RawMessage(`{}`), PrevEvents: []string{m1.ID()}, Depth: 5, AuthEvents: []string{m1.ID()}})
		res = e.send(remote, "t2", []*event.Event{forgedEv, wrongOrigin, tamperedEv, good, noRoom})
		for _, bad := range []*event.Event{forgedEv, wrongOrigin, noRoom} {
			if res[bad.ID()].Error == "" {
				t.Errorf("bad PDU %s accepted: %+v", bad.ID(), res)
			}
			if _, err := storage.EventByID(ctx, db, bad.ID()); err == nil {
				t.Errorf("bad PDU %s stored", bad.ID())
			}
		}
		if res[good.ID()].Error != "" || res[tamperedEv.ID()].Error != "" {
			t.Errorf("good PDUs: %+v", res)
		}
		stored, err := e.rooms.Event(ctx, tamperedEv.ID())
		if err != nil || string(stored.Content()) != "{}" {
			t.Errorf("tampered event stored with content %s (%v), want redacted", stored.Content(), err)
		}
	})

	t.Run("size limits", func(t *testing.T) {
		// event.Build refuses an oversized event: the raw JSON is made by hand.
		raw := `{"type":"m.room.message","room_id":"` + roomID + `","sender":"` + bob + `","content":{"body":"` + strings.Repeat("x", 70000) + `"}}`
		var resp SendResponse
		err := remote.do(t, "PUT", "/_matrix/federation/v1/send/big", map[string]any{"origin": "remote.test", "origin_server_ts": 1,
			"pdus": []json.RawMessage{json.RawMessage(raw)}}, &resp)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range resp.PDUs {
			if r.Error == "" {
				t.Errorf("oversized PDU accepted")
			}
		}
		many := make([]json.RawMessage, 51)
		for i := range many {
			many[i] = json.RawMessage(`{}`)
		}
		err = remote.do(t, "PUT", "/_matrix/federation/v1/send/many", map[string]any{"origin": "remote.test", "origin_server_ts": 1, "pdus": many}, nil)
		if st, _ := remoteCode(err); st != 400 {
			t.Errorf("51 PDUs: %v", err)
		}
	})

	t.Run("missing events", func(t *testing.T) {
		ext, _ := e.rooms.ForwardExtremities(ctx, roomID)
		a := msg("a", ext...)
		b := msg("b", a)
		c := msg("c", b)
		remote.handle("/_matrix/federation/v1/get_missing_events/", func(w http.ResponseWriter, r *http.Request) {
			var req struct {
				Latest   []string `json:"latest_events"`
				Earliest []string `json:"earliest_events"`
				Limit    int      `json:"limit"`
			}
			_ = json.NewDecoder(r.Body).Decode(&req)
			if len(req.Latest) != 1 || req.Latest[0] != c.ID() || req.Limit != 10 || len(req.Earliest) == 0 {
				t.Errorf("get_missing_events request %+v", req)
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"events": []json.RawMessage{b.JSON(), a.JSON()}})
		})
		res := e.send(remote, "t3", []*event.Event{c})
		if res[c.ID()].Error != "" {
			t.Fatalf("c: %+v", res)
		}
		for _, ev := range []*event.Event{a, b, c} {
			if rec := e.record(ev.ID()); rec.StreamPos == 0 || rec.Outlier {
				t.Errorf("%s stored as %+v", ev.ID(), rec)
			}
		}

		// A gap that cannot be filled: the remote answers with events that have gaps of their
		// own, and with the event itself. We ask once, and keep the event as an outlier.
		ghost := msg("ghost", c)
		ghost2 := msg("ghost2", ghost)
		d := msg("d", ghost2)
		remote.handle("/_matrix/federation/v1/get_missing_events/", func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewEncoder(w).Encode(map[string]any{"events": []json.RawMessage{ghost2.JSON(), d.JSON()}})
		})
		before := remote.callsTo("/_matrix/federation/v1/get_missing_events/")
		res = e.send(remote, "t4", []*event.Event{d})
		if res[d.ID()].Error != "" {
			t.Errorf("d: %+v", res)
		}
		if n := remote.callsTo("/_matrix/federation/v1/get_missing_events/") - before; n != 1 {
			t.Errorf("%d get_missing_events requests, want 1", n)
		}
		if rec := e.record(d.ID()); !rec.Outlier || rec.StreamPos != 0 {
			t.Errorf("d stored as %+v, want an outlier", rec)
		}
		if got, _ := e.rooms.ForwardExtremities(ctx, roomID); len(got) != 1 || got[0].ID() != c.ID() {
			t.Errorf("extremities after the outlier: %v", got)
		}
	})

	t.Run("reads", func(t *testing.T) {
		ext, _ := e.rooms.ForwardExtremities(ctx, roomID)
		last := ext[0]
		var single struct {
			Origin string            `json:"origin"`
			PDUs   []json.RawMessage `json:"pdus"`
		}
		if err := remote.do(t, "GET", "/_matrix/federation/v1/event/"+esc(last.ID()), nil, &single); err != nil || len(single.PDUs) != 1 || single.Origin != "hs1.test" {
			t.Fatalf("event: %v %+v", err, single)
		}
		// other.test has no user in the room: the room's history is shared with members only.
		if st, code := remoteCode(e.other.do(t, "GET", "/_matrix/federation/v1/event/"+esc(last.ID()), nil, nil)); st != 403 || code != "M_FORBIDDEN" {
			t.Errorf("event for a server outside the room: %d %s", st, code)
		}
		if st, _ := remoteCode(remote.do(t, "GET", "/_matrix/federation/v1/event/"+esc("$nope"), nil, nil)); st != 404 {
			t.Errorf("unknown event: %d", st)
		}
		var ids struct {
			PDUIDs       []string `json:"pdu_ids"`
			AuthChainIDs []string `json:"auth_chain_ids"`
		}
		if err := remote.do(t, "GET", "/_matrix/federation/v1/state_ids/"+esc(roomID)+"?event_id="+url.QueryEscape(last.ID()), nil, &ids); err != nil {
			t.Fatal(err)
		}
		if len(ids.PDUIDs) < 5 || len(ids.AuthChainIDs) == 0 {
			t.Errorf("state_ids %+v", ids)
		}
		var st struct {
			PDUs      []json.RawMessage `json:"pdus"`
			AuthChain []json.RawMessage `json:"auth_chain"`
		}
		if err := remote.do(t, "GET", "/_matrix/federation/v1/state/"+esc(roomID)+"?event_id="+url.QueryEscape(last.ID()), nil, &st); err != nil || len(st.PDUs) != len(ids.PDUIDs) {
			t.Errorf("state: %v, %d events", err, len(st.PDUs))
		}
		if st, _ := remoteCode(remote.do(t, "GET", "/_matrix/federation/v1/state_ids/"+esc(roomID), nil, nil)); st != 400 {
			t.Errorf("state_ids without event_id: %d", st)
		}
		var ea struct {
			AuthChain []json.RawMessage `json:"auth_chain"`
		}
		if err := remote.do(t, "GET", "/_matrix/federation/v1/event_auth/"+esc(roomID)+"/"+esc(join.ID()), nil, &ea); err != nil || len(ea.AuthChain) < 3 {
			t.Errorf("event_auth: %v, %d", err, len(ea.AuthChain))
		}
		var bf struct {
			PDUs []json.RawMessage `json:"pdus"`
		}
		if err := remote.do(t, "GET", "/_matrix/federation/v1/backfill/"+esc(roomID)+"?limit=3&v="+url.QueryEscape(last.ID()), nil, &bf); err != nil || len(bf.PDUs) != 3 {
			t.Fatalf("backfill: %v, %d", err, len(bf.PDUs))
		}
		if got, _ := event.Parse(bf.PDUs[2], v); got == nil || got.ID() != last.ID() {
			t.Errorf("backfill does not end with the event asked for")
		}
		var gme struct {
			Events []json.RawMessage `json:"events"`
		}
		if err := remote.do(t, "POST", "/_matrix/federation/v1/get_missing_events/"+esc(roomID),
			map[string]any{"earliest_events": []string{join.ID()}, "latest_events": []string{last.ID()}, "limit": 2}, &gme); err != nil || len(gme.Events) != 2 {
			t.Errorf("get_missing_events: %v, %d", err, len(gme.Events))
		}
		for _, raw := range gme.Events {
			if got, _ := event.Parse(raw, v); got == nil || got.ID() == last.ID() || got.ID() == join.ID() {
				t.Errorf("get_missing_events returned a latest or earliest event")
			}
		}
		var tte struct {
			EventID string `json:"event_id"`
			TS      int64  `json:"origin_server_ts"`
		}
		if err := remote.do(t, "GET", "/_matrix/federation/v1/timestamp_to_event/"+esc(roomID)+"?dir=b&ts="+
			strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10), nil, &tte); err != nil || tte.EventID == "" {
			t.Errorf("timestamp_to_event: %v %+v", err, tte)
		}
	})

	t.Run("EDUs", func(t *testing.T) {
		e.send(remote, "t5", nil,
			map[string]any{"edu_type": "m.typing", "content": map[string]any{"room_id": roomID, "user_id": bob, "typing": true}},
			map[string]any{"edu_type": "m.unknown", "content": map[string]any{}})
		e.edus.mu.Lock()
		defer e.edus.mu.Unlock()
		if len(e.edus.got) != 1 || !strings.HasPrefix(e.edus.got[0], "remote.test ") {
			t.Errorf("EDUs handled: %v", e.edus.got)
		}
		e.edus.got = nil
	})

	t.Run("leave", func(t *testing.T) {
		var tmpl struct {
			RoomVersion string          `json:"room_version"`
			Event       json.RawMessage `json:"event"`
		}
		if err := remote.do(t, "GET", "/_matrix/federation/v1/make_leave/"+esc(roomID)+"/"+esc(bob), nil, &tmpl); err != nil {
			t.Fatal(err)
		}
		leave := remote.signTemplate(t, v, tmpl.Event)
		// An event id that is not the path's is refused.
		if st, code := remoteCode(remote.do(t, "PUT", "/_matrix/federation/v2/send_leave/"+esc(roomID)+"/"+esc("$other"), json.RawMessage(leave.JSON()), nil)); st != 400 || code != "M_INVALID_PARAM" {
			t.Errorf("send_leave with another id: %d %s", st, code)
		}
		// other.test cannot send remote.test's leave.
		if st, code := remoteCode(e.other.do(t, "PUT", "/_matrix/federation/v2/send_leave/"+esc(roomID)+"/"+esc(leave.ID()), json.RawMessage(leave.JSON()), nil)); st != 400 || code != "M_INVALID_PARAM" {
			t.Errorf("send_leave from another origin: %d %s", st, code)
		}
		var out []any
		if err := remote.do(t, "PUT", "/_matrix/federation/v1/send_leave/"+esc(roomID)+"/"+esc(leave.ID()), json.RawMessage(leave.JSON()), &out); err != nil || len(out) != 2 {
			t.Fatalf("send_leave v1: %v %v", err, out)
		}
		if m, _ := e.rooms.Membership(ctx, roomID, bob); m != "leave" {
			t.Errorf("bob is %q after send_leave", m)
		}
		// Rejoin for what follows.
		e.join(remote, roomID, bob)
	})

	t.Run("ACL", func(t *testing.T) {
		acl := `{"allow":["*"],"deny":["remote.test"],"allow_ip_literals":false}`
		if _, err := e.rooms.SendEvent(ctx, event.Proto{Type: typeServerACL, StateKey: new(string), Sender: alice, RoomID: roomID, Content: json.RawMessage(acl)}); err != nil {
			t.Fatal(err)
		}
		ext, _ := e.rooms.ForwardExtremities(ctx, roomID)
		m := msg("denied", ext...)
		res := e.send(remote, "t6", []*event.Event{m}, map[string]any{"edu_type": "m.typing", "content": map[string]any{"room_id": roomID, "user_id": bob, "typing": true}})
		if !strings.Contains(res[m.ID()].Error, "ACL") {
			t.Errorf("PDU of a denied server: %+v", res)
		}
		if _, err := storage.EventByID(ctx, db, m.ID()); err == nil {
			t.Errorf("PDU of a denied server stored")
		}
		if st, code := remoteCode(remote.do(t, "GET", "/_matrix/federation/v1/state_ids/"+esc(roomID)+"?event_id="+url.QueryEscape(ext[0].ID()), nil, nil)); st != 403 || code != "M_FORBIDDEN" {
			t.Errorf("state_ids for a denied server: %d %s", st, code)
		}
		if st, code := remoteCode(remote.do(t, "GET", "/_matrix/federation/v1/make_join/"+esc(roomID)+"/"+esc("@bob2:remote.test")+"?ver="+version, nil, nil)); st != 403 || code != "M_FORBIDDEN" {
			t.Errorf("make_join for a denied server: %d %s", st, code)
		}
		e.edus.mu.Lock()
		if len(e.edus.got) != 0 {
			t.Errorf("typing of a denied server handled: %v", e.edus.got)
		}
		e.edus.mu.Unlock()
	})
}

func TestInboundInvite(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		e := newInboundEnv(t, db)
		ctx := e.ctx
		remote := e.remote
		v := event.MustVersion("12")
		// remote.test's own room, which hs1 is not in.
		sk := ""
		create := remote.build(t, v, event.Proto{Type: "m.room.create", StateKey: &sk, Sender: bob, Content: json.RawMessage(`{"room_version":"12"}`), Depth: 1})
		roomID := create.RoomID()
		bobSK := bob
		bobJoin := remote.build(t, v, event.Proto{Type: "m.room.member", StateKey: &bobSK, Sender: bob, RoomID: roomID,
			Content: json.RawMessage(`{"membership":"join"}`), PrevEvents: []string{create.ID()}, Depth: 2})
		carol := "@carol:hs1.test"
		invite := remote.build(t, v, event.Proto{Type: "m.room.member", StateKey: &carol, Sender: bob, RoomID: roomID,
			Content: json.RawMessage(`{"membership":"invite"}`), PrevEvents: []string{bobJoin.ID()}, AuthEvents: []string{bobJoin.ID()}, Depth: 3})
		body := map[string]any{"room_version": "12", "event": json.RawMessage(invite.JSON()),
			"invite_room_state": []json.RawMessage{create.JSON()}}
		var resp struct {
			Event json.RawMessage `json:"event"`
		}
		uri := "/_matrix/federation/v2/invite/" + esc(roomID) + "/" + esc(invite.ID())
		if err := remote.do(t, "PUT", uri, body, &resp); err != nil {
			t.Fatal(err)
		}
		signed, err := event.Parse(resp.Event, v)
		if err != nil || signed.ID() != invite.ID() {
			t.Fatalf("signed invite: %v", err)
		}
		pub, _ := e.fed.cfg.KeyRing.PublicKey(ctx, "hs1.test", e.fed.cfg.SigningKey.ID, 0)
		o, _ := keys.ParseObject(resp.Event)
		red, _ := event.Redact(o.JSON(), v)
		if err := keys.VerifyJSON("hs1.test", e.fed.cfg.SigningKey.ID, pub, red); err != nil {
			t.Errorf("our signature on the invite: %v", err)
		}
		invs, err := e.rooms.RemoteInvites(ctx, carol, 0, 0)
		if err != nil || len(invs) != 1 || invs[0].RoomID != roomID || !strings.Contains(string(invs[0].InviteState), "m.room.create") {
			t.Fatalf("remote invites of carol: %+v, %v", invs, err)
		}

		// Checks: the invitee must be ours, the sender the origin's, the create event present.
		dave := "@dave:other.test"
		notOurs := remote.build(t, v, event.Proto{Type: "m.room.member", StateKey: &dave, Sender: bob, RoomID: roomID,
			Content: json.RawMessage(`{"membership":"invite"}`), PrevEvents: []string{bobJoin.ID()}, AuthEvents: []string{bobJoin.ID()}, Depth: 3})
		body["event"] = json.RawMessage(notOurs.JSON())
		if st, code := remoteCode(remote.do(t, "PUT", "/_matrix/federation/v2/invite/"+esc(roomID)+"/"+esc(notOurs.ID()), body, nil)); st != 400 || code != "M_INVALID_PARAM" {
			t.Errorf("invite of another server's user: %d %s", st, code)
		}
		body["event"] = json.RawMessage(invite.JSON())
		if st, code := remoteCode(e.other.do(t, "PUT", uri, body, nil)); st != 400 || code != "M_INVALID_PARAM" {
			t.Errorf("invite from another origin: %d %s", st, code)
		}
		body["invite_room_state"] = []json.RawMessage{}
		if st, code := remoteCode(remote.do(t, "PUT", uri, body, nil)); st != 400 || code != "M_INVALID_PARAM" {
			t.Errorf("invite without the create event: %d %s", st, code)
		}
		body["room_version"] = "99"
		if st, code := remoteCode(remote.do(t, "PUT", uri, body, nil)); st != 400 || code != "M_INCOMPATIBLE_ROOM_VERSION" {
			t.Errorf("invite of an unknown room version: %d %s", st, code)
		}
	})
}

func TestInboundKnock(t *testing.T) {
	e := newInboundEnv(t, storagetest.OpenTestDB(t, storage.SQLite))
	ctx := e.ctx
	roomID, err := e.rooms.CreateRoom(ctx, roomserver.CreateRoomRequest{Creator: alice, RoomVersion: "10",
		InitialState: []roomserver.StateEvent{{Type: "m.room.join_rules", Content: json.RawMessage(`{"join_rule":"knock"}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	v := event.MustVersion("10")
	// A knock room cannot be joined without an invite.
	err = e.remote.do(t, "GET", "/_matrix/federation/v1/make_join/"+esc(roomID)+"/"+esc(bob)+"?ver=10", nil, nil)
	if st, code := remoteCode(err); st != 403 || code != "M_FORBIDDEN" {
		t.Errorf("make_join of a knock room: %v", err)
	}
	if st, code := remoteCode(e.remote.do(t, "GET", "/_matrix/federation/v1/make_knock/"+esc(roomID)+"/"+esc(bob), nil, nil)); st != 400 || code != "M_MISSING_PARAM" {
		t.Errorf("make_knock without ver: %d %s", st, code)
	}
	var tmpl struct {
		RoomVersion string          `json:"room_version"`
		Event       json.RawMessage `json:"event"`
	}
	if err := e.remote.do(t, "GET", "/_matrix/federation/v1/make_knock/"+esc(roomID)+"/"+esc(bob)+"?ver=10", nil, &tmpl); err != nil {
		t.Fatal(err)
	}
	knock := e.remote.signTemplate(t, v, tmpl.Event)
	var resp struct {
		KnockRoomState []json.RawMessage `json:"knock_room_state"`
	}
	if err := e.remote.do(t, "PUT", "/_matrix/federation/v1/send_knock/"+esc(roomID)+"/"+esc(knock.ID()), json.RawMessage(knock.JSON()), &resp); err != nil {
		t.Fatal(err)
	}
	if m, _ := e.rooms.Membership(ctx, roomID, bob); m != "knock" {
		t.Errorf("bob is %q after send_knock", m)
	}
	if !strings.Contains(string(resp.KnockRoomState[0])+string(resp.KnockRoomState[len(resp.KnockRoomState)-1]), "m.room") || len(resp.KnockRoomState) < 2 {
		t.Errorf("knock_room_state %s", resp.KnockRoomState)
	}
}

func TestServerACL(t *testing.T) {
	cases := []struct {
		acl    string
		server string
		want   bool
	}{
		{`{"allow":["*"]}`, "example.org", true},
		{`{"allow":["*"]}`, "example.org:8448", true},
		{`{}`, "example.org", false},
		{`{"allow":["*"],"deny":["evil.com"]}`, "evil.com", false},
		{`{"allow":["*"],"deny":["evil.com"]}`, "evil.com:1234", false},
		{`{"allow":["*"],"deny":["*.evil.com"]}`, "sub.evil.com", false},
		{`{"allow":["*"],"deny":["*.evil.com"]}`, "evil.com", true},
		{`{"allow":["*.example.org"]}`, "a.example.org", true},
		{`{"allow":["*.example.org"]}`, "example.org", false},
		{`{"allow":["EXAMPLE.org"]}`, "example.ORG", true},
		{`{"allow":["ex?mple.org"]}`, "example.org", true},
		{`{"allow":["*"]}`, "1.2.3.4", true},
		{`{"allow":["*"],"allow_ip_literals":false}`, "1.2.3.4:80", false},
		{`{"allow":["*"],"allow_ip_literals":false}`, "[::1]:8448", false},
		{`{"allow":["*"],"allow_ip_literals":"false"}`, "1.2.3.4", true},
		{`{"allow":[1, "a.org"]}`, "a.org", true},
	}
	for _, c := range cases {
		if got := ParseServerACL([]byte(c.acl)).Allows(c.server); got != c.want {
			t.Errorf("%s allows %s: %v, want %v", c.acl, c.server, got, c.want)
		}
	}
	if !globMatch("a*b*c", "axxbyyc") || globMatch("a*b", "ac") || !globMatch("**", "") {
		t.Error("glob")
	}
}
