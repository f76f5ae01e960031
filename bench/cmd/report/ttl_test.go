package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestPerSecond(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := []time.Time{start.Add(-time.Millisecond), start.Add(10 * time.Millisecond), start.Add(1500 * time.Millisecond), start.Add(9 * time.Second)}
	got := perSecond(start, at, 3)
	want := []int{2, 1, 1} // before the start counts in the first second, after the end in the last
	if len(got) != len(want) {
		t.Fatalf("perSecond = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("perSecond = %v, want %v", got, want)
		}
	}
	if perSecond(start, at, 0) != nil {
		t.Error("no seconds: want nil")
	}
}

func TestMedianTTLRow(t *testing.T) {
	got := medianTTLRow([]TTLRow{
		{Variant: "B", Concurrency: 32, Requests: 10, P99ms: 3, P999ms: 9, MaxMs: 50, TimestampGETs: 2, SecondMaxMs: []float64{1, 50}, SecondTimestamps: []int{1, 1}},
		{Variant: "B", Concurrency: 32, Requests: 20, P99ms: 1, P999ms: 4, MaxMs: 5, TimestampGETs: 3, SecondMaxMs: []float64{5}, SecondTimestamps: []int{3}},
		{Variant: "B", Concurrency: 32, Requests: 30, P99ms: 2, P999ms: 6, MaxMs: 7, TimestampGETs: 4, Errors: 1, FirstErr: "boom"},
	})
	if got.Rounds != 3 || got.Requests != 60 || got.TimestampGETs != 9 || got.Errors != 1 || got.FirstErr != "boom" {
		t.Errorf("sums: %+v", got)
	}
	if got.P99ms != 2 || got.P999ms != 6 || got.MaxMs != 50 {
		t.Errorf("p99 %v p99.9 %v max %v, want the medians 2 and 6 and the maximum 50", got.P99ms, got.P999ms, got.MaxMs)
	}
	if len(got.SecondMaxMs) != 3 || got.SecondMaxMs[2] != 5 || len(got.SecondTimestamps) != 3 {
		t.Errorf("per-second series not concatenated: %v %v", got.SecondMaxMs, got.SecondTimestamps)
	}
}

// TestTTLChecks: the target compares the slowest request of B and of B' with A's p99 at the same
// concurrency; a missing or failed row is "n/a", never a verdict.
func TestTTLChecks(t *testing.T) {
	rows := []TTLRow{
		{Variant: "A", Concurrency: 32, Requests: 100, P99ms: 2, MaxMs: 10},
		{Variant: "B", Concurrency: 32, Requests: 100, P99ms: 2, MaxMs: 4},
		{Variant: "B'", Concurrency: 32, Requests: 100, P99ms: 3, MaxMs: 4.1},
		{Variant: "A", Concurrency: 1, Requests: 100, P99ms: 1, MaxMs: 3},
		{Variant: "B", Concurrency: 1, Requests: 100, Errors: 1, MaxMs: 1},
	}
	got := map[string]string{}
	for _, c := range ttlChecks(rows) {
		got[c.Target] = c.Met
	}
	want := map[string]string{
		"trust_ttl B (expiries, trust data unchanged), 32 client(s): slowest request ≤ 2× warm p99":     "yes",
		"trust_ttl B' (expiries, trust data re-published), 32 client(s): slowest request ≤ 2× warm p99": "no",
		"trust_ttl B (expiries, trust data unchanged), 1 client(s): slowest request ≤ 2× warm p99":      "n/a",
		"trust_ttl B' (expiries, trust data re-published), 1 client(s): slowest request ≤ 2× warm p99":  "n/a",
	}
	if len(got) != len(want) {
		t.Fatalf("checks %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: met %q, want %q", k, got[k], v)
		}
	}
}

// TestRenderWithoutTTL: a report saved before scenario 2b renders without its section or targets,
// and one with it renders both.
func TestRenderWithoutTTL(t *testing.T) {
	var old Report
	if err := json.Unmarshal([]byte(`{"Config":{"rounds":"5"},"Tag":[]}`), &old); err != nil {
		t.Fatal(err)
	}
	old.Checks = checkTargets(&old)
	var md strings.Builder
	old.markdown(&md)
	if strings.Contains(md.String(), "2b.") || strings.Contains(md.String(), "#13") {
		t.Errorf("old report renders scenario 2b:\n%s", md.String())
	}
	old.TTL = []TTLRow{{Variant: "A", TTL: "1h0m0s", Concurrency: 32, Requests: 1, P99ms: 1, MaxMs: 2, SecondMaxMs: []float64{2}},
		{Variant: "B", TTL: "1s", Concurrency: 32, Requests: 1, P99ms: 1, MaxMs: 3, SecondMaxMs: []float64{3}, SecondTimestamps: []int{1}}}
	old.Checks = checkTargets(&old)
	md.Reset()
	old.markdown(&md)
	for _, want := range []string{"## 2b.", "| B | 1s | – | 32 |", "| 1.00 | 3.00 | 1.50 |", "slowest request ≤ 2× warm p99 | max 3.00 ms"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, md.String())
		}
	}
}
