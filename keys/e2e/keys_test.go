package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"myelin/keys/e2e"
	"myelin/storage"
	"myelin/storage/storagetest"
)

func TestUploadQueryClaim(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newStore(t, db, e2e.Options{}, map[string][]string{"alice": {"A1"}, "bob": {"B1"}})
		alice := newDevice(t, uid("alice"), "A1")

		counts, err := s.Upload(ctx, alice.user, alice.id, e2e.Upload{
			DeviceKeys: alice.deviceKeys(t),
			OneTimeKeys: map[string]json.RawMessage{
				"signed_curve25519:k1": alice.otk(t, 1, false),
				"signed_curve25519:k2": alice.otk(t, 2, false),
			},
			FallbackKeys: map[string]json.RawMessage{"signed_curve25519:f1": alice.otk(t, 100, true)},
		})
		if err != nil {
			t.Fatal(err)
		}
		if counts["signed_curve25519"] != 2 {
			t.Fatalf("counts = %v, want 2 signed_curve25519", counts)
		}
		// A later upload comes after: its keys are claimed after k1 and k2.
		if _, err := s.Upload(ctx, alice.user, alice.id, e2e.Upload{OneTimeKeys: map[string]json.RawMessage{
			"signed_curve25519:a0": alice.otk(t, 3, false),
		}}); err != nil {
			t.Fatal(err)
		}
		// Re-uploading an identical key is accepted; a different key under the same name is not.
		if _, err := s.Upload(ctx, alice.user, alice.id, e2e.Upload{OneTimeKeys: map[string]json.RawMessage{
			"signed_curve25519:k1": alice.otk(t, 1, false),
		}}); err != nil {
			t.Fatalf("identical re-upload: %v", err)
		}
		if _, err := s.Upload(ctx, alice.user, alice.id, e2e.Upload{OneTimeKeys: map[string]json.RawMessage{
			"signed_curve25519:k1": alice.otk(t, 9, false),
		}}); errKind(err) != "M_INVALID_PARAM" {
			t.Fatalf("conflicting re-upload: %v, want M_INVALID_PARAM", err)
		}
		// A conflict among new keys refuses the whole upload: none of them is stored.
		if _, err := s.Upload(ctx, alice.user, alice.id, e2e.Upload{OneTimeKeys: map[string]json.RawMessage{
			"signed_curve25519:n1": alice.otk(t, 4, false),
			"signed_curve25519:k1": alice.otk(t, 9, false),
			"signed_curve25519:n2": alice.otk(t, 5, false),
		}}); errKind(err) != "M_INVALID_PARAM" {
			t.Fatalf("upload with a conflict among new keys: %v, want M_INVALID_PARAM", err)
		}
		if counts, err := s.Upload(ctx, alice.user, alice.id, e2e.Upload{}); err != nil || counts["signed_curve25519"] != 3 {
			t.Fatalf("counts after the refused upload: %v %v, want 3", counts, err)
		}

		q, err := s.Query(ctx, uid("bob"), map[string][]string{uid("alice"): nil, "@carol:remote.test": nil, uid("nobody"): nil})
		if err != nil {
			t.Fatal(err)
		}
		got := q.DeviceKeys[uid("alice")]["A1"]
		var dk struct {
			Keys     map[string]string `json:"keys"`
			Unsigned map[string]string `json:"unsigned"`
		}
		if err := json.Unmarshal(got, &dk); err != nil {
			t.Fatal(err)
		}
		if dk.Keys["ed25519:A1"] != alice.pub() || dk.Unsigned["device_display_name"] != "alice's A1" {
			t.Errorf("queried device keys = %s", got)
		}
		if _, ok := q.Failures["remote.test"]; !ok {
			t.Errorf("failures = %v, want remote.test", q.Failures)
		}
		if len(q.DeviceKeys[uid("nobody")]) != 0 {
			t.Errorf("unknown user has devices: %v", q.DeviceKeys[uid("nobody")])
		}

		claim := func() string {
			t.Helper()
			res, err := s.Claim(ctx, map[string]map[string]string{uid("alice"): {"A1": "signed_curve25519"}})
			if err != nil {
				t.Fatal(err)
			}
			for name := range res.OneTimeKeys[uid("alice")]["A1"] {
				return name
			}
			return ""
		}
		first, second := claim(), claim()
		if !(first == "signed_curve25519:k1" && second == "signed_curve25519:k2" || first == "signed_curve25519:k2" && second == "signed_curve25519:k1") {
			t.Errorf("first claims = %s, %s; want k1 and k2 (the first upload) in some order", first, second)
		}
		if third := claim(); third != "signed_curve25519:a0" {
			t.Errorf("third claim = %s, want a0", third)
		}
		types, _ := s.UnusedFallbackKeyTypes(ctx, alice.user, alice.id)
		if len(types) != 1 {
			t.Errorf("unused fallback types before use = %v", types)
		}
		for range 2 {
			if got := claim(); got != "signed_curve25519:f1" {
				t.Errorf("claim with no one-time keys left = %s, want the fallback key f1", got)
			}
		}
		if types, _ := s.UnusedFallbackKeyTypes(ctx, alice.user, alice.id); len(types) != 0 {
			t.Errorf("unused fallback types after use = %v, want none", types)
		}
		// Uploading the same fallback key again keeps it used; a new one is unused.
		if _, err := s.Upload(ctx, alice.user, alice.id, e2e.Upload{FallbackKeys: map[string]json.RawMessage{"signed_curve25519:f1": alice.otk(t, 100, true)}}); err != nil {
			t.Fatal(err)
		}
		if types, _ := s.UnusedFallbackKeyTypes(ctx, alice.user, alice.id); len(types) != 0 {
			t.Errorf("re-uploaded used fallback key counts as unused: %v", types)
		}
		if _, err := s.Upload(ctx, alice.user, alice.id, e2e.Upload{FallbackKeys: map[string]json.RawMessage{"signed_curve25519:f2": alice.otk(t, 101, true)}}); err != nil {
			t.Fatal(err)
		}
		if types, _ := s.UnusedFallbackKeyTypes(ctx, alice.user, alice.id); len(types) != 1 || types[0] != "signed_curve25519" {
			t.Errorf("unused fallback types after replacement = %v", types)
		}
		if counts, _ := s.OneTimeKeyCounts(ctx, alice.user, alice.id); counts["signed_curve25519"] != 0 {
			t.Errorf("counts after claiming all = %v", counts)
		}
	})
}

