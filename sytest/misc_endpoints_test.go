package sytest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// The smaller modules of issue #7 (tags, reports, TURN, OpenID, administration, third-party
// identifiers, the deprecated sync API, custom profile fields, and the answers of features the
// server does not offer), and a walk over every Client-Server endpoint of the spec.

const miscTURNSecret = "turn-shared-secret"

func miscServer(t *testing.T, dbURL string, ca *CA) *Server {
	return Start(t, Options{DatabaseURL: dbURL, CA: ca, Config: map[string]any{
		"turn": map[string]any{
			"uris":          []string{"turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349?transport=tcp"},
			"shared_secret": miscTURNSecret,
			"ttl":           "2h",
		},
		"support": map[string]any{
			"contacts": []map[string]any{{"matrix_id": "@admin:example.org", "email_address": "admin@example.org", "role": "m.role.admin"}},
			"page":     "https://example.org/support",
		},
	}})
}

func miscUserPath(userID, rest string) string {
	return "/_matrix/client/v3/user/" + url.PathEscape(userID) + rest
}

func TestMiscEndpoints(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		ca := NewCA(t)
		s := miscServer(t, dbURL, ca)
		alice := Register(t, s, "alice", "alice password")
		bob := Register(t, s, "bob", "bob password")
		room := alice.Must(t, 200, "POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat"}).Str("room_id")
		eventID := say(t, alice, room, "hello")

		t.Run("tags", func(t *testing.T) { testTags(t, alice, bob, room) })
		t.Run("reports", func(t *testing.T) { testReports(t, s, alice, bob, room, eventID) })
		t.Run("turn", func(t *testing.T) { testTURN(t, alice) })
		t.Run("openid", func(t *testing.T) { testOpenID(t, s, ca, alice, bob) })
		t.Run("admin", func(t *testing.T) { testAdmin(t, s, alice, bob, room) })
		t.Run("threepids", func(t *testing.T) { testThreepids(t, s, alice) })
		t.Run("unsupported features", func(t *testing.T) { testNoFeature(t, s, alice) })
		t.Run("legacy sync", func(t *testing.T) { testLegacySync(t, alice, bob, room, eventID) })
		t.Run("profile fields", func(t *testing.T) { testProfileFields(t, alice, bob, room) })
	})
}

func testTags(t *testing.T, alice, bob *Client, room string) {
	tags := miscUserPath(alice.UserID, "/rooms/"+url.PathEscape(room)+"/tags")
	if r := alice.Must(t, 200, "GET", tags, nil); fmt.Sprint(r.Body["tags"]) != "map[]" {
		t.Errorf("no tags yet: %s", r.Raw)
	}
	alice.Must(t, 200, "PUT", tags+"/u.work", map[string]any{"order": 0.25})
	alice.Must(t, 200, "PUT", tags+"/m.favourite", map[string]any{})
	alice.MustErr(t, 400, "M_INVALID_PARAM", "PUT", tags+"/u.bad", map[string]any{"order": 1.5})
	alice.MustErr(t, 400, "M_BAD_JSON", "PUT", tags+"/u.bad", map[string]any{"order": "high"})
	alice.MustErr(t, 400, "M_NOT_JSON", "PUT", tags+"/u.bad", "{")
	alice.MustErr(t, 400, "M_INVALID_PARAM", "PUT", tags+"/"+strings.Repeat("x", 256), map[string]any{})
	bob.MustErr(t, 403, "M_FORBIDDEN", "GET", tags, nil)
	bob.MustErr(t, 403, "M_FORBIDDEN", "PUT", tags+"/u.mine", map[string]any{})
	r := alice.Must(t, 200, "GET", tags, nil)
	got, _ := r.Body["tags"].(map[string]any)
	if len(got) != 2 || fmt.Sprint(got["u.work"]) != "map[order:0.25]" || fmt.Sprint(got["m.favourite"]) != "map[]" {
		t.Errorf("tags: %s", r.Raw)
	}
	alice.Must(t, 200, "DELETE", tags+"/u.work", nil)
	alice.Must(t, 200, "DELETE", tags+"/u.never", nil)
	r = alice.Must(t, 200, "GET", tags, nil)
	if got, _ := r.Body["tags"].(map[string]any); len(got) != 1 || got["m.favourite"] == nil {
		t.Errorf("after delete: %s", r.Raw)
	}
	// The tags are the room's m.tag account data, which /sync hands out.
	ad := alice.Must(t, 200, "GET", miscUserPath(alice.UserID, "/rooms/"+url.PathEscape(room)+"/account_data/m.tag"), nil)
	if fmt.Sprint(ad.Body["tags"]) != "map[m.favourite:map[]]" {
		t.Errorf("m.tag account data: %s", ad.Raw)
	}
	sync := alice.Must(t, 200, "GET", "/_matrix/client/v3/sync", nil)
	var body struct {
		Rooms struct {
			Join map[string]struct {
				AccountData struct {
					Events []struct {
						Type    string         `json:"type"`
						Content map[string]any `json:"content"`
					} `json:"events"`
				} `json:"account_data"`
			} `json:"join"`
		} `json:"rooms"`
	}
	if err := json.Unmarshal(sync.Raw, &body); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range body.Rooms.Join[room].AccountData.Events {
		if ev.Type == "m.tag" && fmt.Sprint(ev.Content["tags"]) == "map[m.favourite:map[]]" {
			found = true
		}
	}
	if !found {
		t.Errorf("m.tag not in /sync's room account data: %s", sync.Raw)
	}
}

