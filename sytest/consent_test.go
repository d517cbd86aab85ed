package sytest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// consentConfig is consent.policies with a privacy policy of the given version and fixed terms.
func consentConfig(privacyVersion string) map[string]any {
	return map[string]any{"consent": map[string]any{"policies": []any{
		map[string]any{"id": "privacy_policy", "version": privacyVersion, "languages": map[string]any{
			"en": map[string]any{"name": "Privacy Policy", "url": "https://example.org/privacy-" + privacyVersion + "-en.html"},
			"fr": map[string]any{"name": "Politique de confidentialité", "url": "https://example.org/privacy-" + privacyVersion + "-fr.html"},
		}},
		map[string]any{"id": "terms_of_service", "version": "2", "languages": map[string]any{
			"en": map[string]any{"name": "Terms of Service", "url": "https://example.org/tos-2.html"},
		}},
	}}}
}

// registerAccepting registers through the m.login.terms stage and returns the client.
func registerAccepting(t *testing.T, s *Server, username, password string) *Client {
	t.Helper()
	c := Anonymous(s)
	body := map[string]any{"username": username, "password": password}
	first := c.Must(t, 401, "POST", v3+"/register", body)
	body["auth"] = map[string]any{"type": "m.login.terms", "session": first.Str("session")}
	r := c.Must(t, 200, "POST", v3+"/register", body)
	return &Client{Base: s.ClientURL, Token: r.Str("access_token"), UserID: r.Str("user_id"), DeviceID: r.Str("device_id")}
}

// consentLines runs `myelin consent --json` with extra flags and returns its lines by user id.
func consentLines(t *testing.T, s *Server, extra ...string) map[string]map[string]any {
	t.Helper()
	out, stderr, code := runCLI(t, "", append([]string{"consent", "--config", s.ConfigPath, "--json"}, extra...)...)
	if code != 0 {
		t.Fatalf("myelin consent: exit %d: %s", code, stderr)
	}
	users := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var u map[string]any
		if err := json.Unmarshal([]byte(line), &u); err != nil {
			t.Fatalf("myelin consent --json: %v: %q", err, out)
		}
		users[u["user_id"].(string)] = u
	}
	return users
}

// acceptedVersions returns the "policy version" pairs of one line of `myelin consent --json`.
func acceptedVersions(u map[string]any) []string {
	out := []string{}
	list, _ := u["accepted"].([]any)
	for _, a := range list {
		m := a.(map[string]any)
		if ts, _ := m["accepted_ts"].(float64); ts <= 0 || m["accepted"] == "" {
			return append(out, "no time")
		}
		out = append(out, m["policy"].(string)+" "+m["version"].(string))
	}
	return out
}

