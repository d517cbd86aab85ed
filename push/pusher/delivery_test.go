package pusher

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// gateway is a push gateway on loopback answering with the statuses queued in replies (200
// once they run out) and recording the bodies it got.
type gateway struct {
	srv      *httptest.Server
	mu       sync.Mutex
	replies  []int
	rejected []string
	bodies   []string
}

func newGateway(t *testing.T) *gateway {
	g := &gateway{}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		g.mu.Lock()
		defer g.mu.Unlock()
		g.bodies = append(g.bodies, string(body))
		status := http.StatusOK
		if len(g.replies) > 0 {
			status, g.replies = g.replies[0], g.replies[1:]
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"rejected": g.rejected})
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gateway) got() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.bodies...)
}

// deliverySetup stores bob with a device, a pusher to gw and notifications for events
// $1..$n (stream positions 1..n), and returns a worker over the database.
func deliverySetup(t *testing.T, db *storage.DB, gwURL string, n int, allowPrivate bool) *Worker {
	t.Helper()
	ctx := context.Background()
	err := db.WithTx(ctx, func(tx *storage.Tx) error {
		if err := tx.InsertAccount(ctx, storage.Account{Localpart: "bob", CreatedTS: 1}); err != nil {
			return err
		}
		if _, err := tx.UpsertDevice(ctx, storage.Device{Localpart: "bob", DeviceID: "D", CreatedTS: 1}); err != nil {
			return err
		}
		room, err := tx.InsertRoom(ctx, "!r:x", "12")
		if err != nil {
			return err
		}
		var acts []storage.PushAction
		for i := 1; i <= n; i++ {
			id := "$" + string(rune('0'+i))
			// Not a parseable event: the notification goes out with ids only.
			if _, err := tx.InsertEvent(ctx, storage.EventRecord{Room: room, EventID: id, Type: "m.room.message",
				Sender: "@alice:x", Depth: int64(i), StreamPos: int64(i), JSON: []byte(`{"content":{"body":"secret"}}`)}); err != nil {
				return err
			}
			acts = append(acts, storage.PushAction{UserID: "@bob:x", RoomNID: room, RoomID: "!r:x", EventID: id, StreamPos: int64(i),
				ThreadID: storage.ThreadMain, Notify: true, Actions: json.RawMessage(`["notify",{"set_tweak":"sound","value":"default"}]`),
				TS: time.Now().UnixMilli()})
		}
		if err := tx.InsertPushActions(ctx, acts); err != nil {
			return err
		}
		return tx.SetPusher(ctx, storage.Pusher{UserID: "@bob:x", Localpart: "bob", DeviceID: "D", Kind: KindHTTP,
			AppID: "app", PushKey: "key", AppDisplayName: "A", DeviceDisplayName: "D", Lang: "en",
			Data: json.RawMessage(`{"url":"` + gwURL + `","extra":1}`), PushKeyTS: 5000}, false)
	})
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	return New(Config{ServerName: "x", DB: db, AllowPrivateAddresses: allowPrivate,
		MinBackoff: 150 * time.Millisecond, MaxBackoff: 400 * time.Millisecond}, logrus.NewEntry(log))
}

var bobKey = pusherKey{"@bob:x", "app", "key"}

