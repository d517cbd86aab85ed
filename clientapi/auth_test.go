package clientapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"myelin/mxhttp"
	"myelin/storage"
	"myelin/storage/storagetest"
)

type testServer struct {
	api *API
	now time.Time
	srv *httptest.Server
}

func newTestServer(t *testing.T, db *storage.DB, cfg Config) *testServer {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	cfg.ServerName, cfg.DB, cfg.MaxBodyBytes, cfg.RegistrationEnabled = "example.org", db, 1<<20, true
	ts := &testServer{api: New(cfg, logrus.NewEntry(log)), now: time.UnixMilli(1_700_000_000_000)}
	ts.api.now = func() time.Time { return ts.now }
	ts.srv = httptest.NewServer(ts.api.Handler())
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *testServer) call(t *testing.T, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, ts.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (ts *testServer) register(t *testing.T, username string, refresh bool) map[string]any {
	t.Helper()
	body := `{"username":"` + username + `","password":"correct horse","refresh_token":` + map[bool]string{true: "true", false: "false"}[refresh]
	status, first := ts.call(t, "POST", "/_matrix/client/v3/register", "", body+`}`)
	if status != 401 {
		t.Fatalf("register: %d %v", status, first)
	}
	status, out := ts.call(t, "POST", "/_matrix/client/v3/register", "",
		body+`,"auth":{"type":"m.login.dummy","session":"`+first["session"].(string)+`"}}`)
	if status != 200 {
		t.Fatalf("register: %d %v", status, out)
	}
	return out
}

// TestExpiredTokenIsSoftLogout: an access token issued with a refresh token expires after the
// configured lifetime, and is then answered with soft_logout true; refreshing gives a new one.
// Tokens issued without a refresh token do not expire.
func TestExpiredTokenIsSoftLogout(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ts := newTestServer(t, db, Config{RefreshableTokenLifetime: time.Minute})
		refreshable := ts.register(t, "alice", true)
		if refreshable["expires_in_ms"] != float64(60000) {
			t.Errorf("expires_in_ms = %v", refreshable["expires_in_ms"])
		}
		plain := ts.register(t, "bob", false)

		ts.now = ts.now.Add(2 * time.Minute)
		status, body := ts.call(t, "GET", "/_matrix/client/v3/account/whoami", refreshable["access_token"].(string), "")
		if status != 401 || body["errcode"] != "M_UNKNOWN_TOKEN" || body["soft_logout"] != true {
			t.Errorf("expired token: %d %v", status, body)
		}
		if status, body := ts.call(t, "GET", "/_matrix/client/v3/account/whoami", plain["access_token"].(string), ""); status != 200 {
			t.Errorf("non-refreshable token expired: %d %v", status, body)
		}
		status, body = ts.call(t, "POST", "/_matrix/client/v3/refresh", "", `{"refresh_token":"`+refreshable["refresh_token"].(string)+`"}`)
		if status != 200 {
			t.Fatalf("refresh: %d %v", status, body)
		}
		if status, body := ts.call(t, "GET", "/_matrix/client/v3/account/whoami", body["access_token"].(string), ""); status != 200 || body["device_id"] != refreshable["device_id"] {
			t.Errorf("refreshed token: %d %v", status, body)
		}
	})
}

