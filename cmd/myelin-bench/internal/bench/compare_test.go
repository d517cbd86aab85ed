package bench

import (
	"strings"
	"testing"
)

func TestWriteComparisonRatios(t *testing.T) {
	a := &Report{Results: []Result{{Scenario: "send", PeakRSSKB: 2048, MeasuredPeakRSSKB: 1024, Metrics: []Metric{
		{Name: "send/sequential", P50MS: 1, P99MS: 2, Throughput: 1000},
		{Name: "only-in-a", P50MS: 1},
	}}}}
	b := &Report{Results: []Result{{Scenario: "send", PeakRSSKB: 4096, MeasuredPeakRSSKB: 4096, RateLimited: 3, Metrics: []Metric{
		{Name: "send/sequential", P50MS: 10, P99MS: 30, Throughput: 100},
	}}}}
	var out strings.Builder
	WriteComparison(&out, "A", a, "B", b)
	got := out.String()
	for _, want := range []string{
		"| send/sequential | 1.00 / 2.00 | 10.00 / 30.00 | 10.0× | 1000 | 100 | 10.0× |",
		"| send | 1 / 2 | 4 / 4 |",
		"rate limited 3 times",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("comparison lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "only-in-a") {
		t.Errorf("a metric missing from one run should not be compared:\n%s", got)
	}
}
