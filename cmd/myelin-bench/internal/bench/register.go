package bench

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
)

// Registrar creates the users a scenario needs, by the means the server offers: open registration
// (m.login.dummy), a registration token, or the Synapse admin shared-secret API (which Dendrite
// implements too).
type Registrar struct {
	Server            *Server
	RegistrationToken string
	SharedSecret      string
	// Prefix makes the names of one run unique on a server that keeps every earlier run's users.
	Prefix string

	password string
	n        atomic.Int64
}

// NewRegistrar returns a Registrar whose users share a random password and name prefix.
func NewRegistrar(s *Server, token, secret string) *Registrar {
	return &Registrar{
		Server: s, RegistrationToken: token, SharedSecret: secret,
		Prefix:   "bench" + randomHex(4),
		password: "Bench-" + randomHex(12) + "-pw!",
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ErrNoUsableFlow is returned when the server offers no registration flow the tool can complete.
var ErrNoUsableFlow = errors.New("no registration flow of m.login.dummy or m.login.registration_token")

type loginAnswer struct {
	UserID      string `json:"user_id"`
	DeviceID    string `json:"device_id"`
	AccessToken string `json:"access_token"`
}

// Register creates one user with a fresh name and returns it logged in.
func (r *Registrar) Register(ctx context.Context) (*User, error) {
	name := fmt.Sprintf("%s_%d", r.Prefix, r.n.Add(1))
	var ans loginAnswer
	var err error
	if r.SharedSecret != "" {
		ans, err = r.registerShared(ctx, name)
	} else {
		ans, err = r.registerUIA(ctx, name)
	}
	if err != nil {
		return nil, fmt.Errorf("registering %s: %w", name, err)
	}
	if ans.AccessToken == "" {
		return nil, fmt.Errorf("registering %s: no access token in the answer", name)
	}
	return &User{Server: r.Server, UserID: ans.UserID, DeviceID: ans.DeviceID, AccessToken: ans.AccessToken, Password: r.password}, nil
}

// RegisterMany registers n users with up to parallel requests at a time.
func (r *Registrar) RegisterMany(ctx context.Context, n, parallel int, progress func()) ([]*User, error) {
	users := make([]*User, n)
	err := forEach(ctx, n, parallel, func(ctx context.Context, _, i int) error {
		u, err := r.Register(ctx)
		users[i] = u
		if progress != nil {
			progress()
		}
		return err
	})
	return users, err
}

// registerUIA walks User-Interactive Authentication: the first request without auth answers 401
// with the flows; each stage the tool can complete is sent in turn.
func (r *Registrar) registerUIA(ctx context.Context, name string) (loginAnswer, error) {
	body := map[string]any{
		"username": name, "password": r.password, "initial_device_display_name": "myelin-bench",
	}
	var ans loginAnswer
	for range 5 {
		err := r.Server.do(ctx, http.MethodPost, "/_matrix/client/v3/register", "", body, &ans, 0)
		var mErr *MatrixError
		if !errors.As(err, &mErr) || mErr.Status != http.StatusUnauthorized {
			return ans, err
		}
		var uia struct {
			Session   string `json:"session"`
			Completed []string
			Flows     []struct {
				Stages []string `json:"stages"`
			} `json:"flows"`
		}
		if json.Unmarshal(mErr.Body, &uia) != nil || len(uia.Flows) == 0 {
			return ans, err
		}
		stage := r.nextStage(uia.Flows, uia.Completed)
		if stage == "" {
			return ans, ErrNoUsableFlow
		}
		auth := map[string]any{"type": stage, "session": uia.Session}
		if stage == "m.login.registration_token" {
			auth["token"] = r.RegistrationToken
		}
		body["auth"] = auth
	}
	return ans, errors.New("registration did not finish after 5 stages")
}

func (r *Registrar) nextStage(flows []struct {
	Stages []string `json:"stages"`
}, completed []string) string {
	can := func(stage string) bool {
		return stage == "m.login.dummy" || (stage == "m.login.registration_token" && r.RegistrationToken != "")
	}
	for _, f := range flows {
		if !slices.ContainsFunc(f.Stages, func(s string) bool { return !can(s) }) {
			for _, s := range f.Stages {
				if !slices.Contains(completed, s) {
					return s
				}
			}
		}
	}
	return ""
}

// registerShared uses /_synapse/admin/v1/register: a nonce, then an HMAC-SHA1 over
// nonce, user, password and admin flag, keyed with the shared secret.
func (r *Registrar) registerShared(ctx context.Context, name string) (loginAnswer, error) {
	const path = "/_synapse/admin/v1/register"
	var nonce struct {
		Nonce string `json:"nonce"`
	}
	var ans loginAnswer
	if err := r.Server.do(ctx, http.MethodGet, path, "", nil, &nonce, 0); err != nil {
		return ans, err
	}
	mac := hmac.New(sha1.New, []byte(r.SharedSecret))
	mac.Write([]byte(nonce.Nonce + "\x00" + name + "\x00" + r.password + "\x00notadmin"))
	body := map[string]any{
		"nonce": nonce.Nonce, "username": name, "password": r.password, "admin": false,
		"mac": hex.EncodeToString(mac.Sum(nil)),
	}
	err := r.Server.do(ctx, http.MethodPost, path, "", body, &ans, 0)
	return ans, err
}

// forEach runs fn for 0..n-1 on at most parallel workers (fn learns its worker's number, so that
// each worker can act as its own user) and returns the first error; after an error no new call
// starts.
func forEach(parent context.Context, n, parallel int, fn func(ctx context.Context, worker, i int) error) error {
	if parallel < 1 {
		parallel = 1
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for w := range min(parallel, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, w, i); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = parent.Err()
	}
	return firstErr
}