func TestUploadRejects(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newStore(t, db, e2e.Options{}, map[string][]string{"alice": {"A1"}})
		alice := newDevice(t, uid("alice"), "A1")
		other := newDevice(t, uid("alice"), "A1") // same ids, different key

		unsigned, _ := json.Marshal(map[string]any{"user_id": alice.user, "device_id": "A1", "algorithms": []string{},
			"keys": map[string]string{"ed25519:A1": alice.pub()}, "signatures": map[string]any{}})
		forged := sign(t, map[string]any{"user_id": alice.user, "device_id": "A1", "algorithms": []string{},
			"keys": map[string]string{"ed25519:A1": alice.pub()}}, alice.user, "ed25519:A1", other.priv)
		tests := []struct {
			name string
			up   e2e.Upload
			want string
		}{
			{"keys of another device", e2e.Upload{DeviceKeys: newDevice(t, uid("alice"), "A2").deviceKeys(t)}, "M_INVALID_PARAM"},
			{"keys of another user", e2e.Upload{DeviceKeys: newDevice(t, uid("bob"), "A1").deviceKeys(t)}, "M_INVALID_PARAM"},
			{"unsigned device keys", e2e.Upload{DeviceKeys: unsigned}, "M_INVALID_PARAM"},
			{"signed by another key", e2e.Upload{DeviceKeys: forged}, "M_INVALID_PARAM"},
			{"not an object", e2e.Upload{DeviceKeys: json.RawMessage(`[1]`)}, "M_INVALID_PARAM"},
			{"one-time key name without algorithm", e2e.Upload{OneTimeKeys: map[string]json.RawMessage{"k1": alice.otk(t, 1, false)}}, "M_INVALID_PARAM"},
			{"one-time key without key", e2e.Upload{OneTimeKeys: map[string]json.RawMessage{"signed_curve25519:k1": json.RawMessage(`{"x":1}`)}}, "M_INVALID_PARAM"},
			{"two fallback keys of one algorithm", e2e.Upload{FallbackKeys: map[string]json.RawMessage{
				"signed_curve25519:f1": alice.otk(t, 1, true), "signed_curve25519:f2": alice.otk(t, 2, true)}}, "M_INVALID_PARAM"},
			{"valid", e2e.Upload{DeviceKeys: alice.deviceKeys(t), OneTimeKeys: map[string]json.RawMessage{"curve25519:k1": json.RawMessage(`"abc"`)}}, ""},
			{"same identity keys again", e2e.Upload{DeviceKeys: alice.deviceKeys(t)}, ""},
			{"other identity keys for the same device", e2e.Upload{DeviceKeys: other.deviceKeys(t)}, "M_INVALID_PARAM"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.Upload(ctx, alice.user, alice.id, tt.up)
				if got := errKind(err); got != tt.want {
					t.Errorf("Upload: %q (%v), want %q", got, err, tt.want)
				}
			})
		}
	})
}

// TestClaimRace claims keys from many goroutines at once: no key may be handed out twice, and
// no claim may get the fallback key while one-time keys are left.
func TestClaimRace(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := newStore(t, db, e2e.Options{}, map[string][]string{"alice": {"A1"}})
		alice := newDevice(t, uid("alice"), "A1")
		const keysUploaded, workers, perWorker = 60, 8, 10
		otks := map[string]json.RawMessage{}
		for i := range keysUploaded {
			otks[fmt.Sprintf("signed_curve25519:k%03d", i)] = alice.otk(t, i, false)
		}
		if _, err := s.Upload(ctx, alice.user, alice.id, e2e.Upload{
			OneTimeKeys:  otks,
			FallbackKeys: map[string]json.RawMessage{"signed_curve25519:fb": alice.otk(t, 999, true)},
		}); err != nil {
			t.Fatal(err)
		}
		var (
			mu     sync.Mutex
			seen   = map[string]int{}
			wg     sync.WaitGroup
			failed bool
		)
		for range workers {
			wg.Go(func() {
				for range perWorker {
					res, err := s.Claim(ctx, map[string]map[string]string{alice.user: {"A1": "signed_curve25519"}})
					mu.Lock()
					if err != nil {
						failed = true
						t.Error(err)
					}
					for name := range res.OneTimeKeys[alice.user]["A1"] {
						seen[name]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if failed {
			return
		}
		for name, n := range seen {
			if name != "signed_curve25519:fb" && n != 1 {
				t.Errorf("%s handed out %d times", name, n)
			}
		}
		if got := len(seen) - 1; got != keysUploaded {
			t.Errorf("%d distinct one-time keys handed out, want %d", got, keysUploaded)
		}
		if n := seen["signed_curve25519:fb"]; n != workers*perWorker-keysUploaded {
			t.Errorf("fallback key handed out %d times, want %d", n, workers*perWorker-keysUploaded)
		}
	})
}
