package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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

// fakeRemote records the transactions sent to it and fails the first `fail` attempts.
type fakeRemote struct {
	mu       sync.Mutex
	fail     int
	attempts []attempt
	got      chan struct{}
}

type attempt struct {
	at          time.Time
	destination string
	txnID       string
	bodies      []string // content.body of each PDU
	edus        int
	failed      bool
}

func newFakeRemote(fail int) *fakeRemote {
	return &fakeRemote{fail: fail, got: make(chan struct{}, 1000)}
}

func (f *fakeRemote) Do(ctx context.Context, destination, method, uri string, body, out any) error {
	txn := body.(txnBody)
	a := attempt{at: time.Now(), destination: destination, txnID: uri[len("/_matrix/federation/v1/send/"):], edus: len(txn.EDUs)}
	for _, raw := range txn.PDUs {
		var p struct {
			Content struct {
				Body string `json:"body"`
			} `json:"content"`
			Unsigned json.RawMessage `json:"unsigned"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return err
		}
		if p.Unsigned != nil {
			return errors.New("a PDU carries unsigned")
		}
		a.bodies = append(a.bodies, p.Content.Body)
	}
	if method != http.MethodPut || txn.Origin != "local.test" || len(txn.PDUs) > maxTxnPDUs || len(txn.EDUs) > maxTxnEDUs {
		return fmt.Errorf("bad transaction: %s %s, %d PDUs, %d EDUs", method, txn.Origin, len(txn.PDUs), len(txn.EDUs))
	}
	f.mu.Lock()
	a.failed = f.fail > 0
	if f.fail > 0 {
		f.fail--
	}
	f.attempts = append(f.attempts, a)
	f.mu.Unlock()
	f.got <- struct{}{}
	if a.failed {
		return &RemoteError{Destination: destination, Status: http.StatusBadGateway}
	}
	return nil
}

// delivered returns the PDU bodies and EDU count delivered to destination, in order.
func (f *fakeRemote) delivered(destination string) ([]string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var bodies []string
	edus := 0
	for _, a := range f.attempts {
		if !a.failed && a.destination == destination {
			bodies = append(bodies, a.bodies...)
			edus += a.edus
		}
	}
	return bodies, edus
}

func (f *fakeRemote) snapshot() []attempt {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]attempt(nil), f.attempts...)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// senderRoom is a room of local.test with @bob:remote.test and @carol:other.test joined.
type senderRoom struct {
	db     *storage.DB
	rooms  *roomserver.Server
	roomID string
}

func newSenderRoom(t *testing.T, db *storage.DB) *senderRoom {
	t.Helper()
	ctx := context.Background()
	key, err := keys.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	rooms := roomserver.New(db, "local.test", key, roomserver.Options{})
	roomID, err := rooms.CreateRoom(ctx, roomserver.CreateRoomRequest{Creator: "@alice:local.test", Preset: roomserver.PresetPublicChat})
	if err != nil {
		t.Fatal(err)
	}
	// Remote members are written straight into the memberships: the sender only reads them.
	room, err := storage.GetRoom(ctx, db, roomID)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := storage.ForwardExtremities(ctx, db, room.NID)
	if err != nil {
		t.Fatal(err)
	}
	err = db.WithTx(ctx, func(tx *storage.Tx) error {
		for _, u := range []string{"@bob:remote.test", "@carol:other.test"} {
			if err := tx.SetMembership(ctx, storage.Membership{Room: room.NID, UserID: u, Membership: "join", Event: ext[0], StreamPos: 1}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return &senderRoom{db: db, rooms: rooms, roomID: roomID}
}

func (r *senderRoom) send(t *testing.T, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		_, err := r.rooms.SendEvent(context.Background(), event.Proto{Type: "m.room.message", Sender: "@alice:local.test",
			RoomID: r.roomID, Content: json.RawMessage(`{"msgtype":"m.text","body":"` + b + `"}`)})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// runSender starts a sender on db with client; the returned function stops it and waits.
func runSender(t *testing.T, r *senderRoom, client Requester, minBackoff, maxBackoff time.Duration) (*Sender, func()) {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	s := NewSender(SenderConfig{ServerName: "local.test", DB: r.db, Client: client, MinBackoff: minBackoff, MaxBackoff: maxBackoff},
		logrus.NewEntry(log))
	unsubscribe := r.rooms.Subscribe(s.OnNewEvent)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	// Run records its starting point on the events stream before it is ready.
	waitFor(t, "the sender to start", 5*time.Second, func() bool {
		_, ok, err := storage.SenderPosition(context.Background(), r.db)
		return err == nil && ok
	})
	stop := func() {
		unsubscribe()
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return s, stop
}

func bodies(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

func TestSenderBatchesInOrderToEveryServer(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		r := newSenderRoom(t, db)
		remote := newFakeRemote(0)
		s, _ := runSender(t, r, remote, time.Millisecond, time.Second)
		want := bodies("m", 120)
		r.send(t, want...)
		if err := s.SendEDU(context.Background(), []string{"remote.test", "local.test"}, "m.typing", map[string]any{"typing": true}); err != nil {
			t.Fatal(err)
		}
		for _, dest := range []string{"remote.test", "other.test"} {
			waitFor(t, "delivery to "+dest, 20*time.Second, func() bool {
				got, _ := remote.delivered(dest)
				return len(got) == len(want)
			})
			got, _ := remote.delivered(dest)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s got %q at %d, want %q", dest, got[i], i, want[i])
				}
			}
		}
		waitFor(t, "the EDU", 5*time.Second, func() bool { _, n := remote.delivered("remote.test"); return n == 1 })
		if _, n := remote.delivered("other.test"); n != 0 {
			t.Errorf("other.test got %d EDUs, want 0", n)
		}
		for _, a := range remote.snapshot() {
			if a.destination == "local.test" {
				t.Fatal("the sender sent to its own server")
			}
		}
	})
}

func TestSenderBatchesEDUs(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		r := newSenderRoom(t, db)
		// Queue before the sender runs, so that the first transaction sees them all.
		log := logrus.New()
		log.SetOutput(io.Discard)
		queuer := NewSender(SenderConfig{ServerName: "local.test", DB: db, Client: newFakeRemote(0)}, logrus.NewEntry(log))
		for i := range 150 {
			if err := queuer.SendEDU(context.Background(), []string{"remote.test"}, "m.receipt", map[string]any{"n": i}); err != nil {
				t.Fatal(err)
			}
		}
		remote := newFakeRemote(0)
		runSender(t, r, remote, time.Millisecond, time.Second)
		waitFor(t, "every EDU", 10*time.Second, func() bool { _, n := remote.delivered("remote.test"); return n == 150 })
		if a := remote.snapshot(); len(a) != 2 || a[0].edus != 100 || a[1].edus != 50 {
			t.Errorf("EDUs went in %d transactions; want 100 then 50", len(a))
		}
	})
}

func TestSenderBacksOffAndRetriesTheSameTransaction(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		r := newSenderRoom(t, db)
		remote := newFakeRemote(8) // both destinations fail four times each, in some order
		runSender(t, r, remote, 20*time.Millisecond, 80*time.Millisecond)
		r.send(t, "hello")
		for _, dest := range []string{"remote.test", "other.test"} {
			waitFor(t, "delivery to "+dest, 20*time.Second, func() bool { got, _ := remote.delivered(dest); return len(got) == 1 })
		}
		var txnID string
		var times []time.Time
		for _, a := range remote.snapshot() {
			if a.destination != "remote.test" {
				continue
			}
			if txnID == "" {
				txnID = a.txnID
			}
			if a.txnID != txnID {
				t.Errorf("retry with transaction id %s, want %s", a.txnID, txnID)
			}
			times = append(times, a.at)
		}
		if len(times) < 2 {
			t.Fatalf("remote.test was tried %d times", len(times))
		}
		// Waits double from 20ms and stop growing at 80ms.
		for i := 1; i < len(times); i++ {
			gap := times[i].Sub(times[i-1])
			min := 20 * time.Millisecond << (i - 1)
			if min > 80*time.Millisecond {
				min = 80 * time.Millisecond
			}
			if gap < min-5*time.Millisecond {
				t.Errorf("attempt %d came %v after the one before; want at least %v", i+1, gap, min)
			}
		}
	})
}

func TestSenderWakeRetriesAtOnce(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		r := newSenderRoom(t, db)
		remote := newFakeRemote(2)
		s, _ := runSender(t, r, remote, time.Hour, time.Hour)
		r.send(t, "hello")
		waitFor(t, "two failed attempts", 10*time.Second, func() bool { return len(remote.snapshot()) == 2 })
		time.Sleep(50 * time.Millisecond)
		if got, _ := remote.delivered("remote.test"); len(got) != 0 {
			t.Fatal("delivered without a retry")
		}
		s.Wake("remote.test")
		waitFor(t, "delivery after Wake", 5*time.Second, func() bool { got, _ := remote.delivered("remote.test"); return len(got) == 1 })
		time.Sleep(50 * time.Millisecond)
		if got, _ := remote.delivered("other.test"); len(got) != 0 {
			t.Error("other.test, not woken, was retried before its back-off")
		}
	})
}

func TestSenderQueuesSurviveARestart(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		r := newSenderRoom(t, db)
		down := newFakeRemote(1 << 30)
		_, stop := runSender(t, r, down, time.Millisecond, 10*time.Millisecond)
		r.send(t, "while-down")
		waitFor(t, "failed attempts to both servers", 10*time.Second, func() bool {
			seen := map[string]bool{}
			for _, a := range down.snapshot() {
				seen[a.destination] = true
			}
			return len(seen) == 2
		})
		stop()
		firstTxn := map[string]string{}
		for _, a := range down.snapshot() {
			if firstTxn[a.destination] == "" {
				firstTxn[a.destination] = a.txnID
			}
		}
		// An event committed while no sender runs is queued at the next start.
		r.send(t, "while-stopped")

		up := newFakeRemote(0)
		runSender(t, r, up, time.Millisecond, 10*time.Millisecond)
		for _, dest := range []string{"remote.test", "other.test"} {
			waitFor(t, "delivery to "+dest, 10*time.Second, func() bool { got, _ := up.delivered(dest); return len(got) == 2 })
			got, _ := up.delivered(dest)
			if got[0] != "while-down" || got[1] != "while-stopped" {
				t.Errorf("%s got %v", dest, got)
			}
		}
		for _, a := range up.snapshot() {
			if a.bodies[0] == "while-down" && a.txnID != firstTxn[a.destination] {
				t.Errorf("the pending transaction to %s was resent as %s, want %s", a.destination, a.txnID, firstTxn[a.destination])
			}
		}
		// Delivered transactions leave the queues (just after the destination answers).
		waitFor(t, "empty queues", 5*time.Second, func() bool {
			dests, err := storage.QueuedDestinations(context.Background(), db)
			return err == nil && len(dests) == 0
		})
	})
}