func testReports(t *testing.T, s *Server, alice, bob *Client, room, eventID string) {
	reportEvent := roomPath(room, "/report/"+url.PathEscape(eventID))
	// Bob is not in the room: the event is "not found" for him.
	bob.MustErr(t, 404, "M_NOT_FOUND", "POST", reportEvent, map[string]any{"reason": "spam"})
	bob.Must(t, 200, "POST", roomPath(room, "/join"), map[string]any{})
	bob.MustErr(t, 404, "M_NOT_FOUND", "POST", roomPath(room, "/report/$nope"), map[string]any{"reason": "spam"})
	bob.MustErr(t, 400, "M_NOT_JSON", "POST", reportEvent, "nope")
	bob.Must(t, 200, "POST", reportEvent, map[string]any{"reason": "spam", "score": -100})
	// Room reports need a reason but not membership; an unknown room is not found.
	bob.MustErr(t, 400, "M_MISSING_PARAM", "POST", roomPath(room, "/report"), map[string]any{})
	bob.MustErr(t, 404, "M_NOT_FOUND", "POST", roomPath("!unknown:localhost", "/report"), map[string]any{"reason": "x"})
	bob.Must(t, 200, "POST", roomPath(room, "/report"), map[string]any{"reason": "whole room"})
	// User reports: an unknown local user is neither disclosed nor stored.
	users := "/_matrix/client/v3/users/"
	bob.MustErr(t, 400, "M_MISSING_PARAM", "POST", users+url.PathEscape(alice.UserID)+"/report", map[string]any{})
	bob.Must(t, 200, "POST", users+url.PathEscape("@ghost:localhost")+"/report", map[string]any{"reason": "x"})
	bob.Must(t, 200, "POST", users+url.PathEscape(alice.UserID)+"/report", map[string]any{"reason": "rude"})

	out, stderr, code := runCLI(t, "", "reports", "--config", s.ConfigPath, "--json")
	if code != 0 {
		t.Fatalf("myelin reports: exit %d: %s", code, stderr)
	}
	var got []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("myelin reports --json: %v: %q", err, out)
		}
		got = append(got, r)
	}
	if len(got) != 3 {
		t.Fatalf("want 3 reports, got %d: %s", len(got), out)
	}
	want := []string{
		"event " + bob.UserID + " " + room + " " + eventID + " " + alice.UserID + " spam -100",
		"room " + bob.UserID + " " + room + "   whole room <nil>",
		"user " + bob.UserID + "   " + alice.UserID + " rude <nil>",
	}
	for i, r := range got {
		line := fmt.Sprintf("%v %v %v %v %v %v %v", r["kind"], r["reporter"], optStr(r["room_id"]), optStr(r["event_id"]), optStr(r["user_id"]), r["reason"], r["score"])
		if line != want[i] {
			t.Errorf("report %d: %q, want %q", i, line, want[i])
		}
		if ts, _ := r["received_ts"].(float64); time.Since(time.UnixMilli(int64(ts))) > time.Hour {
			t.Errorf("report %d has no recent time: %v", i, r)
		}
	}
	table, _, code := runCLI(t, "", "reports", "--config", s.ConfigPath)
	if code != 0 || !strings.Contains(table, `"whole room"`) || !strings.Contains(table, "REPORTER") {
		t.Errorf("myelin reports table: %q", table)
	}
}

