// Package sytest is Myelin's black-box suite: it builds the real myelin binary once per test run,
// starts servers on free loopback ports with their own data directories and configurations, and
// drives them over HTTP as clients and other servers would.
package sytest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"myelin/storage"
	"myelin/storage/storagetest"
)

var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	buildErr  error
)

// Binary builds the myelin binary once per test run and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		buildDir, buildErr = os.MkdirTemp("", "myelin-sytest-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "myelin")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/myelin")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building myelin: %v", buildErr)
	}
	return binPath
}

// Cleanup removes the built binary; call it from TestMain after m.Run.
func Cleanup() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the myelin module")
	}
	return filepath.Dir(mod), nil
}

// Options configure a server started by Start.
type Options struct {
	// ServerName defaults to "localhost:<federation port>"-free "hs<N>.test"-style names chosen by
	// the caller; empty means "localhost".
	ServerName string
	// DatabaseURL is empty for SQLite in the data directory.
	DatabaseURL string
	// CA, when set, issues the server's federation certificate and is trusted for outbound calls.
	CA *CA
	// Config holds extra configuration keys, merged over the test defaults (nested maps merge).
	Config map[string]any
}

// ForEachBackend runs scenario as a subtest per database backend: on SQLite (dbURL "", the data
// directory's file) and, when MYELIN_TEST_POSTGRES is set, on a fresh PostgreSQL database. Pass
// dbURL as Options.DatabaseURL.
func ForEachBackend(t *testing.T, scenario func(t *testing.T, dbURL string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { scenario(t, "") })
	if os.Getenv(storagetest.PostgresEnv) != "" {
		t.Run("postgres", func(t *testing.T) { scenario(t, storagetest.NewConfig(t, storage.Postgres).URL) })
	}
}

// Server is one running myelin process.
type Server struct {
	Name          string
	ClientURL     string
	FederationURL string
	DataDir       string
	ConfigPath    string

	cmd    *exec.Cmd
	logs   *syncBuffer
	exited chan struct{}
	tb     testing.TB
}

// Start starts a myelin server and waits until its client API answers. The server is stopped and
// its logs printed (if the test failed) when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	dir := t.TempDir()
	// A port found free may be taken by another process before the server binds it (tests of
	// other packages run at the same time); then the server is started again on other ports.
	for attempt := 1; ; attempt++ {
		s := configure(t, dir, opts)
		err := s.startOnce(t, dir)
		if err == nil {
			return s
		}
		if attempt < 3 && strings.Contains(s.logs.String(), "address already in use") {
			continue
		}
		t.Fatalf("server %s did not start: %v\nlogs:\n%s", s.Name, err, s.logs.String())
	}
}

// configure writes the configuration of a new server in dir, on free loopback ports.
func configure(t testing.TB, dir string, opts Options) *Server {
	t.Helper()
	clientAddr, fedAddr := freeAddr(t), freeAddr(t)
	name := opts.ServerName
	if name == "" {
		name = "localhost"
	}
	cfg := map[string]any{
		"server_name":  name,
		"data_dir":     filepath.Join(dir, "data"),
		"database":     map[string]any{"url": opts.DatabaseURL},
		"client":       map[string]any{"listen": clientAddr},
		"federation":   map[string]any{"listen": fedAddr, "allow_private_addresses": true},
		"registration": map[string]any{"enabled": true},
		"log":          map[string]any{"level": "debug"},
		"ratelimit":    map[string]any{"enabled": false},
	}
	if opts.CA != nil {
		certPath, keyPath := opts.CA.Issue(t, dir, hostOf(name))
		merge(cfg, map[string]any{"federation": map[string]any{
			"tls_cert": certPath, "tls_key": keyPath, "trusted_ca_files": []string{opts.CA.CertPath},
		}})
	}
	merge(cfg, opts.Config)
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "myelin.yaml")
	if err := os.WriteFile(cfgPath, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return &Server{
		Name:          name,
		ClientURL:     "http://" + clientAddr,
		FederationURL: "https://" + fedAddr,
		DataDir:       filepath.Join(dir, "data"),
		ConfigPath:    cfgPath,
		tb:            t,
	}
}