func TestDeliveryBacksOffAndResumes(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		gw := newGateway(t)
		gw.replies = []int{500, 503, 500}
		w := deliverySetup(t, db, gw.srv.URL+"/_matrix/push/v1/notify", 2, true)

		// Each failure doubles the wait, up to the cap, and is remembered in the database. (The
		// waits are long enough for a loaded machine to check "not yet" before they run out.)
		for i, want := range []time.Duration{150 * time.Millisecond, 300 * time.Millisecond, 400 * time.Millisecond} {
			wait, gone, err := w.deliver.step(ctx, bobKey)
			if err != nil || gone || wait != want {
				t.Fatalf("failure %d: wait %v gone %v err %v, want wait %v", i+1, wait, gone, err, want)
			}
			p, _ := storage.GetPusher(ctx, db, "@bob:x", "app", "key")
			if p.Failures != int64(i+1) || p.RetryAtTS == 0 || p.DeliveredPos != 0 {
				t.Fatalf("after failure %d: %+v", i+1, p)
			}
			// Before the retry time nothing is sent.
			if wait, _, _ := w.deliver.step(ctx, bobKey); wait <= 0 || len(gw.got()) != i+1 {
				t.Fatalf("failure %d: retried early: wait %v, %d requests", i+1, wait, len(gw.got()))
			}
			time.Sleep(want)
		}
		wait, gone, err := w.deliver.step(ctx, bobKey)
		if err != nil || gone || wait != -1 {
			t.Fatalf("after recovery: wait %v gone %v err %v", wait, gone, err)
		}
		p, _ := storage.GetPusher(ctx, db, "@bob:x", "app", "key")
		if p.Failures != 0 || p.DeliveredPos != 2 {
			t.Fatalf("after recovery: %+v", p)
		}
		bodies := gw.got()
		if len(bodies) != 5 { // three failures, then $1 and $2
			t.Fatalf("%d requests", len(bodies))
		}
		var req notifyRequest
		if err := json.Unmarshal([]byte(bodies[4]), &req); err != nil {
			t.Fatal(err)
		}
		n := req.Notification
		if n.EventID != "$2" || n.RoomID != "!r:x" || n.Counts.Unread != 2 || n.Prio != "high" || len(n.Devices) != 1 {
			t.Fatalf("notification: %s", bodies[4])
		}
		d := n.Devices[0]
		if d.AppID != "app" || d.PushKey != "key" || d.PushKeyTS != 5 || d.Data["url"] != nil || d.Data["extra"] != float64(1) || d.Tweaks["sound"] != "default" {
			t.Fatalf("device: %s", bodies[4])
		}
		if strings.Contains(bodies[4], "secret") {
			t.Fatalf("content leaked: %s", bodies[4])
		}
	})
}

func TestDeliveryRejectedAndRefused(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		gw := newGateway(t)
		w := deliverySetup(t, db, gw.srv.URL+"/_matrix/push/v1/notify", 2, true)
		// A 4xx answer skips that notification only.
		gw.mu.Lock()
		gw.replies = []int{400}
		gw.mu.Unlock()
		if wait, gone, err := w.deliver.step(ctx, bobKey); err != nil || gone || wait != -1 {
			t.Fatalf("step: %v %v %v", wait, gone, err)
		}
		if p, _ := storage.GetPusher(ctx, db, "@bob:x", "app", "key"); p.DeliveredPos != 2 || p.Failures != 0 {
			t.Fatalf("after a 400: %+v", p)
		}
		// A rejected pushkey deletes the pusher.
		err := db.WithTx(ctx, func(tx *storage.Tx) error {
			return tx.SetPusherProgress(ctx, "@bob:x", "app", "key", 1, 0, 0)
		})
		if err != nil {
			t.Fatal(err)
		}
		gw.mu.Lock()
		gw.rejected = []string{"key"}
		gw.mu.Unlock()
		if _, gone, err := w.deliver.step(ctx, bobKey); err != nil || !gone {
			t.Fatalf("rejected: gone %v err %v", gone, err)
		}
		if ps, _ := storage.PushersOfUser(ctx, db, "@bob:x"); len(ps) != 0 {
			t.Fatalf("rejected pusher kept: %+v", ps)
		}
	})
}

// Without allow_private_addresses a gateway on loopback is never contacted.
func TestDeliveryRefusesPrivateAddresses(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		gw := newGateway(t)
		w := deliverySetup(t, db, gw.srv.URL+"/_matrix/push/v1/notify", 1, false)
		wait, gone, err := w.deliver.step(context.Background(), bobKey)
		if err != nil || gone || wait <= 0 || len(gw.got()) != 0 {
			t.Fatalf("private address: wait %v gone %v err %v, %d requests", wait, gone, err, len(gw.got()))
		}
	})
}