func optStr(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func testTURN(t *testing.T, alice *Client) {
	r := alice.Must(t, 200, "GET", "/_matrix/client/v3/voip/turnServer", nil)
	username := r.Str("username")
	expiry, user, ok := strings.Cut(username, ":")
	ts, err := strconv.ParseInt(expiry, 10, 64)
	if !ok || err != nil || user != alice.UserID {
		t.Fatalf("username %q is not expiry:user_id", username)
	}
	if d := time.Until(time.Unix(ts, 0)); d < 119*time.Minute || d > 121*time.Minute {
		t.Errorf("credentials expire in %v, want 2h", d)
	}
	mac := hmac.New(sha1.New, []byte(miscTURNSecret))
	mac.Write([]byte(username))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); r.Str("password") != want {
		t.Errorf("password %q, want %q", r.Str("password"), want)
	}
	if r.Body["ttl"] != float64(7200) || fmt.Sprint(r.Body["uris"]) != "[turn:turn.example.org:3478?transport=udp turns:turn.example.org:5349?transport=tcp]" {
		t.Errorf("turnServer: %s", r.Raw)
	}
	Anonymous(&Server{ClientURL: alice.Base}).MustErr(t, 401, "M_MISSING_TOKEN", "GET", "/_matrix/client/v3/voip/turnServer", nil)
}

