package sytest

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"myelin/clientapi/account"
	"myelin/storage"
)

const (
	v3 = "/_matrix/client/v3"
	v1 = "/_matrix/client/v1"
)

// withPassword runs a request protected by User-Interactive Authentication: first without auth,
// which must be answered with the password flow and a session, then with the password.
func withPassword(t *testing.T, c *Client, method, path string, body map[string]any, password string) Reply {
	t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	first := c.Must(t, 401, method, path, body)
	if !hasFlow(first, "m.login.password") || first.Str("session") == "" || first.Body["params"] == nil {
		t.Fatalf("%s %s: not a password challenge: %s", method, path, first.Raw)
	}
	if _, ok := first.Body["errcode"]; ok {
		t.Errorf("%s %s: the first challenge carries an errcode: %s", method, path, first.Raw)
	}
	body["auth"] = map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": c.UserID},
		"password":   password,
		"session":    first.Str("session"),
	}
	return c.Do(t, method, path, body)
}

func hasFlow(r Reply, stage string) bool {
	flows, _ := r.Body["flows"].([]any)
	for _, f := range flows {
		stages, _ := f.(map[string]any)["stages"].([]any)
		if len(stages) == 1 && stages[0] == stage {
			return true
		}
	}
	return false
}

func TestAccountLifecycle(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		anon := Anonymous(s)

		if r := anon.Must(t, 200, "GET", v3+"/register/available?username=alice", nil); r.Body["available"] != true {
			t.Errorf("available: %s", r.Raw)
		}
		// Registration: a challenge offering the dummy stage, then success with the device named.
		body := map[string]any{"username": "alice", "password": "correct horse", "initial_device_display_name": "Phone"}
		challenge := anon.Must(t, 401, "POST", v3+"/register", body)
		if !hasFlow(challenge, "m.login.dummy") || challenge.Str("session") == "" {
			t.Fatalf("register challenge: %s", challenge.Raw)
		}
		body["auth"] = map[string]any{"type": "m.login.dummy", "session": challenge.Str("session")}
		reg := anon.Must(t, 200, "POST", v3+"/register", body)
		alice := &Client{Base: s.ClientURL, Token: reg.Str("access_token"), UserID: reg.Str("user_id"), DeviceID: reg.Str("device_id")}
		if alice.UserID != "@alice:localhost" || alice.Token == "" || alice.DeviceID == "" {
			t.Fatalf("register: %s", reg.Raw)
		}
		if _, ok := reg.Body["expires_in_ms"]; ok {
			t.Errorf("a token without a refresh token expires: %s", reg.Raw)
		}
		anon.MustErr(t, 400, "M_USER_IN_USE", "GET", v3+"/register/available?username=alice", nil)
		anon.MustErr(t, 400, "M_USER_IN_USE", "POST", v3+"/register", map[string]any{"username": "Alice", "password": "another password"})

		who := alice.Must(t, 200, "GET", v3+"/account/whoami", nil)
		if who.Str("user_id") != alice.UserID || who.Str("device_id") != alice.DeviceID || who.Body["is_guest"] != false {
			t.Errorf("whoami: %s", who.Raw)
		}
		// The deprecated query parameter works too.
		q := &Client{Base: s.ClientURL}
		q.Must(t, 200, "GET", v3+"/account/whoami?access_token="+url.QueryEscape(alice.Token), nil)

		// Login: m.id.user identifier, and the deprecated top-level user with a full user id.
		laptop, _ := Login(t, s, "alice", "correct horse", map[string]any{"initial_device_display_name": "Laptop"})
		phone2 := Anonymous(s).Must(t, 200, "POST", v3+"/login", map[string]any{
			"type": "m.login.password", "user": "@alice:localhost", "password": "correct horse"})
		third := &Client{Base: s.ClientURL, Token: phone2.Str("access_token"), UserID: alice.UserID, DeviceID: phone2.Str("device_id")}
		anon.MustErr(t, 403, "M_FORBIDDEN", "POST", v3+"/login", map[string]any{
			"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": "wrong horse"})
		anon.MustErr(t, 403, "M_FORBIDDEN", "POST", v3+"/login", map[string]any{
			"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "nobody"}, "password": "wrong horse"})
		if f := anon.Must(t, 200, "GET", v3+"/login", nil); fmt.Sprint(f.Body["flows"]) != "[map[type:m.login.password]]" {
			t.Errorf("login flows: %s", f.Raw)
		}

		// Devices: list, rename, read back.
		list := alice.Must(t, 200, "GET", v3+"/devices", nil)
		if devs, _ := list.Body["devices"].([]any); len(devs) != 3 {
			t.Fatalf("devices: %s", list.Raw)
		}
		for _, d := range list.Body["devices"].([]any) {
			if _, ok := d.(map[string]any)["last_seen_ip"]; ok {
				t.Errorf("last_seen_ip stored although the operator did not ask: %v", d)
			}
		}
		alice.Must(t, 200, "PUT", v3+"/devices/"+laptop.DeviceID, map[string]any{"display_name": "Work laptop"})
		if d := alice.Must(t, 200, "GET", v3+"/devices/"+laptop.DeviceID, nil); d.Str("display_name") != "Work laptop" || d.Body["last_seen_ts"] == nil {
			t.Errorf("device after rename: %s", d.Raw)
		}
		alice.MustErr(t, 404, "M_NOT_FOUND", "PUT", v3+"/devices/NOSUCHDEVICE", map[string]any{"display_name": "x"})
		alice.MustErr(t, 404, "M_NOT_FOUND", "GET", v3+"/devices/NOSUCHDEVICE", nil)

		// Deleting a device needs the password: a wrong one is a 401 with M_FORBIDDEN.
		path := v3 + "/devices/" + third.DeviceID
		first := alice.Must(t, 401, "DELETE", path, map[string]any{})
		wrong := alice.Do(t, "DELETE", path, map[string]any{"auth": map[string]any{
			"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "alice"},
			"password": "wrong", "session": first.Str("session")}})
		if wrong.Status != 401 || wrong.Str("errcode") != "M_FORBIDDEN" || !hasFlow(wrong, "m.login.password") {
			t.Fatalf("wrong password: %d %s", wrong.Status, wrong.Raw)
		}
		if r := withPassword(t, alice, "DELETE", path, nil, "correct horse"); r.Status != 200 {
			t.Fatalf("delete device: %d %s", r.Status, r.Raw)
		}
		third.MustErr(t, 401, "M_UNKNOWN_TOKEN", "GET", v3+"/account/whoami", nil)
		if r := withPassword(t, alice, "DELETE", path, nil, "correct horse"); r.Status != 200 {
			t.Errorf("deleting a device already gone: %d %s", r.Status, r.Raw)
		}

		// Bulk deletion.
		fourth, _ := Login(t, s, "alice", "correct horse", nil)
		if r := withPassword(t, alice, "POST", v3+"/delete_devices", map[string]any{"devices": []string{fourth.DeviceID, "NOSUCH"}}, "correct horse"); r.Status != 200 {
			t.Fatalf("delete_devices: %d %s", r.Status, r.Raw)
		}
		fourth.MustErr(t, 401, "M_UNKNOWN_TOKEN", "GET", v3+"/account/whoami", nil)

		// A password change logs out every other device and keeps this one.
		if r := withPassword(t, alice, "POST", v3+"/account/password", map[string]any{"new_password": "battery staple"}, "correct horse"); r.Status != 200 {
			t.Fatalf("password change: %d %s", r.Status, r.Raw)
		}
		alice.Must(t, 200, "GET", v3+"/account/whoami", nil)
		laptop.MustErr(t, 401, "M_UNKNOWN_TOKEN", "GET", v3+"/account/whoami", nil)
		anon.MustErr(t, 403, "M_FORBIDDEN", "POST", v3+"/login", map[string]any{
			"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": "correct horse"})

		// Refresh tokens: rotation, and the old refresh token refused once the new pair is used.
		rc, login := Login(t, s, "alice", "battery staple", map[string]any{"refresh_token": true})
		if login.Str("refresh_token") == "" || login.Body["expires_in_ms"] == nil {
			t.Fatalf("login with refresh_token: %s", login.Raw)
		}
		r1 := login.Str("refresh_token")
		ref := anon.Must(t, 200, "POST", v3+"/refresh", map[string]any{"refresh_token": r1})
		if ref.Str("access_token") == "" || ref.Str("refresh_token") == "" || ref.Body["expires_in_ms"] == nil {
			t.Fatalf("refresh: %s", ref.Raw)
		}
		rc.MustErr(t, 401, "M_UNKNOWN_TOKEN", "GET", v3+"/account/whoami", nil)
		rc.Token = ref.Str("access_token")
		if w := rc.Must(t, 200, "GET", v3+"/account/whoami", nil); w.Str("device_id") != login.Str("device_id") {
			t.Errorf("refreshed token is on device %s, want %s", w.Str("device_id"), login.Str("device_id"))
		}
		if r := anon.MustErr(t, 401, "M_UNKNOWN_TOKEN", "POST", v3+"/refresh", map[string]any{"refresh_token": r1}); r.Body["soft_logout"] != false {
			t.Errorf("a revoked refresh token: %s", r.Raw)
		}
		ref2 := anon.Must(t, 200, "POST", v3+"/refresh", map[string]any{"refresh_token": ref.Str("refresh_token")})
		rc.Token = ref2.Str("access_token")

		// Logout ends one device; logout/all ends every one.
		rc.Must(t, 200, "POST", v3+"/logout", map[string]any{})
		rc.MustErr(t, 401, "M_UNKNOWN_TOKEN", "GET", v3+"/account/whoami", nil)
		anon.MustErr(t, 401, "M_UNKNOWN_TOKEN", "POST", v3+"/refresh", map[string]any{"refresh_token": ref2.Str("refresh_token")})
		other, _ := Login(t, s, "alice", "battery staple", nil)
		alice.Must(t, 200, "POST", v3+"/logout/all", map[string]any{})
		alice.MustErr(t, 401, "M_UNKNOWN_TOKEN", "GET", v3+"/account/whoami", nil)
		other.MustErr(t, 401, "M_UNKNOWN_TOKEN", "GET", v3+"/account/whoami", nil)

		// Device id reuse: the device stays, its old token goes.
		again, _ := Login(t, s, "alice", "battery staple", map[string]any{"initial_device_display_name": "Tablet"})
		same, sameReply := Login(t, s, "alice", "battery staple", map[string]any{"device_id": again.DeviceID, "initial_device_display_name": "ignored"})
		if sameReply.Str("device_id") != again.DeviceID {
			t.Errorf("device_id not reused: %s", sameReply.Raw)
		}
		again.MustErr(t, 401, "M_UNKNOWN_TOKEN", "GET", v3+"/account/whoami", nil)
		if d := same.Must(t, 200, "GET", v3+"/devices/"+again.DeviceID, nil); d.Str("display_name") != "Tablet" {
			t.Errorf("reused device renamed: %s", d.Raw)
		}

		caps := same.Must(t, 200, "GET", v3+"/capabilities", nil)
		c, _ := caps.Body["capabilities"].(map[string]any)
		rv, _ := c["m.room_versions"].(map[string]any)
		avail, _ := rv["available"].(map[string]any)
		if rv["default"] != "12" || avail["1"] != "stable" || avail["12"] != "stable" || len(avail) != 12 ||
			fmt.Sprint(c["m.change_password"]) != "map[enabled:true]" || fmt.Sprint(c["m.get_login_token"]) != "map[enabled:false]" {
			t.Errorf("capabilities: %s", caps.Raw)
		}

		// Deactivation: the token, the devices and the password are gone; the name stays taken.
		if r := withPassword(t, same, "POST", v3+"/account/deactivate", nil, "battery staple"); r.Status != 200 || r.Str("id_server_unbind_result") != "success" {
			t.Fatalf("deactivate: %d %s", r.Status, r.Raw)
		}
		same.MustErr(t, 401, "M_UNKNOWN_TOKEN", "GET", v3+"/account/whoami", nil)
		r := anon.Do(t, "POST", v3+"/login", map[string]any{
			"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": "battery staple"})
		if r.Status != 403 || (r.Str("errcode") != "M_FORBIDDEN" && r.Str("errcode") != "M_USER_DEACTIVATED") {
			t.Errorf("login after deactivation: %d %s", r.Status, r.Raw)
		}
		anon.MustErr(t, 400, "M_USER_IN_USE", "GET", v3+"/register/available?username=alice", nil)

		// Nothing secret reached the logs, although the server logs at debug level.
		for _, secret := range []string{"correct horse", "battery staple", alice.Token, r1, ref.Str("access_token")} {
			if strings.Contains(s.Logs(), secret) {
				t.Errorf("the logs contain a password or token")
			}
		}
	})
}

