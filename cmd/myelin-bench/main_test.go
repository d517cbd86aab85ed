package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"myelin/cmd/myelin-bench/internal/bench"
	"myelin/sytest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	sytest.Cleanup()
	os.Exit(code)
}

// tinyArgs are sizes small enough for a test; the assertions never look at a time, only that
// every scenario measured something.
var tinyArgs = []string{
	"--messages", "5", "--users", "3", "--rooms", "2", "--members", "3", "--rounds", "2",
	"--concurrency", "2", "--one-time-keys", "3", "--settle", "20ms",
}

// runBench runs the command in-process. sytest does not expose the server's PID, so --pid samples
// the test process itself: enough to check that memory is sampled and reported.
func runBench(t *testing.T, args ...string) bench.Report {
	t.Helper()
	out := filepath.Join(t.TempDir(), "result.json")
	err := run(append(append(args, tinyArgs...), "--json", out, "--pid", strconv.Itoa(os.Getpid())))
	raw, readErr := os.ReadFile(out)
	if readErr != nil {
		t.Fatalf("run: %v; no JSON written: %v", err, readErr)
	}
	var rep bench.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("JSON result: %v", err)
	}
	if err != nil {
		for _, r := range rep.Results {
			if r.Error != "" {
				t.Errorf("scenario %s failed: %s", r.Scenario, r.Error)
			}
		}
		t.Fatalf("run: %v", err)
	}
	return rep
}

func checkResult(t *testing.T, r bench.Result) {
	t.Helper()
	if !r.OK || r.Error != "" {
		t.Errorf("%s: ok=%v error=%q", r.Scenario, r.OK, r.Error)
	}
	if r.RateLimited != 0 {
		t.Errorf("%s: rate limited %d times with rate limiting off", r.Scenario, r.RateLimited)
	}
	if len(r.Metrics) == 0 {
		t.Errorf("%s: no metrics", r.Scenario)
	}
	for _, m := range r.Metrics {
		if m.Count == 0 || m.P50MS <= 0 || m.P99MS < m.P50MS || m.MaxMS < m.P99MS || m.MinMS > m.P50MS {
			t.Errorf("%s: implausible metric %+v", r.Scenario, m)
		}
		if (strings.HasPrefix(m.Name, "send/") || m.Name == "e2ee-keys/claim") && m.Throughput <= 0 {
			t.Errorf("%s: no throughput", m.Name)
		}
	}
	if r.PeakRSSKB <= 0 {
		t.Errorf("%s: no memory sample", r.Scenario)
	}
}

// TestEveryScenarioAgainstMyelin starts a real Myelin (registration open, rate limits off) and
// runs every scenario with tiny sizes.
func TestEveryScenarioAgainstMyelin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	hs := sytest.Start(t, sytest.Options{Config: map[string]any{"log": map[string]any{"level": "warn"}}})
	rep := runBench(t, "--hs", hs.ClientURL, "--scenario", "all")
	want := map[string]bool{}
	for _, s := range bench.Scenarios() {
		want[s.Name] = true
	}
	for _, r := range rep.Results {
		delete(want, r.Scenario)
		if r.Scenario == "federation" {
			if !r.Skipped {
				t.Errorf("federation without --hs2 should be skipped: %+v", r)
			}
			continue
		}
		checkResult(t, r)
	}
	if len(want) > 0 {
		t.Errorf("scenarios missing from the result: %v", want)
	}
	if rep.Memory == nil || rep.Memory.PeakKB <= 0 {
		t.Errorf("no memory summary: %+v", rep.Memory)
	}
}

// TestFederationScenario runs the federation scenario between two Myelin servers under the
// test CA.
func TestFederationScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two servers")
	}
	ca := sytest.NewCA(t)
	quiet := map[string]any{"level": "warn"}
	hs1 := sytest.Start(t, sytest.Options{ServerName: "hs1.test", CA: ca, Config: map[string]any{"log": quiet}})
	hs2 := sytest.Start(t, sytest.Options{ServerName: "hs2.test", CA: ca, Config: map[string]any{
		"log":        quiet,
		"federation": map[string]any{"static_hosts": map[string]string{"hs1.test": fedAddr(hs1)}},
	}})
	// hs1 learns hs2's address only once hs2 listens.
	setStaticHost(t, hs1, "hs2.test", fedAddr(hs2))
	hs1.Restart(t)

	rep := runBench(t, "--hs", hs1.ClientURL, "--hs2", hs2.ClientURL, "--scenario", "federation")
	if len(rep.Results) != 1 {
		t.Fatalf("results = %+v", rep.Results)
	}
	checkResult(t, rep.Results[0])
}

func TestRefusesRemoteTargets(t *testing.T) {
	for _, u := range []string{"http://example.org", "https://10.0.0.1:8008", "ftp://127.0.0.1"} {
		if err := checkTarget(u, false); err == nil {
			t.Errorf("checkTarget(%q) accepted", u)
		}
	}
	for _, u := range []string{"http://127.0.0.1:8008", "http://localhost:8008", "http://[::1]:8008"} {
		if err := checkTarget(u, false); err != nil {
			t.Errorf("checkTarget(%q) = %v", u, err)
		}
	}
}

func fedAddr(s *sytest.Server) string { return strings.TrimPrefix(s.FederationURL, "https://") }

func setStaticHost(t *testing.T, s *sytest.Server, name, addr string) {
	t.Helper()
	raw, err := os.ReadFile(s.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	fed, _ := cfg["federation"].(map[string]any)
	hosts, _ := fed["static_hosts"].(map[string]any)
	if hosts == nil {
		hosts = map[string]any{}
		fed["static_hosts"] = hosts
	}
	hosts[name] = addr
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.ConfigPath, out, 0o600); err != nil {
		t.Fatal(err)
	}
}
