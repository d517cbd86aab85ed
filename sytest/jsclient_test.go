package sytest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"
)

// Element Web and Desktop are built on matrix-js-sdk; this test runs that library, unchanged and
// installed from the npm registry at the versions pinned in jsclient/package-lock.json, against a
// real server. jsclient/scenario.mjs does what Element does (open registration, startClient with
// an initial sync limit, invites joined from the sync, messages both ways, an edit, a reaction, a
// thread, notification counts and read receipts, typing, end-to-end encryption with the rust
// crypto, a reload, a leave) and checks each step in the SDK's own model.
//
// It needs node (20 or later) and npm on PATH and skips without them, or when npm cannot reach
// the registry. npm ci runs once per test run (about 4 seconds with a warm npm cache), the
// scenario 3 to 13 seconds per backend, most of it the random delay of up to 10 seconds the SDK
// waits before its first key backup upload:
//
//	go test ./sytest -run TestJSClient -count=1 -v

// jsScenarioTimeout bounds one run of the scenario, node's start included; the scenario's own
// deadline (MYELIN_TIMEOUT_MS) is shorter so that it reports which step hung.
const jsScenarioTimeout = 80 * time.Second

var (
	jsInstallOnce sync.Once
	jsInstallSkip string // why the test skips, when npm could not reach the registry
	jsInstallErr  error
)

// npmOffline matches npm's report of a registry it could not reach (DNS, refused or reset
// connections, timeouts, TLS interception), as opposed to a broken lock file or package.
var npmOffline = regexp.MustCompile(`(?m)^npm (?:ERR!|error) (?:code (?:ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|ERR_SOCKET_TIMEOUT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\b|network )`)

// jsClientDir installs the pinned packages into sytest/jsclient once per test run and returns
// that directory.
func jsClientDir(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("matrix-js-sdk test needs %s on PATH: %v", tool, err)
		}
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "sytest", "jsclient")
	jsInstallOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		started := time.Now()
		out, err := cmd.CombinedOutput()
		switch {
		case err == nil:
			t.Logf("npm ci took %s", time.Since(started).Round(time.Millisecond))
		case npmOffline.Match(out):
			jsInstallSkip = "npm cannot reach the registry:\n" + string(out)
		default:
			jsInstallErr = errors.New("npm ci in sytest/jsclient: " + err.Error() + "\n" + string(out))
		}
	})
	if jsInstallSkip != "" {
		t.Skip(jsInstallSkip)
	}
	if jsInstallErr != nil {
		t.Fatal(jsInstallErr)
	}
	return dir
}

// jsScenarioResult is what scenario.mjs prints on success.
type jsScenarioResult struct {
	OK    bool     `json:"ok"`
	SDK   string   `json:"sdk"`
	E2E   string   `json:"e2e"`
	Users []string `json:"users"`
	Steps []struct {
		Name string `json:"name"`
		MS   int    `json:"ms"`
	} `json:"steps"`
	Waits []struct {
		Name string `json:"name"`
		MS   int    `json:"ms"`
	} `json:"waits"`
	MS int `json:"ms"`
}

func TestJSClient(t *testing.T) {
	dir := jsClientDir(t)
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		hs := Start(t, Options{DatabaseURL: dbURL})
		ctx, cancel := context.WithTimeout(context.Background(), jsScenarioTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "node", "scenario.mjs", hs.ClientURL)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "MYELIN_TIMEOUT_MS=70000", "MYELIN_USER_PREFIX=js")
		cmd.WaitDelay = 5 * time.Second
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("matrix-js-sdk scenario: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
		}
		var res jsScenarioResult
		if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
			t.Fatalf("matrix-js-sdk scenario printed no result: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
		}
		if !res.OK || res.E2E != "ok" || len(res.Users) != 2 {
			t.Fatalf("matrix-js-sdk scenario did not complete (ok=%v, e2e=%q): %s", res.OK, res.E2E, stdout.String())
		}
		t.Logf("%s: scenario passed in %d ms", res.SDK, res.MS)
		for _, s := range res.Steps {
			t.Logf("  %-70s %5d ms", s.Name, s.MS)
		}
		for _, w := range res.Waits {
			t.Logf("  waited %5d ms for %s", w.MS, w.Name)
		}
	})
}
