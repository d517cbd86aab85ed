package e2e_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"myelin/keys/e2e"
	"myelin/storage"
	"myelin/storage/storagetest"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// A message for a device that never syncs expires after the TTL: it is not delivered once
// expired, and the purge deletes it; younger messages stay.
func TestToDeviceExpiry(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		s := newStore(t, db, e2e.Options{ToDeviceTTL: 48 * time.Hour, Now: clock.Now}, map[string][]string{"alice": {"A1"}, "bob": {"B1"}})
		alice, bob := uid("alice"), uid("bob")
		send := func(txn string) {
			t.Helper()
			if err := s.SendToDevice(ctx, alice, "A1", "m.test", txn, map[string]map[string]json.RawMessage{bob: {"B1": json.RawMessage(`{"txn":"` + txn + `"}`)}}); err != nil {
				t.Fatal(err)
			}
		}
		pending := func() []string {
			t.Helper()
			msgs, err := s.ToDeviceSince(ctx, bob, "B1", 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, m := range msgs {
				out = append(out, string(m.Content))
			}
			return out
		}

		send("old")
		clock.Advance(24 * time.Hour)
		send("new")
		if n, err := s.PurgeExpiredToDevice(ctx); err != nil || n != 0 {
			t.Fatalf("purge before anything expired: %d, %v", n, err)
		}
		if got := pending(); len(got) != 2 {
			t.Fatalf("before expiry: %v", got)
		}

		// 48h after "old" was queued (just past the TTL), it is no longer delivered ...
		clock.Advance(24*time.Hour + time.Millisecond)
		if got := pending(); len(got) != 1 || got[0] != `{"txn":"new"}` {
			t.Fatalf("after old expired: %v", got)
		}
		// ... and the purge deletes it, and only it.
		if n, err := s.PurgeExpiredToDevice(ctx); err != nil || n != 1 {
			t.Fatalf("purge: %d, %v", n, err)
		}
		clock.Advance(24 * time.Hour)
		if got := pending(); len(got) != 0 {
			t.Fatalf("after new expired: %v", got)
		}

		// The background purge runs at once and then on its interval.
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); s.RunToDeviceExpiry(runCtx, time.Hour) }()
		deadline := time.Now().Add(10 * time.Second)
		for {
			var left int
			if err := db.WithTx(ctx, func(tx *storage.Tx) error {
				return tx.QueryRow(ctx, `SELECT COUNT(*) FROM e2e_to_device`).Scan(&left)
			}); err != nil {
				t.Fatal(err)
			}
			if left == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d expired messages left after the background purge", left)
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		<-done
	})
}

func TestToDeviceTTLDefault(t *testing.T) {
	if e2e.DefaultToDeviceTTL != 30*24*time.Hour {
		t.Errorf("DefaultToDeviceTTL = %v, want the issue's 30 days", e2e.DefaultToDeviceTTL)
	}
}
