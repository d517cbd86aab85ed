package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// deviceKeys builds the signed device keys and one-time keys of u's device, as a client would
// upload them: signed for real with a fresh ed25519 key, so that a server that checks signatures
// accepts them.
func deviceKeys(u *User, otks int) (map[string]any, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	b64 := base64.RawStdEncoding.EncodeToString
	curve := make([]byte, 32)
	_, _ = rand.Read(curve)
	keyID := "ed25519:" + u.DeviceID
	sign := func(obj map[string]any) (map[string]any, error) {
		// encoding/json sorts map keys and writes no insignificant space: for these ASCII values
		// without HTML characters, that is canonical JSON.
		raw, err := json.Marshal(obj)
		if err != nil {
			return nil, err
		}
		obj["signatures"] = map[string]any{u.UserID: map[string]any{keyID: b64(ed25519.Sign(priv, raw))}}
		return obj, nil
	}
	dk, err := sign(map[string]any{
		"user_id": u.UserID, "device_id": u.DeviceID,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys":       map[string]any{"curve25519:" + u.DeviceID: b64(curve), keyID: b64(pub)},
	})
	if err != nil {
		return nil, err
	}
	one := map[string]any{}
	for i := range otks {
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		signed, err := sign(map[string]any{"key": b64(k)})
		if err != nil {
			return nil, err
		}
		one[fmt.Sprintf("signed_curve25519:AAAA%04d", i)] = signed
	}
	return map[string]any{"device_keys": dk, "one_time_keys": one}, nil
}

// runKeys: Users users (one device each) upload device and one-time keys; one of them queries
// every user's devices Rounds times; then Messages one-time keys are claimed, one per request,
// by Concurrency claimers.
func runKeys(ctx context.Context, env *Env) (Outcome, error) {
	cfg := env.Cfg
	users, err := env.register(ctx, max(cfg.Users, 2))
	if err != nil {
		return Outcome{}, err
	}
	bodies := make([]map[string]any, len(users))
	for i, u := range users {
		if bodies[i], err = deviceKeys(u, cfg.OneTimeKeys); err != nil {
			return Outcome{}, err
		}
	}

	var upload Samples
	env.measuring()
	env.Progress.Phase("keys/upload", len(users))
	start := time.Now()
	err = forEach(ctx, len(users), cfg.Concurrency, func(ctx context.Context, _, i int) error {
		defer env.Progress.Step()
		var out struct {
			Counts map[string]int `json:"one_time_key_counts"`
		}
		if err := upload.Time(func() error {
			return users[i].Raw(ctx, http.MethodPost, "/_matrix/client/v3/keys/upload", bodies[i], &out)
		}); err != nil {
			return err
		}
		if cfg.OneTimeKeys > 0 && out.Counts["signed_curve25519"] < cfg.OneTimeKeys {
			return fmt.Errorf("keys/upload: server counts %d one-time keys, want %d", out.Counts["signed_curve25519"], cfg.OneTimeKeys)
		}
		return nil
	})
	uploadWall := time.Since(start)
	if err != nil {
		return Outcome{}, err
	}

	query := map[string]any{}
	for _, u := range users {
		query[u.UserID] = []string{}
	}
	var queries Samples
	env.Progress.Phase("keys/query", cfg.Rounds)
	for range cfg.Rounds {
		var out struct {
			DeviceKeys map[string]map[string]json.RawMessage `json:"device_keys"`
		}
		if err := queries.Time(func() error {
			return users[0].Raw(ctx, http.MethodPost, "/_matrix/client/v3/keys/query", map[string]any{"device_keys": query}, &out)
		}); err != nil {
			return Outcome{}, err
		}
		devices := 0
		for _, d := range out.DeviceKeys {
			devices += len(d)
		}
		if devices < len(users) {
			return Outcome{}, fmt.Errorf("keys/query returned %d devices, want %d", devices, len(users))
		}
		env.Progress.Step()
	}

	claims := min(cfg.Messages, len(users)*cfg.OneTimeKeys)
	var claim Samples
	env.Progress.Phase("keys/claim", claims)
	start = time.Now()
	err = forEach(ctx, claims, cfg.Concurrency, func(ctx context.Context, w, i int) error {
		defer env.Progress.Step()
		claimer := users[w%len(users)]
		target := users[i%len(users)]
		var out struct {
			OneTimeKeys map[string]map[string]map[string]json.RawMessage `json:"one_time_keys"`
		}
		body := map[string]any{"one_time_keys": map[string]any{target.UserID: map[string]string{target.DeviceID: "signed_curve25519"}}}
		if err := claim.Time(func() error {
			return claimer.Raw(ctx, http.MethodPost, "/_matrix/client/v3/keys/claim", body, &out)
		}); err != nil {
			return err
		}
		if len(out.OneTimeKeys[target.UserID][target.DeviceID]) == 0 {
			return fmt.Errorf("keys/claim returned no key for %s %s", target.UserID, target.DeviceID)
		}
		return nil
	})
	claimWall := time.Since(start)
	if err != nil {
		return Outcome{}, err
	}
	return Outcome{
		Metrics: []Metric{
			upload.Summarise("e2ee-keys/upload", uploadWall),
			queries.Summarise(fmt.Sprintf("e2ee-keys/query-%d-users", len(users)), 0),
			claim.Summarise("e2ee-keys/claim", claimWall),
		},
		Notes: []string{fmt.Sprintf("%d devices, %d one-time keys each", len(users), cfg.OneTimeKeys)},
	}, nil
}
