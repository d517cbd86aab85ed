package bench

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Samples collects latencies of one measured operation; safe for concurrent use.
type Samples struct {
	mu sync.Mutex
	d  []time.Duration
}

// Add records one latency.
func (s *Samples) Add(d time.Duration) {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
}

// Time runs fn and records how long it took (from the monotonic clock) when it succeeds.
func (s *Samples) Time(fn func() error) error {
	start := time.Now()
	err := fn()
	if err == nil {
		s.Add(time.Since(start))
	}
	return err
}

// Metric is the summary of one measured operation. Times are milliseconds.
type Metric struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
	// WallSeconds is the time from the first operation's start to the last one's end, when the
	// operations ran as one batch; Throughput is Count over it (operations per second).
	WallSeconds float64 `json:"wall_seconds,omitempty"`
	Throughput  float64 `json:"throughput_per_s,omitempty"`
	MinMS       float64 `json:"min_ms"`
	MeanMS      float64 `json:"mean_ms"`
	P50MS       float64 `json:"p50_ms"`
	P90MS       float64 `json:"p90_ms"`
	P99MS       float64 `json:"p99_ms"`
	MaxMS       float64 `json:"max_ms"`
	// Bytes is the mean size of the answers, where the size says something (sync responses).
	Bytes int `json:"bytes,omitempty"`
}

// Summarise computes the metric of the samples exactly (no sketches or buckets). wall, when
// non-zero, is the batch's duration and gives the throughput.
func (s *Samples) Summarise(name string, wall time.Duration) Metric {
	s.mu.Lock()
	d := slices.Clone(s.d)
	s.mu.Unlock()
	slices.Sort(d)
	m := Metric{Name: name, Count: len(d)}
	if wall > 0 {
		m.WallSeconds = wall.Seconds()
		m.Throughput = float64(len(d)) / wall.Seconds()
	}
	if len(d) == 0 {
		return m
	}
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	m.MinMS, m.MaxMS = ms(d[0]), ms(d[len(d)-1])
	m.MeanMS = ms(sum / time.Duration(len(d)))
	m.P50MS, m.P90MS, m.P99MS = ms(Percentile(d, 50)), ms(Percentile(d, 90)), ms(Percentile(d, 99))
	return m
}

// Percentile returns the nearest-rank percentile p (0 < p <= 100) of sorted: the smallest sample
// such that at least p% of the samples are less than or equal to it.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

func ms(d time.Duration) float64 {
	return math.Round(float64(d.Nanoseconds())/1e3) / 1e3
}
