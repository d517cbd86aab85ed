package sytest

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"myelin/config"
	"myelin/keys"
)

func runCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(Binary(t), args...)
	cmd.Dir = t.TempDir()
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	_ = cmd.Run()
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

func TestCLIUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"frobnicate"},
		{"serve", "--no-such-flag"},
		{"generate-keys"},
		{"generate-config", "stray"},
		{"version", "--x"},
	} {
		_, stderr, code := runCLI(t, "", args...)
		if code != 2 {
			t.Errorf("myelin %v: exit %d, want 2", args, code)
		}
		if !strings.Contains(stderr, "usage") && !strings.Contains(stderr, "Usage") {
			t.Errorf("myelin %v: no usage printed: %q", args, stderr)
		}
	}
}

func TestCLIVersion(t *testing.T) {
	out, _, code := runCLI(t, "", "version")
	if code != 0 || !strings.HasPrefix(out, "myelin ") {
		t.Errorf("version: %d %q", code, out)
	}
}

func TestCLIGenerateConfig(t *testing.T) {
	out, stderr, code := runCLI(t, "", "generate-config", "--server-name", "example.org",
		"--data-dir", "/srv/myelin", "--client-listen", "127.0.0.1:9008",
		"--federation-listen", "127.0.0.1:9448", "--database", "postgres://myelin@localhost/myelin")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	cfg, err := config.Parse("stdout", []byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "example.org" || cfg.DataDir != "/srv/myelin" || cfg.Client.Listen != "127.0.0.1:9008" ||
		cfg.Federation.Listen != "127.0.0.1:9448" || cfg.Database.URL != "postgres://myelin@localhost/myelin" {
		t.Errorf("flags not applied: %+v", cfg)
	}
	if !strings.Contains(out, "#") {
		t.Error("generated config has no comments")
	}
	if _, _, code := runCLI(t, "", "generate-config", "--server-name", "bad name"); code == 0 {
		t.Error("an invalid server name was accepted")
	}
}

func TestCLIGenerateKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signing.key")
	if _, stderr, code := runCLI(t, "", "generate-keys", "--out", path); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if f := strings.Fields(string(data)); len(f) != 3 || f[0] != "ed25519" {
		t.Errorf("not in the Synapse format: %q", data)
	}
	if _, err := keys.LoadSigningKey(path); err != nil {
		t.Errorf("written key does not load: %v", err)
	}
	// Never overwrite an existing key: that would orphan every event signed with it.
	if _, _, code := runCLI(t, "", "generate-keys", "--out", path); code == 0 {
		t.Error("an existing key file was overwritten")
	}
}

// TestCreateRegistrationTokenCommand: a token printed by `myelin create-registration-token`
// lets exactly the allowed number of people register on a server that requires one.
func TestCreateRegistrationTokenCommand(t *testing.T) {
	s := Start(t, Options{Config: map[string]any{"registration": map[string]any{"require_token": true}}})
	out, stderr, code := runCLI(t, "", "create-registration-token", "--config", s.ConfigPath, "--uses", "1")
	if code != 0 {
		t.Fatalf("create-registration-token: exit %d: %s", code, stderr)
	}
	token := strings.TrimSpace(out)
	if len(token) == 0 || len(token) > 64 || strings.Trim(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-") != "" {
		t.Fatalf("token %q is outside the spec's alphabet or length", token)
	}
	anon := Anonymous(s)
	validity := "/_matrix/client/v1/register/m.login.registration_token/validity?token=" + token
	if r := anon.Must(t, 200, "GET", validity, nil); r.Body["valid"] != true {
		t.Fatalf("new token not valid: %s", r.Raw)
	}
	if _, _, code := runCLI(t, "", "create-registration-token", "--config", s.ConfigPath, "--uses", "-1"); code != 2 {
		t.Errorf("negative uses: exit %d, want 2", code)
	}
}

// TestRotateKey: after `myelin rotate-key` and a restart, the key document signs with a new key
// and lists the retired one in old_verify_keys with its expiry, so old events still verify.
func TestRotateKey(t *testing.T) {
	ca := NewCA(t)
	s := Start(t, Options{ServerName: "hs1.test", CA: ca})
	client := FederationClient(ca)
	client.Transport.(*http.Transport).TLSClientConfig.ServerName = "hs1.test"
	before := keyDocument(t, client, s.FederationURL)
	s.Stop()
	if _, stderr, code := runCLI(t, "", "rotate-key", "--config", s.ConfigPath); code != 0 {
		t.Fatalf("rotate-key: exit %d: %s", code, stderr)
	}
	s.Restart(t)
	checkKeyDocument(t, client, s.FederationURL, "hs1.test")
	after := keyDocument(t, client, s.FederationURL)
	for oldID, k := range before.VerifyKeys {
		if _, still := after.VerifyKeys[oldID]; still {
			t.Errorf("retired key %s is still a current key", oldID)
		}
		retired, ok := after.OldVerifyKeys[oldID]
		if !ok || retired.Key != k.Key || retired.ExpiredTS == 0 {
			t.Errorf("old_verify_keys %+v lacks %s with its expiry", after.OldVerifyKeys, oldID)
		}
	}
}

type keyDoc struct {
	VerifyKeys map[string]struct {
		Key string `json:"key"`
	} `json:"verify_keys"`
	OldVerifyKeys map[string]struct {
		Key       string `json:"key"`
		ExpiredTS int64  `json:"expired_ts"`
	} `json:"old_verify_keys"`
}

func keyDocument(t *testing.T, client *http.Client, base string) keyDoc {
	t.Helper()
	var d keyDoc
	getJSON(t, client, base+"/_matrix/key/v2/server", 200, &d)
	return d
}
