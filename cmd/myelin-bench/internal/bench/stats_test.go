package bench

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample is every percentile", ms(7), 99, 7 * time.Millisecond},
		{"median of five", ms(1, 2, 3, 4, 5), 50, 3 * time.Millisecond},
		{"p90 of five rounds up", ms(1, 2, 3, 4, 5), 90, 5 * time.Millisecond},
		{"p50 of 1..100", hundred, 50, 50 * time.Millisecond},
		{"p90 of 1..100", hundred, 90, 90 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"p100 is the maximum", hundred, 100, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(p%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestSummariseSortsAndCountsThroughput(t *testing.T) {
	var s Samples
	for _, d := range []int{5, 1, 4, 2, 3} {
		s.Add(time.Duration(d) * time.Millisecond)
	}
	m := s.Summarise("x", 2*time.Second)
	if m.Count != 5 || m.MinMS != 1 || m.MaxMS != 5 || m.P50MS != 3 || m.MeanMS != 3 {
		t.Errorf("summary = %+v", m)
	}
	if m.Throughput != 2.5 {
		t.Errorf("throughput = %v, want 2.5", m.Throughput)
	}
}

func TestForEachRunsAllAndStopsOnError(t *testing.T) {
	var n atomic.Int64
	if err := forEach(context.Background(), 100, 7, func(_ context.Context, w, _ int) error {
		if w < 0 || w >= 7 {
			t.Errorf("worker %d out of range", w)
		}
		n.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 100 {
		t.Errorf("ran %d times, want 100", n.Load())
	}
	boom := errors.New("boom")
	err := forEach(context.Background(), 1000, 3, func(_ context.Context, _, i int) error {
		if i == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
}

func TestMemorySamplerReadsOwnRSS(t *testing.T) {
	m, err := NewMemorySampler(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	m.Reset()
	scenario, measured := m.WindowPeakKB()
	if scenario <= 0 || measured <= 0 {
		t.Errorf("peaks = %d, %d kB", scenario, measured)
	}
	if s := m.Summary(); s.PeakKB <= 0 || s.Samples == 0 {
		t.Errorf("summary = %+v", s)
	}
}

func TestSelect(t *testing.T) {
	all, err := Select("all")
	if err != nil || len(all) != len(Scenarios()) {
		t.Fatalf("Select(all) = %d scenarios, %v", len(all), err)
	}
	two, err := Select("send, join")
	if err != nil || len(two) != 2 || two[0].Name != "send" || two[1].Name != "join" {
		t.Errorf("Select(send, join) = %v, %v", two, err)
	}
	if _, err := Select("send,nope"); !errors.Is(err, ErrUnknownScenario) {
		t.Errorf("Select(nope) err = %v", err)
	}
}
