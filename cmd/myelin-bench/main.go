// Command myelin-bench is a load generator for Matrix homeservers. It speaks only the
// Client-Server API, so the same run measures Myelin, Dendrite or any other server:
//
//	myelin-bench --hs http://127.0.0.1:8008 --scenario all --json result.json
//	myelin-bench compare Myelin=myelin.json Dendrite=dendrite.json
//
// It registers its own users (open registration, a registration token, or the Synapse admin
// shared-secret API), runs the named scenarios one after another, prints a table of throughput
// and latency percentiles, and samples the server's resident memory when given its PID.
// Benchmarks should run with the server's rate limiting off; a run that was rate limited says so.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"

	"golang.org/x/term"

	"myelin/cmd/myelin-bench/internal/bench"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "myelin-bench:", err)
		os.Exit(1)
	}
}

type options struct {
	hs, hs2        string
	scenario       string
	token, secret  string
	secretFile     string
	pid            int
	jsonPath       string
	allowRemote    bool
	requestTimeout time.Duration
	scenarioLimit  time.Duration
	cfg            bench.Config
}

func parseFlags(args []string) (options, error) {
	o := options{cfg: bench.DefaultConfig()}
	fs := flag.NewFlagSet("myelin-bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: myelin-bench [flags]\n       myelin-bench compare NAME=A.json NAME=B.json\n\nflags:")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.hs, "hs", "http://127.0.0.1:8008", "client API base URL of the server to measure")
	fs.StringVar(&o.hs2, "hs2", "", "client API base URL of a second server (federation scenario)")
	fs.StringVar(&o.scenario, "scenario", "all", "scenarios to run, comma-separated, or all: "+scenarioNames())
	fs.StringVar(&o.token, "registration-token", "", "registration token for m.login.registration_token")
	fs.StringVar(&o.secret, "shared-secret", "", "registration shared secret for /_synapse/admin/v1/register (visible in ps: prefer --shared-secret-file)")
	fs.StringVar(&o.secretFile, "shared-secret-file", "", "file holding the registration shared secret")
	fs.IntVar(&o.pid, "pid", 0, "PID of the server on this machine: its peak resident memory is reported")
	fs.StringVar(&o.jsonPath, "json", "", "write the results as JSON to this file")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow a server that is not on a loopback address")
	fs.DurationVar(&o.requestTimeout, "request-timeout", 60*time.Second, "timeout of every request (long-polls get theirs on top)")
	fs.DurationVar(&o.scenarioLimit, "scenario-timeout", 15*time.Minute, "time limit of each scenario")
	fs.IntVar(&o.cfg.Users, "users", o.cfg.Users, "e2ee-keys: users (one device each)")
	fs.IntVar(&o.cfg.Messages, "messages", o.cfg.Messages, "send: messages per mode; e2ee-keys: one-time key claims")
	fs.IntVar(&o.cfg.Concurrency, "concurrency", o.cfg.Concurrency, "concurrent senders, joiners and claimers")
	fs.IntVar(&o.cfg.RegisterConcurrency, "register-concurrency", o.cfg.RegisterConcurrency, "concurrent registrations (password hashing is memory-hard)")
	fs.IntVar(&o.cfg.Rooms, "rooms", o.cfg.Rooms, "rooms of initial-sync, incremental-sync and federation")
	fs.IntVar(&o.cfg.Members, "members", o.cfg.Members, "members per room of initial-sync, join and federation")
	fs.IntVar(&o.cfg.Rounds, "rounds", o.cfg.Rounds, "repetitions of single measurements (wakes, syncs, joins, queries)")
	fs.IntVar(&o.cfg.OneTimeKeys, "one-time-keys", o.cfg.OneTimeKeys, "e2ee-keys: one-time keys per device")
	fs.DurationVar(&o.cfg.Settle, "settle", o.cfg.Settle, "sync-wake: wait after starting a long-poll before sending")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c := o.cfg
	if c.Users < 1 || c.Messages < 1 || c.Concurrency < 1 || c.RegisterConcurrency < 1 || c.Rooms < 1 || c.Members < 1 || c.Rounds < 1 || c.OneTimeKeys < 1 {
		return o, errors.New("--users, --messages, --concurrency, --register-concurrency, --rooms, --members, --rounds and --one-time-keys must be at least 1")
	}
	if o.secretFile != "" {
		if o.secret != "" {
			return o, errors.New("give --shared-secret or --shared-secret-file, not both")
		}
		raw, err := os.ReadFile(o.secretFile)
		if err != nil {
			return o, err
		}
		o.secret = strings.TrimSpace(string(raw))
	}
	if o.token != "" && o.secret != "" {
		return o, errors.New("give --registration-token or --shared-secret, not both")
	}
	for _, u := range []string{o.hs, o.hs2} {
		if u == "" {
			continue
		}
		if err := checkTarget(u, o.allowRemote); err != nil {
			return o, err
		}
	}
	return o, nil
}

