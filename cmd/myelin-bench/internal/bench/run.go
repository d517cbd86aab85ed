package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Config sizes the scenarios.
type Config struct {
	Users       int // e2ee-keys: users (one device each) that upload keys
	Messages    int // send: messages per mode; e2ee-keys: claims
	Concurrency int // concurrent senders, joiners and claimers
	// RegisterConcurrency bounds concurrent registrations: servers hash passwords with
	// memory-hard functions, and many at once would dominate the memory figures.
	RegisterConcurrency int
	Rooms               int // initial-sync, incremental-sync, federation: rooms
	Members             int // initial-sync, join, federation: members per room
	Rounds              int // repetitions of single-shot measurements (sync-wake, syncs, joins, queries)
	OneTimeKeys         int // e2ee-keys: one-time keys uploaded per device
	// Settle is how long sync-wake waits after starting a long-poll before it sends, so that
	// the server has parked the request.
	Settle time.Duration
	// LongPoll is the /sync timeout of long-polls.
	LongPoll time.Duration
}

// DefaultConfig is a moderate run: the 500 messages of the published figures.
func DefaultConfig() Config {
	return Config{
		Users: 50, Messages: 500, Concurrency: 10, RegisterConcurrency: 2, Rooms: 10, Members: 20, Rounds: 50,
		OneTimeKeys: 20, Settle: 50 * time.Millisecond, LongPoll: 30 * time.Second,
	}
}

// Env is what a scenario runs against.
type Env struct {
	Cfg      Config
	HS       *Server
	Reg      *Registrar
	HS2      *Server // nil without a second server
	Reg2     *Registrar
	Progress *Progress
	// Measuring, when set, is called as a scenario's timed part begins.
	Measuring func()
}

// measuring marks the start of the timed part of a scenario.
func (env *Env) measuring() {
	if env.Measuring != nil {
		env.Measuring()
	}
}

// Outcome is what a scenario returns: its metrics and notes for the reader.
type Outcome struct {
	Metrics []Metric
	Notes   []string
	Skipped bool
}

// Scenario is one named measurement.
type Scenario struct {
	Name        string
	Description string
	Run         func(ctx context.Context, env *Env) (Outcome, error)
}

// Scenarios lists every scenario in the order "all" runs them.
func Scenarios() []Scenario {
	return []Scenario{
		{"send", "messages into one room, sequential and concurrent", runSend},
		{"sync-wake", "send-to-wake latency of a long-polling /sync", runSyncWake},
		{"initial-sync", "initial /sync in R rooms of M members, with and without lazy-loaded members", runInitialSync},
		{"incremental-sync", "incremental /sync in R rooms, one of which changed", runIncrementalSync},
		{"join", "joining a room of M members", runJoin},
		{"e2ee-keys", "/keys/upload, /keys/query over many users, /keys/claim throughput", runKeys},
		{"federation", "join across servers and send-to-remote-sync latency (needs --hs2)", runFederation},
	}
}

// ErrUnknownScenario is returned by Select for a name that is not a scenario.
var ErrUnknownScenario = errors.New("unknown scenario")