// TestConsentAtRegistration: with policies configured, registration asks for m.login.terms
// with the policies in params; skipping the stage creates no account; accepting registers and
// records the versions, which `myelin consent` and the user's export show. A new version
// leaves existing users in, listed as not having accepted it. Deactivation keeps the record;
// erasure deletes it.
func TestConsentAtRegistration(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL, Config: consentConfig("1.0")})
		anon := Anonymous(s)
		body := map[string]any{"username": "alice", "password": "alice password 1"}
		first := anon.Must(t, 401, "POST", v3+"/register", body)
		if flows, _ := first.Body["flows"].([]any); len(flows) != 1 || !hasFlow(first, "m.login.terms") {
			t.Fatalf("flows: %s", first.Raw)
		}
		var params struct {
			Terms struct {
				Policies map[string]map[string]any `json:"policies"`
			} `json:"m.login.terms"`
		}
		raw, _ := json.Marshal(first.Body["params"])
		mustUnmarshal(t, raw, &params)
		wantPolicies := map[string]map[string]any{
			"privacy_policy": {"version": "1.0",
				"en": map[string]any{"name": "Privacy Policy", "url": "https://example.org/privacy-1.0-en.html"},
				"fr": map[string]any{"name": "Politique de confidentialité", "url": "https://example.org/privacy-1.0-fr.html"}},
			"terms_of_service": {"version": "2", "en": map[string]any{"name": "Terms of Service", "url": "https://example.org/tos-2.html"}},
		}
		if !reflect.DeepEqual(params.Terms.Policies, wantPolicies) {
			t.Errorf("m.login.terms params: %s", raw)
		}

		// Skipping the stage: the session alone, or the dummy stage, registers nobody.
		session := first.Str("session")
		body["auth"] = map[string]any{"session": session}
		if r := anon.Do(t, "POST", v3+"/register", body); r.Status != 401 || r.Body["completed"] != nil || r.Str("session") != session {
			t.Errorf("register without accepting: %d %s", r.Status, r.Raw)
		}
		body["auth"] = map[string]any{"type": "m.login.dummy", "session": session}
		anon.MustErr(t, 401, "M_UNRECOGNIZED", "POST", v3+"/register", body)
		if r := anon.Must(t, 200, "GET", v3+"/register/available?username=alice", nil); r.Body["available"] != true {
			t.Fatalf("an account exists before the policies were accepted: %s", r.Raw)
		}

		body["auth"] = map[string]any{"type": "m.login.terms", "session": session}
		if r := anon.Must(t, 200, "POST", v3+"/register", body); r.Str("user_id") != "@alice:localhost" || r.Str("access_token") == "" {
			t.Fatalf("register after accepting: %s", r.Raw)
		}
		carol := registerAccepting(t, s, "carol", "carol password 1")
		if _, stderr, code := runCLI(t, "bob password 1\n", "create-account", "--config", s.ConfigPath, "--username", "bob"); code != 0 {
			t.Fatalf("create-account: %s", stderr)
		}

		users := consentLines(t, s)
		both := []string{"privacy_policy 1.0", "terms_of_service 2"}
		if u := users["@alice:localhost"]; !reflect.DeepEqual(acceptedVersions(u), both) || len(u["missing"].([]any)) != 0 {
			t.Errorf("alice: %v", u)
		}
		// An account the operator made accepted nothing, and is listed as such.
		if u := users["@bob:localhost"]; len(acceptedVersions(u)) != 0 || !reflect.DeepEqual(u["missing"], []any{"privacy_policy", "terms_of_service"}) {
			t.Errorf("bob: %v", u)
		}

		// The operator publishes version 2.0 of the privacy policy.
		setConsentConfig(t, s, consentConfig("2.0"))
		s.Restart(t)
		Login(t, s, "alice", "alice password 1", nil) // not locked out
		dave := registerAccepting(t, s, "dave", "dave password 1")
		users = consentLines(t, s, "--policy", "privacy_policy")
		if u := users["@alice:localhost"]; !reflect.DeepEqual(acceptedVersions(u), []string{"privacy_policy 1.0"}) ||
			!reflect.DeepEqual(u["missing"], []any{"privacy_policy"}) {
			t.Errorf("alice after a new version: %v", u)
		}
		if u := users[dave.UserID]; !reflect.DeepEqual(acceptedVersions(u), []string{"privacy_policy 2.0"}) || len(u["missing"].([]any)) != 0 {
			t.Errorf("dave, who accepted the new version: %v", u)
		}
		table, stderr, code := runCLI(t, "", "consent", "--config", s.ConfigPath, "--policy", "privacy_policy")
		if code != 0 || !strings.Contains(table, "privacy_policy 2.0: 3 of 4 active accounts have not accepted it") {
			t.Errorf("myelin consent table: exit %d: %s%s", code, table, stderr)
		}

		// The export shows alice what she accepted.
		out := filepath.Join(t.TempDir(), "alice")
		if _, stderr, code := runCLI(t, "", "export-user", "--config", s.ConfigPath, "--user", "@alice:localhost", "--out", out+"/"); code != 0 {
			t.Fatalf("export-user: %s", stderr)
		}
		data, err := os.ReadFile(filepath.Join(out, "account.json"))
		if err != nil {
			t.Fatal(err)
		}
		var account struct {
			Consent []struct {
				Policy     string `json:"policy"`
				Version    string `json:"version"`
				AcceptedTS int64  `json:"accepted_ts"`
			} `json:"consent"`
		}
		mustUnmarshal(t, data, &account)
		if len(account.Consent) != 2 || account.Consent[0].Policy != "privacy_policy" || account.Consent[0].Version != "1.0" ||
			account.Consent[0].AcceptedTS <= 0 || account.Consent[1].Version != "2" {
			t.Errorf("account.json consent: %s", data)
		}

		// Deactivation keeps the record of consent; erasure deletes it.
		withPassword(t, carol, "POST", v3+"/account/deactivate", map[string]any{}, "carol password 1")
		alice, _ := Login(t, s, "alice", "alice password 1", nil)
		withPassword(t, alice, "POST", v3+"/account/deactivate", map[string]any{"erase": true}, "alice password 1")
		users = consentLines(t, s)
		if u := users[carol.UserID]; u["deactivated"] != true || !reflect.DeepEqual(acceptedVersions(u), both) {
			t.Errorf("carol after deactivation: %v", u)
		}
		if u := users["@alice:localhost"]; u["deactivated"] != true || len(acceptedVersions(u)) != 0 {
			t.Errorf("alice after erasure: %v", u)
		}
	})
}

// setConsentConfig rewrites the running server's configuration file with other policies.
func setConsentConfig(t *testing.T, s *Server, consent map[string]any) {
	t.Helper()
	data, err := os.ReadFile(s.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["consent"] = consent["consent"]
	if data, err = yaml.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.ConfigPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRegistrationWithoutPolicies: with no policies (the default) registration is the dummy
// stage, nothing about terms is presented, and nothing is recorded.
func TestRegistrationWithoutPolicies(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		first := Anonymous(s).Must(t, 401, "POST", v3+"/register", map[string]any{})
		if flows, _ := first.Body["flows"].([]any); len(flows) != 1 || !hasFlow(first, "m.login.dummy") {
			t.Errorf("flows: %s", first.Raw)
		}
		if params, _ := first.Body["params"].(map[string]any); params == nil || params["m.login.terms"] != nil {
			t.Errorf("params: %s", first.Raw)
		}
		erin := Register(t, s, "erin", "erin password 1")
		if u := consentLines(t, s)[erin.UserID]; u == nil || len(acceptedVersions(u)) != 0 || len(u["missing"].([]any)) != 0 {
			t.Errorf("erin: %v", u)
		}
	})
}
