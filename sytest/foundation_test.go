package sytest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"myelin/keys"
)

// TestStartWithNoConfig is the README's promise: in an empty directory, a bare `myelin` writes a
// default config, listens on the default ports, and serves a valid signed key document.
func TestStartWithNoConfig(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:8008", "127.0.0.1:8448"} {
		if l, err := net.Listen("tcp", addr); err != nil {
			t.Skipf("default port %s is in use on this machine, cannot test the zero-config start: %v", addr, err)
		} else {
			l.Close()
		}
	}
	dir := t.TempDir()
	var logs syncBuffer
	cmd := exec.Command(Binary(t))
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	}()
	if err := waitUntilUp("http://127.0.0.1:8008/_matrix/client/versions", exited, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "myelin.yaml")); err != nil {
		t.Errorf("default config not written: %v", err)
	}
	for _, f := range []string{"signing.key", "federation.key"} {
		fi, err := os.Stat(filepath.Join(dir, "myelin-data", f))
		if err != nil {
			t.Fatalf("%s not created: %v", f, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
		}
	}

	var versions struct {
		Versions []string `json:"versions"`
	}
	getJSON(t, http.DefaultClient, "http://127.0.0.1:8008/_matrix/client/versions", 200, &versions)
	if versions.Versions == nil {
		t.Error("versions is missing or null")
	}

	// Trust the generated self-signed certificate, as an operator pinning it would.
	pemBytes, err := os.ReadFile(filepath.Join(dir, "myelin-data", "federation.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	checkKeyDocument(t, client, "https://127.0.0.1:8448", "localhost")
}

// checkKeyDocument fetches /_matrix/key/v2/server and verifies its self-signature.
func checkKeyDocument(t *testing.T, client *http.Client, base, serverName string) {
	t.Helper()
	resp, err := client.Get(base + "/_matrix/key/v2/server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("key document: status %d: %s", resp.StatusCode, body)
	}
	var doc struct {
		ServerName    string                       `json:"server_name"`
		VerifyKeys    map[string]map[string]string `json:"verify_keys"`
		OldVerifyKeys map[string]any               `json:"old_verify_keys"`
		ValidUntilTS  int64                        `json:"valid_until_ts"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.ServerName != serverName {
		t.Errorf("server_name %q, want %q", doc.ServerName, serverName)
	}
	if doc.OldVerifyKeys == nil {
		t.Error("old_verify_keys missing")
	}
	if doc.ValidUntilTS <= time.Now().UnixMilli() {
		t.Errorf("valid_until_ts %d is not in the future", doc.ValidUntilTS)
	}
	if len(doc.VerifyKeys) != 1 {
		t.Fatalf("want one verify key, got %v", doc.VerifyKeys)
	}
	for keyID, k := range doc.VerifyKeys {
		pub, err := keys.DecodeBase64(k["key"])
		if err != nil || len(pub) != ed25519.PublicKeySize {
			t.Fatalf("bad public key %q: %v", k["key"], err)
		}
		if err := keys.VerifyJSON(serverName, keyID, ed25519.PublicKey(pub), body); err != nil {
			t.Errorf("key document self-signature does not verify: %v", err)
		}
	}
}

func getJSON(t *testing.T, client *http.Client, url string, wantStatus int, into any) http.Header {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("GET %s: status %d, want %d: %s", url, resp.StatusCode, wantStatus, body)
	}
	if into != nil {
		if err := json.Unmarshal(body, into); err != nil {
			t.Fatalf("GET %s: %v: %s", url, err, body)
		}
	}
	return resp.Header
}

func TestBadConfigExitsNamingTheKey(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "myelin.yaml")
	if err := os.WriteFile(cfg, []byte("server_name: example.org\nregistraton:\n  enabled: true\nlog:\n  level: loud\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(Binary(t), "serve", "--config", cfg)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if code := cmd.ProcessState.ExitCode(); err == nil || code == 0 {
		t.Fatalf("bad config: exit code %d, want non-zero; output:\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), `unknown key "registraton"`) || !strings.Contains(out.String(), "line 2") {
		t.Errorf("message does not name the bad key and its line:\n%s", out.String())
	}
}

func TestFederationTLSWithTestCA(t *testing.T) {
	ca := NewCA(t)
	s := Start(t, Options{ServerName: "hs1.test", CA: ca})
	client := FederationClient(ca)
	// The certificate is for hs1.test; dial the loopback port while verifying that name.
	client.Transport.(*http.Transport).TLSClientConfig.ServerName = "hs1.test"
	checkKeyDocument(t, client, s.FederationURL, "hs1.test")

	var v struct {
		Server struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"server"`
	}
	getJSON(t, client, s.FederationURL+"/_matrix/federation/v1/version", 200, &v)
	if v.Server.Name != "Myelin" {
		t.Errorf("server name %q", v.Server.Name)
	}

	// A client that does not trust the test CA must refuse the connection: verification is real.
	if _, err := FederationClient(nil).Get(s.FederationURL + "/_matrix/key/v2/server"); err == nil {
		t.Error("an untrusted certificate was accepted")
	}
}

func TestClientEnvelope(t *testing.T) {
	s := Start(t, Options{Config: map[string]any{
		"client":     map[string]any{"public_base_url": "https://matrix.example.org"},
		"federation": map[string]any{"well_known_server": "matrix.example.org:443"},
	}})
	cases := []struct {
		method, path string
		body         string
		status       int
		errcode      string
	}{
		{"GET", "/_matrix/client/v3/no/such/endpoint", "", 404, "M_UNRECOGNIZED"},
		{"POST", "/_matrix/client/versions", "{}", 405, "M_UNRECOGNIZED"},
		{"GET", "/nothing", "", 404, "M_UNRECOGNIZED"},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, s.ClientURL+c.path, strings.NewReader(c.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Errcode string `json:"errcode"`
			Error   string `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != c.status || e.Errcode != c.errcode || e.Error == "" {
			t.Errorf("%s %s: got %d %q %q, want %d %s", c.method, c.path, resp.StatusCode, e.Errcode, e.Error, c.status, c.errcode)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s %s: no CORS header", c.method, c.path)
		}
		if resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("%s %s: no request id", c.method, c.path)
		}
	}

	// Preflight: every endpoint answers OPTIONS with the CORS headers and without running.
	req, _ := http.NewRequest(http.MethodOptions, s.ClientURL+"/_matrix/client/v3/rooms/!r:x/send/m.room.message/1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != 200 || h.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "PUT") ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight: %d %v", resp.StatusCode, h)
	}

	var wk struct {
		Homeserver struct {
			BaseURL string `json:"base_url"`
		} `json:"m.homeserver"`
	}
	getJSON(t, http.DefaultClient, s.ClientURL+"/.well-known/matrix/client", 200, &wk)
	if wk.Homeserver.BaseURL != "https://matrix.example.org" {
		t.Errorf("well-known client: %+v", wk)
	}
	var wks map[string]string
	getJSON(t, http.DefaultClient, s.ClientURL+"/.well-known/matrix/server", 200, &wks)
	if wks["m.server"] != "matrix.example.org:443" {
		t.Errorf("well-known server: %v", wks)
	}
}

func TestWellKnownAbsentWhenNotConfigured(t *testing.T) {
	s := Start(t, Options{})
	for _, p := range []string{"/.well-known/matrix/client", "/.well-known/matrix/server"} {
		var e map[string]string
		getJSON(t, http.DefaultClient, s.ClientURL+p, 404, &e)
		if e["errcode"] != "M_NOT_FOUND" {
			t.Errorf("%s: %v", p, e)
		}
	}
}

func TestGracefulShutdown(t *testing.T) {
	s := Start(t, Options{})
	s.Stop()
	if code := s.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGINT, want 0; logs:\n%s", code, s.Logs())
	}
	if !strings.Contains(s.Logs(), "stopped") {
		t.Errorf("no clean stop in the logs:\n%s", s.Logs())
	}
	// The data survives: the same signing key is used after a restart.
	before, _ := os.ReadFile(filepath.Join(s.DataDir, "signing.key"))
	s.Restart(t)
	after, _ := os.ReadFile(filepath.Join(s.DataDir, "signing.key"))
	if !bytes.Equal(before, after) || len(before) == 0 {
		t.Error("signing key changed across a restart")
	}
}