func (s *Server) start(t testing.TB, dir string) {
	t.Helper()
	if err := s.startOnce(t, dir); err != nil {
		t.Fatalf("server %s did not start: %v\nlogs:\n%s", s.Name, err, s.logs.String())
	}
}

// startOnce runs the server and waits until it answers; the process is stopped (and its logs
// printed if the test failed) when the test ends.
func (s *Server) startOnce(t testing.TB, dir string) error {
	t.Helper()
	s.logs = &syncBuffer{}
	s.exited = make(chan struct{})
	s.cmd = exec.Command(Binary(t), "serve", "--config", s.ConfigPath)
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd, exited, logs := s.cmd, s.exited, s.logs
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		stop(cmd, exited)
		if t.Failed() {
			t.Logf("logs of %s:\n%s", s.Name, logs.String())
		}
	})
	return waitUntilUp(s.ClientURL+"/_matrix/client/versions", s.exited, 30*time.Second)
}

// Restart stops the server and starts it again with the same data and configuration.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	s.start(t, filepath.Dir(s.ConfigPath))
}

// Stop sends SIGTERM and waits for a clean exit (SIGKILL after 15 seconds).
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	stop(s.cmd, s.exited)
}

func stop(cmd *exec.Cmd, exited chan struct{}) {
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// ExitCode is the process's exit status once it has stopped, or -1.
func (s *Server) ExitCode() int {
	select {
	case <-s.exited:
		return s.cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}

// Logs returns what the server has logged so far.
func (s *Server) Logs() string { return s.logs.String() }

// FederationClient returns an HTTPS client that trusts ca (or nothing extra when ca is nil).
func FederationClient(ca *CA) *http.Client {
	pool, _ := x509.SystemCertPool()
	if pool == nil {
		pool = x509.NewCertPool()
	}
	if ca != nil {
		pool.AddCert(ca.Cert)
	}
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
}

func waitUntilUp(url string, exited <-chan struct{}, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for {
		select {
		case <-exited:
			return fmt.Errorf("process exited")
		case <-ctx.Done():
			return fmt.Errorf("no answer from %s within %s", url, limit)
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func hostOf(serverName string) string {
	if h, _, err := net.SplitHostPort(serverName); err == nil {
		return h
	}
	return serverName
}

func merge(dst, src map[string]any) {
	for k, v := range src {
		if sv, ok := v.(map[string]any); ok {
			if dv, ok := dst[k].(map[string]any); ok {
				merge(dv, sv)
				continue
			}
		}
		dst[k] = v
	}
}

// syncBuffer collects a process's output while tests read it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// DropOutboundQueue empties a stopped server's outbound federation queue towards destination,
// as if those transactions had been lost: what destination missed reaches it only when it
// asks for it (get_missing_events, /state_ids, backfill). Restart the server afterwards.
func (s *Server) DropOutboundQueue(t testing.TB, destination string) {
	t.Helper()
	if s.ExitCode() == -1 {
		t.Fatalf("DropOutboundQueue: server %s is running; stop it first", s.Name)
	}
	raw, err := os.ReadFile(s.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Database struct {
			URL string `yaml:"url"`
		} `yaml:"database"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := storage.Open(ctx, storage.Config{URL: cfg.Database.URL, SQLitePath: filepath.Join(s.DataDir, "myelin.db"), MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.WithTx(ctx, func(tx *storage.Tx) error {
		for _, q := range []string{
			`DELETE FROM federation_queue_pdus WHERE destination = $1`,
			`DELETE FROM federation_queue_edus WHERE destination = $1`,
			`UPDATE federation_destinations SET txn_id = '', txn_pdu_pos = 0, txn_edu_pos = 0 WHERE destination = $1`,
		} {
			if _, err := tx.Exec(ctx, q, destination); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("dropping the queue of %s towards %s: %v", s.Name, destination, err)
	}
}