func testOpenID(t *testing.T, s *Server, ca *CA, alice, bob *Client) {
	bob.MustErr(t, 403, "M_FORBIDDEN", "POST", miscUserPath(alice.UserID, "/openid/request_token"), map[string]any{})
	r := alice.Must(t, 200, "POST", miscUserPath(alice.UserID, "/openid/request_token"), map[string]any{})
	token := r.Str("access_token")
	if token == "" || r.Str("token_type") != "Bearer" || r.Str("matrix_server_name") != "localhost" || r.Body["expires_in"] != float64(3600) {
		t.Fatalf("request_token: %s", r.Raw)
	}
	// A third party checks the token without X-Matrix signing.
	fed := federationClientFor(ca, "localhost")
	userinfo := func(tok string) (int, map[string]any) {
		resp, err := fed.Get(s.FederationURL + "/_matrix/federation/v1/openid/userinfo?access_token=" + url.QueryEscape(tok))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if code, body := userinfo(token); code != 200 || body["sub"] != alice.UserID {
		t.Errorf("userinfo: %d %v", code, body)
	}
	for _, bad := range []string{"", "myo_unknown", alice.Token} {
		if code, body := userinfo(bad); code != 401 || body["errcode"] != "M_UNKNOWN_TOKEN" {
			t.Errorf("userinfo with %q: %d %v", bad, code, body)
		}
	}
	// Deactivating an account revokes its OpenID tokens.
	carol := Register(t, s, "carol", "carol password")
	carolToken := carol.Must(t, 200, "POST", miscUserPath(carol.UserID, "/openid/request_token"), map[string]any{}).Str("access_token")
	if code, _ := userinfo(carolToken); code != 200 {
		t.Fatalf("carol's token: %d", code)
	}
	if r := withPassword(t, carol, "POST", "/_matrix/client/v3/account/deactivate", nil, "carol password"); r.Status != 200 {
		t.Fatalf("deactivate: %s", r.Raw)
	}
	if code, body := userinfo(carolToken); code != 401 || body["errcode"] != "M_UNKNOWN_TOKEN" {
		t.Errorf("a deactivated account's OpenID token still answers: %d %v", code, body)
	}
}

func testAdmin(t *testing.T, s *Server, alice, bob *Client, room string) {
	_, stderr, code := runCLI(t, "admin password\n", "create-account", "--config", s.ConfigPath, "--username", "root", "--admin")
	if code != 0 {
		t.Fatalf("create-account --admin: %s", stderr)
	}
	root, _ := Login(t, s, "root", "admin password", nil)
	v1 := "/_matrix/client/v1/admin/"
	whois := "/_matrix/client/v3/admin/whois/"

	// whois: the user themself or an administrator.
	for _, c := range []*Client{alice, root} {
		r := c.Must(t, 200, "GET", whois+url.PathEscape(alice.UserID), nil)
		devices, _ := r.Body["devices"].(map[string]any)
		dev, _ := devices[alice.DeviceID].(map[string]any)
		sessions, _ := dev["sessions"].([]any)
		if r.Str("user_id") != alice.UserID || len(sessions) != 1 || !strings.Contains(string(r.Raw), `"last_seen":`) {
			t.Errorf("whois: %s", r.Raw)
		}
		if strings.Contains(string(r.Raw), `"ip"`) {
			t.Errorf("whois shows an IP address the server was not asked to keep: %s", r.Raw)
		}
	}
	bob.MustErr(t, 403, "M_FORBIDDEN", "GET", whois+url.PathEscape(alice.UserID), nil)
	root.MustErr(t, 404, "M_NOT_FOUND", "GET", whois+url.PathEscape("@ghost:localhost"), nil)

	// Only administrators, and authorisation before lookup (no enumeration).
	for _, kind := range []string{"suspend", "lock"} {
		bob.MustErr(t, 403, "M_FORBIDDEN", "GET", v1+kind+"/"+url.PathEscape(alice.UserID), nil)
		bob.MustErr(t, 403, "M_FORBIDDEN", "GET", v1+kind+"/"+url.PathEscape("@ghost:localhost"), nil)
		root.MustErr(t, 404, "M_NOT_FOUND", "GET", v1+kind+"/"+url.PathEscape("@ghost:localhost"), nil)
		root.MustErr(t, 400, "M_INVALID_PARAM", "GET", v1+kind+"/"+url.PathEscape("@x:elsewhere.example"), nil)
		root.MustErr(t, 403, "M_FORBIDDEN", "PUT", v1+kind+"/"+url.PathEscape(root.UserID), map[string]any{kind + "ed": true})
	}
	root.MustErr(t, 400, "M_MISSING_PARAM", "PUT", v1+"suspend/"+url.PathEscape(bob.UserID), map[string]any{})
	root.MustErr(t, 400, "M_BAD_JSON", "PUT", v1+"suspend/"+url.PathEscape(bob.UserID), map[string]any{"suspended": "yes"})
	if r := root.Must(t, 200, "GET", v1+"suspend/"+url.PathEscape(bob.UserID), nil); r.Body["suspended"] != false {
		t.Errorf("suspended before: %s", r.Raw)
	}

	// Suspended: reads, but neither sends nor joins; may leave and redact.
	if r := root.Must(t, 200, "PUT", v1+"suspend/"+url.PathEscape(bob.UserID), map[string]any{"suspended": true}); r.Body["suspended"] != true {
		t.Errorf("suspend: %s", r.Raw)
	}
	if r := root.Must(t, 200, "GET", v1+"suspend/"+url.PathEscape(bob.UserID), nil); r.Body["suspended"] != true {
		t.Errorf("suspended after: %s", r.Raw)
	}
	bob.MustErr(t, 403, "M_USER_SUSPENDED", "PUT", roomPath(room, "/send/m.room.message/susp1"), map[string]any{"msgtype": "m.text", "body": "x"})
	bob.MustErr(t, 403, "M_USER_SUSPENDED", "POST", "/_matrix/client/v3/createRoom", map[string]any{})
	bob.MustErr(t, 403, "M_USER_SUSPENDED", "PUT", "/_matrix/client/v3/profile/"+url.PathEscape(bob.UserID)+"/displayname", map[string]any{"displayname": "B"})
	bob.Must(t, 200, "GET", "/_matrix/client/v3/sync", nil)
	bob.Must(t, 200, "GET", roomPath(room, "/messages?dir=b"), nil)
	bob.Must(t, 200, "POST", roomPath(room, "/leave"), map[string]any{})
	bob.MustErr(t, 403, "M_USER_SUSPENDED", "POST", roomPath(room, "/join"), map[string]any{})
	root.Must(t, 200, "PUT", v1+"suspend/"+url.PathEscape(bob.UserID), map[string]any{"suspended": false})
	bob.Must(t, 200, "POST", roomPath(room, "/join"), map[string]any{})

	// Locked: everything but logging out answers 401 M_USER_LOCKED with soft_logout; the
	// session survives an unlock.
	root.Must(t, 200, "PUT", v1+"lock/"+url.PathEscape(bob.UserID), map[string]any{"locked": true})
	if r := root.Must(t, 200, "GET", v1+"lock/"+url.PathEscape(bob.UserID), nil); r.Body["locked"] != true {
		t.Errorf("locked: %s", r.Raw)
	}
	r := bob.MustErr(t, 401, "M_USER_LOCKED", "GET", "/_matrix/client/v3/account/whoami", nil)
	if r.Body["soft_logout"] != true {
		t.Errorf("M_USER_LOCKED without soft_logout: %s", r.Raw)
	}
	bob.MustErr(t, 401, "M_USER_LOCKED", "GET", "/_matrix/client/v3/sync", nil)
	root.Must(t, 200, "PUT", v1+"lock/"+url.PathEscape(bob.UserID), map[string]any{"locked": false})
	bob.Must(t, 200, "GET", "/_matrix/client/v3/account/whoami", nil)
	bob2, _ := Login(t, s, "bob", "bob password", nil)
	root.Must(t, 200, "PUT", v1+"lock/"+url.PathEscape(bob.UserID), map[string]any{"locked": true})
	bob2.Must(t, 200, "POST", "/_matrix/client/v3/logout", map[string]any{})
	root.Must(t, 200, "PUT", v1+"lock/"+url.PathEscape(bob.UserID), map[string]any{"locked": false})
	bob2.MustErr(t, 401, "M_UNKNOWN_TOKEN", "GET", "/_matrix/client/v3/account/whoami", nil)
	bob.Must(t, 200, "GET", "/_matrix/client/v3/account/whoami", nil)

	// Another administrator cannot be restricted.
	_, _, _ = runCLI(t, "other admin\n", "create-account", "--config", s.ConfigPath, "--username", "root2", "--admin")
	root.MustErr(t, 403, "M_FORBIDDEN", "PUT", v1+"lock/"+url.PathEscape("@root2:localhost"), map[string]any{"locked": true})
}

func testThreepids(t *testing.T, s *Server, alice *Client) {
	v3 := "/_matrix/client/v3"
	if r := alice.Must(t, 200, "GET", v3+"/account/3pid", nil); fmt.Sprint(r.Body["threepids"]) != "[]" {
		t.Errorf("3pids: %s", r.Raw)
	}
	anon := Anonymous(s)
	email := map[string]any{"client_secret": "secret", "email": "a@example.org", "send_attempt": 1}
	msisdn := map[string]any{"client_secret": "secret", "country": "GB", "phone_number": "07700900001", "send_attempt": 1}
	for _, p := range []string{"/account/3pid", "/register", "/account/password"} {
		anon.MustErr(t, 403, "M_THREEPID_DENIED", "POST", v3+p+"/email/requestToken", email)
		anon.MustErr(t, 403, "M_THREEPID_DENIED", "POST", v3+p+"/msisdn/requestToken", msisdn)
		anon.MustErr(t, 400, "M_MISSING_PARAM", "POST", v3+p+"/email/requestToken", map[string]any{"client_secret": "s"})
	}
	alice.MustErr(t, 403, "M_THREEPID_AUTH_FAILED", "POST", v3+"/account/3pid/add", map[string]any{"client_secret": "s", "sid": "1"})
	alice.MustErr(t, 400, "M_SERVER_NOT_TRUSTED", "POST", v3+"/account/3pid/bind",
		map[string]any{"client_secret": "s", "sid": "1", "id_server": "id.example.org", "id_access_token": "t"})
	for _, p := range []string{"/account/3pid/delete", "/account/3pid/unbind"} {
		if r := alice.Must(t, 200, "POST", v3+p, map[string]any{"medium": "email", "address": "a@example.org"}); r.Str("id_server_unbind_result") != "no-support" {
			t.Errorf("%s: %s", p, r.Raw)
		}
		alice.MustErr(t, 400, "M_MISSING_PARAM", "POST", v3+p, map[string]any{"medium": "email"})
	}
	caps := alice.Must(t, 200, "GET", v3+"/capabilities", nil)
	if !strings.Contains(string(caps.Raw), `"m.3pid_changes":{"enabled":false}`) {
		t.Errorf("capabilities: %s", caps.Raw)
	}
}

func testNoFeature(t *testing.T, s *Server, alice *Client) {
	v3, v1 := "/_matrix/client/v3", "/_matrix/client/v1"
	if r := alice.Must(t, 200, "GET", v3+"/thirdparty/protocols", nil); len(r.Body) != 0 {
		t.Errorf("protocols: %s", r.Raw)
	}
	for _, p := range []string{"/thirdparty/protocol/irc", "/thirdparty/location/irc", "/thirdparty/user/irc",
		"/thirdparty/location?alias=%23a%3Alocalhost", "/thirdparty/user?userid=%40a%3Alocalhost"} {
		alice.MustErr(t, 404, "M_NOT_FOUND", "GET", v3+p, nil)
	}
	alice.MustErr(t, 400, "M_MISSING_PARAM", "GET", v3+"/thirdparty/location", nil)
	alice.MustErr(t, 400, "M_FORBIDDEN", "POST", v1+"/login/get_token", map[string]any{})
	// A server without the OAuth 2.0 API answers auth_metadata with M_UNRECOGNIZED, as documented.
	Anonymous(s).MustErr(t, 404, "M_UNRECOGNIZED", "GET", v1+"/auth_metadata", nil)
	sup := Anonymous(s).Must(t, 200, "GET", "/.well-known/matrix/support", nil)
	if fmt.Sprint(sup.Body["contacts"]) != "[map[email_address:admin@example.org matrix_id:@admin:example.org role:m.role.admin]]" ||
		sup.Str("support_page") != "https://example.org/support" {
		t.Errorf("support: %s", sup.Raw)
	}
	Anonymous(s).MustErr(t, 404, "M_NOT_FOUND", "GET", "/.well-known/matrix/policy_server", nil)
	Anonymous(s).MustErr(t, 404, "M_NOT_FOUND", "GET", v3+"/login/sso/redirect?redirectUrl=https%3A%2F%2Fexample.org", nil)
	Anonymous(s).MustErr(t, 404, "M_NOT_FOUND", "GET", v3+"/login/sso/redirect/google?redirectUrl=https%3A%2F%2Fexample.org", nil)
	if f := Anonymous(s).Must(t, 200, "GET", v3+"/login", nil); strings.Contains(string(f.Raw), "m.login.sso") {
		t.Errorf("login flows offer SSO: %s", f.Raw)
	}
	alice.MustErr(t, 403, "M_FORBIDDEN", "POST", v1+"/appservice/bridge/ping", map[string]any{})
	alice.MustErr(t, 403, "M_FORBIDDEN", "PUT", v3+"/directory/list/appservice/irc/"+url.PathEscape("!r:localhost"), map[string]any{"visibility": "public"})
}

func testLegacySync(t *testing.T, alice, bob *Client, room, eventID string) {
	v3 := "/_matrix/client/v3"
	ev := alice.Must(t, 200, "GET", v3+"/events/"+url.PathEscape(eventID), nil)
	if ev.Str("event_id") != eventID || ev.Str("room_id") != room {
		t.Errorf("events/{eventId}: %s", ev.Raw)
	}
	alice.MustErr(t, 404, "M_NOT_FOUND", "GET", v3+"/events/"+url.PathEscape("$nope"), nil)

	ri := alice.Must(t, 200, "GET", roomPath(room, "/initialSync"), nil)
	msgs, _ := ri.Body["messages"].(map[string]any)
	chunk, _ := msgs["chunk"].([]any)
	if ri.Str("membership") != "join" || ri.Str("room_id") != room || len(chunk) == 0 || msgs["end"] == nil || ri.Body["state"] == nil {
		t.Fatalf("rooms/{roomId}/initialSync: %s", ri.Raw)
	}
	if !strings.Contains(string(ri.Raw), eventID) || !strings.Contains(string(ri.Raw), `"m.room.create"`) {
		t.Errorf("initialSync lacks the message or the state: %s", ri.Raw)
	}
	stranger := Register(t, &Server{ClientURL: alice.Base}, "stranger", "stranger password")
	privateRoom := alice.Must(t, 200, "POST", v3+"/createRoom", map[string]any{"preset": "private_chat"}).Str("room_id")
	stranger.MustErr(t, 403, "M_FORBIDDEN", "GET", roomPath(privateRoom, "/initialSync"), nil)

	is := alice.Must(t, 200, "GET", v3+"/initialSync?limit=5", nil)
	end := is.Str("end")
	if end == "" || !strings.Contains(string(is.Raw), room) {
		t.Fatalf("initialSync: %s", is.Raw)
	}
	// /events from the initialSync token sees the next message.
	done := make(chan Reply, 1)
	go func() { done <- alice.Do(t, "GET", v3+"/events?timeout=10000&from="+url.QueryEscape(end), nil) }()
	time.Sleep(200 * time.Millisecond)
	next := say(t, alice, room, "after initialSync")
	r := <-done
	if r.Status != 200 || !strings.Contains(string(r.Raw), next) || r.Str("start") != end || r.Str("end") == "" {
		t.Errorf("/events: %d %s", r.Status, r.Raw)
	}
	if r := alice.Must(t, 200, "GET", v3+"/events?timeout=0&from="+url.QueryEscape(r.Str("end")), nil); !strings.Contains(string(r.Raw), `"chunk":[]`) {
		t.Errorf("/events with nothing new: %s", r.Raw)
	}
	alice.MustErr(t, 400, "M_INVALID_PARAM", "GET", v3+"/events?from=garbage&timeout=0", nil)
}

func testProfileFields(t *testing.T, alice, bob *Client, room string) {
	profile := "/_matrix/client/v3/profile/" + url.PathEscape(alice.UserID)
	alice.Must(t, 200, "PUT", profile+"/m.tz", map[string]any{"m.tz": "Europe/London"})
	alice.Must(t, 200, "PUT", profile+"/org.example.pronouns", map[string]any{"org.example.pronouns": map[string]any{"en": "she/her"}})
	alice.Must(t, 200, "PUT", profile+"/displayname", map[string]any{"displayname": "Alice"})
	r := bob.Must(t, 200, "GET", profile, nil) // bob shares the room
	if r.Str("m.tz") != "Europe/London" || fmt.Sprint(r.Body["org.example.pronouns"]) != "map[en:she/her]" || r.Str("displayname") != "Alice" {
		t.Errorf("profile: %s", r.Raw)
	}
	if r := alice.Must(t, 200, "GET", profile+"/org.example.pronouns", nil); fmt.Sprint(r.Body) != "map[org.example.pronouns:map[en:she/her]]" {
		t.Errorf("profile field: %s", r.Raw)
	}
	alice.MustErr(t, 400, "M_INVALID_PARAM", "PUT", profile+"/m.tz", map[string]any{"m.tz": 5})
	alice.MustErr(t, 400, "M_INVALID_PARAM", "PUT", profile+"/Bad", map[string]any{"Bad": 1})
	alice.MustErr(t, 400, "M_MISSING_PARAM", "PUT", profile+"/org.example.x", map[string]any{"other": 1})
	long := "org.example." + strings.Repeat("k", 250)
	alice.MustErr(t, 400, "M_KEY_TOO_LARGE", "PUT", profile+"/"+long, map[string]any{long: 1})
	big := strings.Repeat("x", 65*1024)
	alice.MustErr(t, 400, "M_PROFILE_TOO_LARGE", "PUT", profile+"/org.example.big", map[string]any{"org.example.big": big})
	alice.MustErr(t, 404, "M_NOT_FOUND", "GET", profile+"/org.example.big", nil)
	bob.MustErr(t, 403, "M_FORBIDDEN", "PUT", profile+"/org.example.x", map[string]any{"org.example.x": 1})
	alice.Must(t, 200, "DELETE", profile+"/org.example.pronouns", nil)
	alice.Must(t, 200, "DELETE", profile+"/org.example.never", nil)
	alice.MustErr(t, 404, "M_NOT_FOUND", "GET", profile+"/org.example.pronouns", nil)
	caps := alice.Must(t, 200, "GET", "/_matrix/client/v3/capabilities", nil)
	if !strings.Contains(string(caps.Raw), `"m.profile_fields":{"enabled":true}`) {
		t.Errorf("capabilities: %s", caps.Raw)
	}
}

// specDocumentsUnrecognized are endpoints whose own definition documents 404 M_UNRECOGNIZED as
// the answer of a server without the feature.
var specDocumentsUnrecognized = map[string]string{
	"GET /_matrix/client/v1/auth_metadata": "oauth_server_metadata.yaml: a server without the OAuth 2.0 API answers 404 M_UNRECOGNIZED",
}

// TestEveryClientServerEndpointIsRecognised calls every path and method of every Client-Server
// definition in the spec, with plausible parameters and a valid access token, and fails on any
// 404/405 M_UNRECOGNIZED the spec does not itself document.
func TestEveryClientServerEndpointIsRecognised(t *testing.T) {
	dir := filepath.Join("..", "..", "shared", "spec", "data", "api", "client-server")
	if _, err := os.Stat(dir); err != nil {
		dir = "/work/shared/spec/data/api/client-server"
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Skipf("no spec definitions found in %s", dir)
	}
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		me := Register(t, s, "walker", "walker password")
		room := me.Must(t, 200, "POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": "public_chat"}).Str("room_id")
		eventID := say(t, me, room, "walk")
		// With no TURN server configured, the answer is {} (voip.go).
		if r := me.Must(t, 200, "GET", "/_matrix/client/v3/voip/turnServer", nil); len(r.Body) != 0 {
			t.Errorf("turnServer without TURN: %s", r.Raw)
		}
		vals := map[string]string{
			"userId": me.UserID, "roomId": room, "roomIdOrAlias": room, "eventId": eventID,
			"roomAlias": "#walk:localhost", "eventType": "m.room.message", "stateKey": "", "type": "org.example.walk",
			"tag": "u.walk", "deviceId": "WALKDEVICE", "keyName": "displayname", "filterId": "0", "txnId": "walk",
			"kind": "override", "ruleId": "org.example.walk", "version": "1", "sessionId": "s", "protocol": "irc",
			"receiptType": "m.read", "idpId": "none", "appserviceId": "none", "networkId": "irc",
			"serverName": "localhost", "mediaId": "nothing", "fileName": "f.txt", "action": "enabled",
		}
		query := map[string]string{
			"version": "1", "redirectUrl": "https://example.org/", "width": "32", "height": "32", "url": "https://example.org/",
			"from": "s0", "to": "s1", "dir": "b", "user_id": "@other:localhost", "room_id": room, "username": "walker2",
			"token": "nothing", "ts": "0", "alias": "#a:localhost", "userid": "@a:localhost",
		}
		type call struct{ file, method, path, spec string }
		var calls, last []call
		n := 0
		for _, f := range files {
			var doc struct {
				Servers []struct {
					Variables map[string]struct {
						Default string `yaml:"default"`
					} `yaml:"variables"`
				} `yaml:"servers"`
				Paths map[string]map[string]yaml.Node `yaml:"paths"`
			}
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal(raw, &doc); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			base := ""
			if len(doc.Servers) > 0 {
				base = doc.Servers[0].Variables["basePath"].Default
			}
			for p, methods := range doc.Paths {
				for m, node := range methods {
					var op struct {
						Parameters []struct {
							Name     string `yaml:"name"`
							In       string `yaml:"in"`
							Required bool   `yaml:"required"`
						} `yaml:"parameters"`
					}
					if node.Kind != yaml.MappingNode || node.Decode(&op) != nil {
						continue
					}
					p := strings.TrimSpace(p) // peeking_events.yaml spells "/events " with a space
					path := p
					for name, v := range vals {
						path = strings.ReplaceAll(path, "{"+name+"}", url.PathEscape(v))
					}
					q := url.Values{}
					for _, prm := range op.Parameters {
						if prm.In == "query" && prm.Required {
							q.Set(prm.Name, query[prm.Name])
						}
					}
					if base+p == "/_matrix/client/v3/events" || base+p == "/_matrix/client/v3/sync" {
						q.Set("timeout", "0")
					}
					full := base + path
					if len(q) > 0 {
						full += "?" + q.Encode()
					}
					n++
					c := call{filepath.Base(f), strings.ToUpper(m), full, strings.ToUpper(m) + " " + base + p}
					// Logging out would end the walk's session: those go last.
					if strings.HasPrefix(base+p, "/_matrix/client/v3/logout") {
						last = append(last, c)
					} else {
						calls = append(calls, c)
					}
				}
			}
		}
		sort.Slice(calls, func(i, j int) bool { return calls[i].spec < calls[j].spec })
		sort.Slice(last, func(i, j int) bool { return last[i].spec < last[j].spec })
		for _, c := range append(calls, last...) {
			var body any
			if c.method == http.MethodPost || c.method == http.MethodPut {
				body = map[string]any{}
			}
			status, errcode := walkCall(t, me, c.method, c.path, body)
			unrecognized := (status == 404 || status == 405) && errcode == "M_UNRECOGNIZED"
			if unrecognized && specDocumentsUnrecognized[c.spec] == "" {
				t.Errorf("%s (%s): %d M_UNRECOGNIZED", c.spec, c.file, status)
			}
		}
		if n < 150 {
			t.Errorf("walked only %d endpoints: the definitions were not read", n)
		}
	})
}

// walkCall makes one request of the walk: unlike Client.Do it accepts any response body (arrays,
// media), and reports the status and the errcode if the body is a Matrix error.
func walkCall(t *testing.T, c *Client, method, path string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.Base+path, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var e struct {
		Code string `json:"errcode"`
	}
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &e)
	return resp.StatusCode, e.Code
}
