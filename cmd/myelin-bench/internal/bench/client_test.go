package bench

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestRateLimitedRequestIsRetriedAndCounted(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"errcode":"M_LIMIT_EXCEEDED","error":"slow down","retry_after_ms":10}`))
			return
		}
		w.Write([]byte(`{"event_id":"$e"}`))
	}))
	defer srv.Close()
	s := NewServer(srv.URL, 5*time.Second)
	u := &User{Server: s, AccessToken: "t"}
	id, err := u.SendText(context.Background(), "!r:x", "hi")
	if err != nil || id != "$e" {
		t.Fatalf("SendText = %q, %v", id, err)
	}
	if got := s.RateLimited.Load(); got != 2 {
		t.Errorf("RateLimited = %d, want 2", got)
	}
}

func TestMatrixErrorIsReturned(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"errcode":"M_FORBIDDEN","error":"no"}`))
	}))
	defer srv.Close()
	u := &User{Server: NewServer(srv.URL, 5*time.Second), AccessToken: "t"}
	err := u.Join(context.Background(), "!r:x")
	var mErr *MatrixError
	if !errors.As(err, &mErr) || mErr.ErrCode != "M_FORBIDDEN" || mErr.Status != http.StatusForbidden {
		t.Errorf("err = %v", err)
	}
}

// fakeRegister answers POST /register with User-Interactive Authentication over flows, accepting
// a stage when its auth dict is right.
func fakeRegister(t *testing.T, flows [][]string, token string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Username string         `json:"username"`
			Auth     map[string]any `json:"auth"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Error(err)
		}
		ok := false
		switch req.Auth["type"] {
		case "m.login.dummy":
			ok = req.Auth["session"] == "s1"
		case "m.login.registration_token":
			ok = req.Auth["session"] == "s1" && req.Auth["token"] == token
		}
		if !ok {
			var fl []map[string]any
			for _, f := range flows {
				fl = append(fl, map[string]any{"stages": f})
			}
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]any{"session": "s1", "flows": fl})
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"user_id": "@" + req.Username + ":x", "device_id": "D", "access_token": "tok"})
	}))
}

func TestRegisterWalksInteractiveAuth(t *testing.T) {
	tests := []struct {
		name    string
		flows   [][]string
		token   string
		wantErr bool
	}{
		{"dummy", [][]string{{"m.login.dummy"}}, "", false},
		{"token", [][]string{{"m.login.registration_token"}}, "sekrit", false},
		{"token needed but not given", [][]string{{"m.login.registration_token"}}, "", true},
		{"only a captcha", [][]string{{"m.login.recaptcha"}}, "", true},
		{"captcha or dummy", [][]string{{"m.login.recaptcha"}, {"m.login.dummy"}}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakeRegister(t, tt.flows, "sekrit")
			defer srv.Close()
			reg := NewRegistrar(NewServer(srv.URL, 5*time.Second), tt.token, "")
			u, err := reg.Register(context.Background())
			if tt.wantErr {
				if err == nil {
					t.Errorf("registered %v", u.UserID)
				}
				return
			}
			if err != nil || u.AccessToken != "tok" || u.DeviceID != "D" {
				t.Errorf("Register = %+v, %v", u, err)
			}
		})
	}
}

func TestRegisterWithSharedSecret(t *testing.T) {
	const secret = "shh"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_synapse/admin/v1/register" {
			http.NotFound(w, r)
			return
		}
		if r.Method == http.MethodGet {
			w.Write([]byte(`{"nonce":"n0nce"}`))
			return
		}
		var req struct {
			Nonce, Username, Password, MAC string
			Admin                          bool
		}
		json.NewDecoder(r.Body).Decode(&req)
		mac := hmac.New(sha1.New, []byte(secret))
		mac.Write([]byte("n0nce\x00" + req.Username + "\x00" + req.Password + "\x00notadmin"))
		if req.Nonce != "n0nce" || req.Admin || req.MAC != hex.EncodeToString(mac.Sum(nil)) {
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"errcode":"M_FORBIDDEN","error":"bad mac"}`))
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"user_id": "@" + req.Username + ":x", "device_id": "D", "access_token": "tok"})
	}))
	defer srv.Close()
	reg := NewRegistrar(NewServer(srv.URL, 5*time.Second), "", secret)
	if u, err := reg.Register(context.Background()); err != nil || u.AccessToken != "tok" {
		t.Fatalf("Register = %+v, %v", u, err)
	}
}