// Select resolves a comma-separated list of names, or "all".
func Select(names string) ([]Scenario, error) {
	all := Scenarios()
	if names == "all" {
		return all, nil
	}
	var out []Scenario
	for _, n := range strings.Split(names, ",") {
		n = strings.TrimSpace(n)
		i := slices.IndexFunc(all, func(s Scenario) bool { return s.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("%w %q", ErrUnknownScenario, n)
		}
		out = append(out, all[i])
	}
	return out, nil
}

// Result is one scenario's outcome in the report.
type Result struct {
	Scenario    string  `json:"scenario"`
	OK          bool    `json:"ok"`
	Skipped     bool    `json:"skipped,omitempty"`
	Error       string  `json:"error,omitempty"`
	Seconds     float64 `json:"seconds"`
	RateLimited int64   `json:"rate_limited"`
	PeakRSSKB   int64   `json:"peak_rss_kb,omitempty"`
	// MeasuredPeakRSSKB is the peak while the timed operations ran, without the set-up.
	MeasuredPeakRSSKB int64    `json:"measured_peak_rss_kb,omitempty"`
	Metrics           []Metric `json:"metrics"`
	Notes             []string `json:"notes,omitempty"`
}

// Report is the whole run, as written to --json.
type Report struct {
	Server      string    `json:"server"`
	Server2     string    `json:"server2,omitempty"`
	Versions    []string  `json:"versions,omitempty"`
	Started     time.Time `json:"started"`
	Config      Config    `json:"config"`
	Results     []Result  `json:"results"`
	Memory      *Memory   `json:"memory,omitempty"`
	RateLimited int64     `json:"rate_limited"`
}

// RunAll runs the scenarios one after another, each bounded by perScenario, and never stops
// early for a failed scenario: its error goes into its result.
func RunAll(ctx context.Context, env *Env, scenarios []Scenario, mem *MemorySampler, perScenario time.Duration) []Result {
	var out []Result
	if mem != nil {
		env.Measuring = mem.StartMeasuring
	}
	for _, sc := range scenarios {
		if ctx.Err() != nil {
			break
		}
		if mem != nil {
			mem.Reset()
		}
		limited := env.HS.RateLimited.Load()
		if env.HS2 != nil {
			limited += env.HS2.RateLimited.Load()
		}
		sctx, cancel := context.WithTimeout(ctx, perScenario)
		start := time.Now()
		o, err := sc.Run(sctx, env)
		cancel()
		r := Result{
			Scenario: sc.Name, OK: err == nil && !o.Skipped, Skipped: o.Skipped,
			Seconds: time.Since(start).Seconds(), Metrics: o.Metrics, Notes: o.Notes,
		}
		if r.Metrics == nil {
			r.Metrics = []Metric{}
		}
		r.RateLimited = env.HS.RateLimited.Load() - limited
		if env.HS2 != nil {
			r.RateLimited += env.HS2.RateLimited.Load()
		}
		if err != nil {
			r.Error = err.Error()
		}
		if mem != nil {
			r.PeakRSSKB, r.MeasuredPeakRSSKB = mem.WindowPeakKB()
		}
		out = append(out, r)
	}
	return out
}

// WriteTable prints the report for people.
func WriteTable(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "server %s", rep.Server)
	if rep.Server2 != "" {
		fmt.Fprintf(w, " (second server %s)", rep.Server2)
	}
	fmt.Fprintf(w, ", started %s\n\n", rep.Started.Format(time.RFC3339))
	fmt.Fprintf(w, "%-34s %6s %10s %9s %9s %9s %9s %9s\n", "metric", "n", "ops/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "bytes")
	for _, r := range rep.Results {
		switch {
		case r.Skipped:
			fmt.Fprintf(w, "%-34s skipped: %s\n", r.Scenario, strings.Join(r.Notes, "; "))
			continue
		case r.Error != "":
			fmt.Fprintf(w, "%-34s FAILED: %s\n", r.Scenario, r.Error)
		}
		for _, m := range r.Metrics {
			tp := "-"
			if m.Throughput > 0 {
				tp = fmt.Sprintf("%.1f", m.Throughput)
			}
			bytes := "-"
			if m.Bytes > 0 {
				bytes = fmt.Sprint(m.Bytes)
			}
			fmt.Fprintf(w, "%-34s %6d %10s %9.2f %9.2f %9.2f %9.2f %9s\n", m.Name, m.Count, tp, m.P50MS, m.P90MS, m.P99MS, m.MaxMS, bytes)
		}
		if r.PeakRSSKB > 0 {
			fmt.Fprintf(w, "  %s: peak RSS %.1f MB while measured, %.1f MB with set-up\n", r.Scenario,
				float64(r.MeasuredPeakRSSKB)/1024, float64(r.PeakRSSKB)/1024)
		}
		if r.RateLimited > 0 {
			fmt.Fprintf(w, "  WARNING: %s was rate limited %d times; its latencies include the waits\n", r.Scenario, r.RateLimited)
		}
	}
	if rep.Memory != nil {
		fmt.Fprintf(w, "\nresident memory of pid %d: %.1f MB at start, %.1f MB peak (%d samples)\n",
			rep.Memory.PID, float64(rep.Memory.StartKB)/1024, float64(rep.Memory.PeakKB)/1024, rep.Memory.Samples)
	}
	if rep.RateLimited > 0 {
		fmt.Fprintf(w, "\nWARNING: the server rate limited %d requests: turn rate limiting off for benchmarks\n", rep.RateLimited)
	}
}
