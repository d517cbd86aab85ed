package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// LoadReport reads a report written by --json.
func LoadReport(path string) (*Report, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// WriteComparison prints a Markdown table of two runs side by side. Each ratio says how many
// times better a is than b: b's latency over a's, a's throughput over b's, b's memory over a's.
func WriteComparison(w io.Writer, aName string, a *Report, bName string, b *Report) {
	bm := map[string]Metric{}
	for _, r := range b.Results {
		for _, m := range r.Metrics {
			bm[m.Name] = m
		}
	}
	fmt.Fprintf(w, "| metric | %s p50 / p99 ms | %s p50 / p99 ms | p50 ratio | %s ops/s | %s ops/s | ops/s ratio |\n", aName, bName, aName, bName)
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range a.Results {
		for _, m := range r.Metrics {
			o, ok := bm[m.Name]
			if !ok {
				continue
			}
			tpA, tpB, tpRatio := "", "", ""
			if m.Throughput > 0 && o.Throughput > 0 {
				tpA, tpB = fmt.Sprintf("%.0f", m.Throughput), fmt.Sprintf("%.0f", o.Throughput)
				tpRatio = fmt.Sprintf("%.1f×", m.Throughput/o.Throughput)
			}
			fmt.Fprintf(w, "| %s | %.2f / %.2f | %.2f / %.2f | %s | %s | %s | %s |\n", m.Name,
				m.P50MS, m.P99MS, o.P50MS, o.P99MS, ratio(o.P50MS, m.P50MS), tpA, tpB, tpRatio)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| scenario | %s peak RSS MB (measured / with set-up) | %s peak RSS MB (measured / with set-up) |\n", aName, bName)
	fmt.Fprintln(w, "|---|---:|---:|")
	br := map[string]Result{}
	for _, r := range b.Results {
		br[r.Scenario] = r
	}
	for _, r := range a.Results {
		o, ok := br[r.Scenario]
		if !ok || r.Skipped || o.Skipped || r.PeakRSSKB == 0 || o.PeakRSSKB == 0 {
			continue
		}
		fmt.Fprintf(w, "| %s | %.0f / %.0f | %.0f / %.0f |\n", r.Scenario,
			float64(r.MeasuredPeakRSSKB)/1024, float64(r.PeakRSSKB)/1024, float64(o.MeasuredPeakRSSKB)/1024, float64(o.PeakRSSKB)/1024)
	}
	for _, r := range append(append([]Result{}, a.Results...), b.Results...) {
		if r.RateLimited > 0 {
			fmt.Fprintf(w, "\nWARNING: %s was rate limited %d times in one of the runs.\n", r.Scenario, r.RateLimited)
		}
	}
}

func ratio(num, den float64) string {
	if num <= 0 || den <= 0 {
		return ""
	}
	return fmt.Sprintf("%.1f×", num/den)
}