// TestUIASessionSurvivesRestart: a session started before a restart can be completed after it.
func TestUIASessionSurvivesRestart(t *testing.T) {
	s := Start(t, Options{})
	anon := Anonymous(s)
	body := map[string]any{"username": "bob", "password": "correct horse"}
	first := anon.Must(t, 401, "POST", v3+"/register", body)
	s.Restart(t)
	body["auth"] = map[string]any{"type": "m.login.dummy", "session": first.Str("session")}
	anon.Must(t, 200, "POST", v3+"/register", body)
	body["auth"] = map[string]any{"type": "m.login.dummy", "session": "no-such-session"}
	body["username"] = "bob2"
	anon.MustErr(t, 400, "M_UNKNOWN", "POST", v3+"/register", body)
}

// addRegistrationToken stores a registration token in a running server's database, as an
// administrator would.
func addRegistrationToken(t *testing.T, s *Server, dbURL, token string, uses int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := storage.Open(ctx, storage.Config{URL: dbURL, SQLitePath: filepath.Join(s.DataDir, "myelin.db"), MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.WithTx(ctx, func(tx *storage.Tx) error {
		return tx.InsertRegistrationToken(ctx, storage.RegistrationToken{
			Hash: account.HashToken(token), UsesAllowed: uses, CreatedTS: time.Now().UnixMilli()})
	}); err != nil {
		t.Fatal(err)
	}
}

func TestRegistrationWithToken(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL, Config: map[string]any{"registration": map[string]any{"require_token": true}}})
		anon := Anonymous(s)
		validity := "/_matrix/client/v1/register/m.login.registration_token/validity?token="
		if r := anon.Must(t, 200, "GET", validity+"fBVFdqVE", nil); r.Body["valid"] != false {
			t.Errorf("unknown token valid: %s", r.Raw)
		}
		addRegistrationToken(t, s, dbURL, "fBVFdqVE", 1)
		if r := anon.Must(t, 200, "GET", validity+"fBVFdqVE", nil); r.Body["valid"] != true {
			t.Errorf("new token not valid: %s", r.Raw)
		}

		register := func(username, token string) Reply {
			body := map[string]any{"username": username, "password": "correct horse"}
			first := anon.Must(t, 401, "POST", v3+"/register", body)
			if !hasFlow(first, "m.login.registration_token") || hasFlow(first, "m.login.dummy") {
				t.Fatalf("flows: %s", first.Raw)
			}
			body["auth"] = map[string]any{"type": "m.login.dummy", "session": first.Str("session")}
			if r := anon.Do(t, "POST", v3+"/register", body); r.Status != 401 || r.Str("errcode") != "M_UNRECOGNIZED" {
				t.Errorf("dummy stage where a token is required: %d %s", r.Status, r.Raw)
			}
			body["auth"] = map[string]any{"type": "m.login.registration_token", "token": token, "session": first.Str("session")}
			return anon.Do(t, "POST", v3+"/register", body)
		}
		if r := register("carol", "wrongtoken"); r.Status != 401 || r.Str("errcode") == "" {
			t.Errorf("wrong token: %d %s", r.Status, r.Raw)
		}
		if r := register("carol", "fBVFdqVE"); r.Status != 200 || r.Str("user_id") != "@carol:localhost" {
			t.Fatalf("register with token: %d %s", r.Status, r.Raw)
		}
		if r := anon.Must(t, 200, "GET", validity+"fBVFdqVE", nil); r.Body["valid"] != false {
			t.Errorf("used-up token still valid: %s", r.Raw)
		}
		if r := register("dave", "fBVFdqVE"); r.Status != 401 {
			t.Errorf("used-up token accepted: %d %s", r.Status, r.Raw)
		}
	})
}