func scenarioNames() string {
	var names []string
	for _, s := range bench.Scenarios() {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

// checkTarget refuses anything but a loopback server unless asked: a load generator pointed at
// someone else's server by a typo is an attack.
func checkTarget(raw string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", raw)
	}
	if allowRemote {
		return nil
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s is not a loopback address (pass --allow-remote to measure it anyway)", host)
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "compare" {
		return compare(args[1:])
	}
	o, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	scenarios, err := bench.Select(o.scenario)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	progress := bench.NewProgress(os.Stderr, term.IsTerminal(int(os.Stderr.Fd())))
	hs := bench.NewServer(o.hs, o.requestTimeout)
	env := &bench.Env{Cfg: o.cfg, HS: hs, Reg: bench.NewRegistrar(hs, o.token, o.secret), Progress: progress}
	rep := &bench.Report{Server: o.hs, Server2: o.hs2, Started: time.Now().UTC(), Config: o.cfg}
	if rep.Versions, err = versions(ctx, hs); err != nil {
		progress.Close()
		return fmt.Errorf("is a homeserver listening at %s? %w", o.hs, err)
	}
	if o.hs2 != "" {
		hs2 := bench.NewServer(o.hs2, o.requestTimeout)
		env.HS2, env.Reg2 = hs2, bench.NewRegistrar(hs2, o.token, o.secret)
	}

	var mem *bench.MemorySampler
	if o.pid != 0 {
		if mem, err = bench.NewMemorySampler(o.pid); err != nil {
			progress.Close()
			return fmt.Errorf("--pid: %w", err)
		}
		mctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go mem.Run(mctx, 50*time.Millisecond)
	}

	rep.Results = bench.RunAll(ctx, env, scenarios, mem, o.scenarioLimit)
	progress.Close()
	if mem != nil {
		m := mem.Summary()
		rep.Memory = &m
	}
	rep.RateLimited = hs.RateLimited.Load()
	if env.HS2 != nil {
		rep.RateLimited += env.HS2.RateLimited.Load()
	}
	bench.WriteTable(os.Stdout, rep)

	if o.jsonPath != "" {
		out, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.jsonPath, append(out, '\n'), 0o644); err != nil {
			return err
		}
	}
	failed := 0
	for _, r := range rep.Results {
		if r.Error != "" {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d scenarios failed", failed, len(rep.Results))
	}
	return ctx.Err()
}

// compare prints a Markdown table of two --json results side by side:
//
//	myelin-bench compare Myelin=myelin.json Dendrite=dendrite.json
func compare(args []string) error {
	if len(args) != 2 {
		return errors.New("usage: myelin-bench compare NAME=A.json NAME=B.json")
	}
	names := make([]string, 2)
	reports := make([]*bench.Report, 2)
	for i, arg := range args {
		name, path, ok := strings.Cut(arg, "=")
		if !ok {
			name, path = arg, arg
		}
		r, err := bench.LoadReport(path)
		if err != nil {
			return err
		}
		names[i], reports[i] = name, r
	}
	bench.WriteComparison(os.Stdout, names[0], reports[0], names[1], reports[1])
	return nil
}

// versions asks /_matrix/client/versions, which also checks that a homeserver is there.
func versions(ctx context.Context, hs *bench.Server) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, hs.BaseURL+"/_matrix/client/versions", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hs.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var v struct {
		Versions []string `json:"versions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return nil, fmt.Errorf("/_matrix/client/versions: %w", err)
	}
	return v.Versions, nil
}