// TestUIASessionRules: retrying a completed session returns the result, and a session
// cannot be carried over to another operation.
func TestUIASessionRules(t *testing.T) {
	db := storagetest.OpenTestDB(t, storage.SQLite)
	ts := newTestServer(t, db, Config{})
	status, first := ts.call(t, "POST", "/_matrix/client/v3/register", "", `{}`)
	if status != 401 || first["params"] == nil || first["errcode"] != nil {
		t.Fatalf("challenge: %d %v", status, first)
	}
	session := first["session"].(string)
	// Completing the dummy stage without a password: the stage stays completed, the request fails.
	status, body := ts.call(t, "POST", "/_matrix/client/v3/register", "", `{"auth":{"type":"m.login.dummy","session":"`+session+`"}}`)
	if status != 400 || body["errcode"] != "M_MISSING_PARAM" {
		t.Fatalf("register without password: %d %v", status, body)
	}
	// Retrying with only the session (the stage is complete) succeeds.
	status, body = ts.call(t, "POST", "/_matrix/client/v3/register", "", `{"password":"correct horse","auth":{"session":"`+session+`"}}`)
	if status != 200 {
		t.Fatalf("retry: %d %v", status, body)
	}
	token := body["access_token"].(string)
	// The session is gone once used.
	status, body = ts.call(t, "POST", "/_matrix/client/v3/register", "", `{"password":"correct horse","auth":{"session":"`+session+`"}}`)
	if status != 400 {
		t.Errorf("reusing a finished session: %d %v", status, body)
	}
	// A registration session does not authorise deleting devices.
	_, first = ts.call(t, "POST", "/_matrix/client/v3/register", "", `{}`)
	status, body = ts.call(t, "POST", "/_matrix/client/v3/delete_devices", token, `{"devices":[],"auth":{"type":"m.login.dummy","session":"`+first["session"].(string)+`"}}`)
	if status != 403 || body["errcode"] != "M_FORBIDDEN" {
		t.Errorf("session carried over to another operation: %d %v", status, body)
	}
}

func TestRateLimiter(t *testing.T) {
	l := NewRateLimiter(RateLimitConfig{Enabled: true, PerSecond: 1, Burst: 2})
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	for i := range 2 {
		if err := l.Allow("k"); err != nil {
			t.Fatalf("request %d within the burst refused: %v", i, err)
		}
	}
	err := l.Allow("k")
	e := mxhttp.AsError(err)
	if err == nil || e.Code != "M_LIMIT_EXCEEDED" || e.Extra["retry_after_ms"] != int64(1000) {
		t.Fatalf("third request: %v", err)
	}
	if err := l.Allow("other"); err != nil {
		t.Errorf("another key shares the bucket: %v", err)
	}
	now = now.Add(time.Second)
	if err := l.Allow("k"); err != nil {
		t.Errorf("refilled bucket refused: %v", err)
	}
	now = now.Add(time.Hour)
	_ = l.Allow("other")
	if len(l.buckets) != 1 {
		t.Errorf("idle buckets not swept: %d left", len(l.buckets))
	}
	if err := NewRateLimiter(RateLimitConfig{}).Allow("k"); err != nil {
		t.Errorf("a disabled limiter refused: %v", err)
	}
}

func TestAccessTokenSources(t *testing.T) {
	tests := []struct {
		header, query, want string
		ok                  bool
	}{
		{header: "Bearer abc", want: "abc", ok: true},
		{header: "bearer abc", want: "abc", ok: true},
		{query: "abc", want: "abc", ok: true},
		{header: "Bearer abc", query: "def", want: "abc", ok: true},
		{header: "Basic abc"},
		{header: "Bearer "},
		{},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/x?access_token="+tt.query, nil)
		if tt.query == "" {
			r = httptest.NewRequest("GET", "/x", nil)
		}
		if tt.header != "" {
			r.Header.Set("Authorization", tt.header)
		}
		if got, ok := accessToken(r); got != tt.want || ok != tt.ok {
			t.Errorf("header %q query %q: got %q %v, want %q %v", tt.header, tt.query, got, ok, tt.want, tt.ok)
		}
	}
}

func TestValidRegistrationToken(t *testing.T) {
	for tok, want := range map[string]bool{
		"fBVFdqVE": true, "a-b.c_d~e": true, strings.Repeat("a", 64): true,
		"": false, strings.Repeat("a", 65): false, "has space": false, "é": false, "a/b": false,
	} {
		if got := validRegistrationToken(tok); got != want {
			t.Errorf("validRegistrationToken(%q) = %v", tok, got)
		}
	}
}