func TestRegistrationRefused(t *testing.T) {
	closed := Start(t, Options{Config: map[string]any{"registration": map[string]any{"enabled": false}}})
	Anonymous(closed).MustErr(t, 403, "M_FORBIDDEN", "POST", v3+"/register", map[string]any{"username": "x", "password": "correct horse"})
	Anonymous(closed).MustErr(t, 403, "M_FORBIDDEN", "GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=abc", nil)

	open := Start(t, Options{})
	Anonymous(open).MustErr(t, 403, "M_GUEST_ACCESS_FORBIDDEN", "POST", v3+"/register?kind=guest", map[string]any{})
}

func TestAccountBadInput(t *testing.T) {
	s := Start(t, Options{})
	anon := Anonymous(s)
	anon.MustErr(t, 400, "M_NOT_JSON", "POST", v3+"/register", "{not json")
	anon.MustErr(t, 400, "M_NOT_JSON", "POST", v3+"/login", "")
	anon.MustErr(t, 400, "M_BAD_JSON", "POST", v3+"/register", map[string]any{"username": 5})
	anon.MustErr(t, 400, "M_BAD_JSON", "POST", v3+"/login", map[string]any{"type": "m.login.password", "password": true})
	anon.MustErr(t, 400, "M_UNKNOWN", "POST", v3+"/login", map[string]any{"type": "m.login.bogus"})
	anon.MustErr(t, 400, "M_INVALID_USERNAME", "POST", v3+"/register", map[string]any{"username": "no spaces!", "password": "correct horse"})
	anon.MustErr(t, 400, "M_INVALID_USERNAME", "GET", v3+"/register/available?username=%C3%A9", nil)
	anon.MustErr(t, 400, "M_WEAK_PASSWORD", "POST", v3+"/register", map[string]any{"username": "erin", "password": "short"})
	anon.MustErr(t, 401, "M_MISSING_TOKEN", "GET", v3+"/account/whoami", nil)
	anon.MustErr(t, 401, "M_MISSING_TOKEN", "GET", v3+"/devices", nil)
	bogus := &Client{Base: s.ClientURL, Token: "mya_bogus"}
	if r := bogus.MustErr(t, 401, "M_UNKNOWN_TOKEN", "GET", v3+"/account/whoami", nil); r.Body["soft_logout"] != false {
		t.Errorf("unknown token: %s", r.Raw)
	}
	anon.MustErr(t, 401, "M_UNKNOWN_TOKEN", "POST", v3+"/refresh", map[string]any{"refresh_token": "myr_bogus"})
	anon.MustErr(t, 400, "M_MISSING_PARAM", "POST", v3+"/refresh", map[string]any{})

	u := Register(t, s, "frank", "correct horse")
	u.MustErr(t, 400, "M_BAD_JSON", "PUT", v3+"/devices/"+u.DeviceID, map[string]any{"display_name": 7})
	u.MustErr(t, 400, "M_MISSING_PARAM", "POST", v3+"/account/password", map[string]any{})
	u.MustErr(t, 400, "M_WEAK_PASSWORD", "POST", v3+"/account/password", map[string]any{"new_password": "x"})
	// The password stage must authenticate the token's own user.
	first := u.Must(t, 401, "POST", v3+"/delete_devices", map[string]any{"devices": []string{}})
	Register(t, s, "grace", "correct horse")
	r := u.Do(t, "POST", v3+"/delete_devices", map[string]any{"devices": []string{}, "auth": map[string]any{
		"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "grace"},
		"password": "correct horse", "session": first.Str("session")}})
	if r.Status != 401 || r.Str("errcode") != "M_FORBIDDEN" {
		t.Errorf("another user's password accepted: %d %s", r.Status, r.Raw)
	}
}

