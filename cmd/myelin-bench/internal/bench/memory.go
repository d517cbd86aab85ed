package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MemorySampler reads a process's resident set size (VmRSS in /proc/PID/status) at an interval
// and keeps the peak, over the whole run and since the last Reset.
type MemorySampler struct {
	pid int

	mu         sync.Mutex
	peakKB     int64
	windowKB   int64
	measuredKB int64
	samples    int
	lastErr    error
	firstKB    int64
	hasSampled bool
}

// NewMemorySampler checks that the process can be read and returns a sampler for it.
func NewMemorySampler(pid int) (*MemorySampler, error) {
	if _, err := readRSS(pid); err != nil {
		return nil, err
	}
	return &MemorySampler{pid: pid}, nil
}

// Run samples every interval until ctx ends.
func (m *MemorySampler) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		m.sample()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *MemorySampler) sample() {
	kb, err := readRSS(m.pid)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.lastErr = err
		return
	}
	if !m.hasSampled {
		m.firstKB, m.hasSampled = kb, true
	}
	m.samples++
	m.peakKB = max(m.peakKB, kb)
	m.windowKB = max(m.windowKB, kb)
	m.measuredKB = max(m.measuredKB, kb)
}

// Reset samples now and starts a new window (one per scenario).
func (m *MemorySampler) Reset() {
	m.mu.Lock()
	m.windowKB, m.measuredKB = 0, 0
	m.mu.Unlock()
	m.sample()
}

// StartMeasuring samples now and starts the window of the timed part of a scenario, which leaves
// out the set-up (registering users hashes passwords, which can take much memory).
func (m *MemorySampler) StartMeasuring() {
	m.mu.Lock()
	m.measuredKB = 0
	m.mu.Unlock()
	m.sample()
}

// WindowPeakKB samples now and returns the peak since the last Reset and since the last
// StartMeasuring.
func (m *MemorySampler) WindowPeakKB() (scenario, measured int64) {
	m.sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.windowKB, m.measuredKB
}

// Memory is the summary of a run's memory samples.
type Memory struct {
	PID     int    `json:"pid"`
	StartKB int64  `json:"start_rss_kb"`
	PeakKB  int64  `json:"peak_rss_kb"`
	Samples int    `json:"samples"`
	Error   string `json:"error,omitempty"`
}

// Summary returns the peak over the whole run.
func (m *MemorySampler) Summary() Memory {
	m.sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	out := Memory{PID: m.pid, StartKB: m.firstKB, PeakKB: m.peakKB, Samples: m.samples}
	if m.lastErr != nil {
		out.Error = m.lastErr.Error()
	}
	return out
}

var errNoVmRSS = errors.New("no VmRSS line")

func readRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest) // "123456 kB"
		if len(fields) == 0 {
			break
		}
		return strconv.ParseInt(fields[0], 10, 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%d/status: %w", pid, errNoVmRSS)
}