func TestLoginRateLimit(t *testing.T) {
	s := Start(t, Options{Config: map[string]any{"ratelimit": map[string]any{"enabled": true, "per_second": 0.2, "burst": 3}}})
	anon := Anonymous(s)
	body := map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "nobody"}, "password": "wrong horse"}
	var last Reply
	for i := 0; i < 5; i++ {
		last = anon.Do(t, "POST", v3+"/login", body)
		if last.Status == 429 {
			break
		}
	}
	if last.Status != 429 || last.Str("errcode") != "M_LIMIT_EXCEEDED" {
		t.Fatalf("no rate limit after a burst of logins: %d %s", last.Status, last.Raw)
	}
	ms, _ := last.Body["retry_after_ms"].(float64)
	secs, err := strconv.Atoi(last.Header.Get("Retry-After"))
	if ms <= 0 || err != nil || secs < 1 {
		t.Errorf("retry_after_ms %v, Retry-After %q", last.Body["retry_after_ms"], last.Header.Get("Retry-After"))
	}
}

// TestCreateAccountCommand: an account made with `myelin create-account` (password on standard
// input) can log in over HTTP.
func TestCreateAccountCommand(t *testing.T) {
	s := Start(t, Options{Config: map[string]any{"registration": map[string]any{"enabled": false}}})
	out, stderr, code := runCLI(t, "correct horse\n", "create-account", "--config", s.ConfigPath, "--username", "Heidi")
	if code != 0 {
		t.Fatalf("create-account: exit %d: %s", code, stderr)
	}
	if out != "created @heidi:localhost\n" {
		t.Errorf("create-account printed %q", out)
	}
	c, _ := Login(t, s, "@heidi:localhost", "correct horse", nil)
	if w := c.Must(t, 200, "GET", v3+"/account/whoami", nil); w.Str("user_id") != "@heidi:localhost" {
		t.Errorf("whoami: %s", w.Raw)
	}
}
