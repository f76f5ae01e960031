package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"time"

	"github.com/trustgate/trustgate/bench"
)

// TagRow is scenario 2: HEAD or GET of a signed tag, trust state and manifest warm, in a closed
// loop of Concurrency clients sharing one http.Transport.
type TagRow struct {
	System      string
	Method      string
	Concurrency int
	Rounds      int     // interleaved rounds; rates and percentiles are the median round's
	Seconds     float64 // total over the rounds
	Requests    int
	Errors      int
	FirstErr    string `json:",omitempty"`
	RPS         float64
	P50ms       float64
	P99ms       float64
	MaxMs       float64 // slowest request of all rounds
	// UpstreamPerRequest is upstream registry requests (access log) per client request;
	// NotaryRequests is what reached notary-server during the row (trust_ttl re-checks).
	UpstreamPerRequest float64
	NotaryRequests     int
}

func tagScenario(root *scope, w *world, cfg config, out string, prof *[]Profile) []TagRow {
	url := func(base string) string { return manifestURL(base, w.small.Repo, w.small.Tag) }
	run := func(system, base, method string, c int, d time.Duration) TagRow {
		client := &http.Client{Transport: bench.NewTransport(c)}
		defer client.CloseIdleConnections()
		mark := w.reg.Log.Len()
		w.notCount.Reset()
		ctx, cancel := context.WithTimeout(context.Background(), d+2*time.Minute)
		defer cancel()
		res := bench.Run(ctx, client, bench.Load{
			Concurrency: c, Duration: d, Want: http.StatusOK,
			NewRequest: func(ctx context.Context) (*http.Request, error) {
				return manifestRequest(ctx, method, url(base))
			},
		})
		time.Sleep(100 * time.Millisecond)
		r := TagRow{System: system, Method: method, Concurrency: c, Rounds: 1, Seconds: res.Elapsed.Seconds(),
			Requests: res.Requests, Errors: res.Errors, FirstErr: res.FirstErr, RPS: res.RPS(),
			P50ms: ms(res.Percentile(0.50)), P99ms: ms(res.Percentile(0.99)), MaxMs: ms(res.Percentile(1)),
			NotaryRequests: w.notCount.Counts().Total()}
		if res.Requests > 0 {
			r.UpstreamPerRequest = float64(upstreamRequests(w.reg, mark)) / float64(res.Requests)
		}
		root.Logf("tag: %-20s %-4s c=%-2d %8.0f req/s p50 %.3fms p99 %.3fms max %.1fms upstream/req %.2f notary %d errors %d %s",
			system, method, c, r.RPS, r.P50ms, r.P99ms, r.MaxMs, r.UpstreamPerRequest, r.NotaryRequests, r.Errors, r.FirstErr)
		return r
	}

	// All three systems run for the whole scenario, and the rows are measured in interleaved
	// rounds (direct, trustgate, distribution; next round starting one system later): background
	// load that comes and goes then hits every system alike, and the median round is reported.
	gsc := root.sub("tag-trustgate")
	defer gsc.close()
	g := w.gate(gsc, w.reg.URL, w.notCount.URL)
	prime(gsc, g.URL, w.small)
	dsc := root.sub("tag-distribution")
	defer dsc.close()
	d := startDistProxy(dsc, w.reg.URL)
	prime(dsc, d.URL, w.small)
	systems := []struct{ name, base string }{{"direct", w.reg.URL}, {"trustgate", g.URL}, {"distribution proxy", d.URL}}

	type cell struct {
		method string
		c      int
		d      time.Duration
	}
	var cells []cell
	for _, c := range []int{32, 1} {
		for _, m := range []string{http.MethodHead, http.MethodGet} {
			dur := cfg.tagDuration
			if c == 1 {
				dur /= 2
			}
			cells = append(cells, cell{m, c, dur})
		}
	}
	per := map[string][]TagRow{}
	key := func(system string, cl cell) string { return fmt.Sprintf("%s|%s|%d", system, cl.method, cl.c) }
	for round := range cfg.rounds {
		for _, cl := range cells {
			for i := range systems {
				s := systems[(i+round)%len(systems)]
				per[key(s.name, cl)] = append(per[key(s.name, cl)], run(s.name, s.base, cl.method, cl.c, cl.d))
			}
		}
	}
	var rows []TagRow
	for _, s := range systems {
		for _, cl := range cells {
			rows = append(rows, medianTagRow(per[key(s.name, cl)]))
		}
	}

	// Profiled extra round on the warm trustgate, not in the table.
	if pr, err := startPerf(g.Pid(), filepath.Join(out, "perf-tag-get-c32.data")); err != nil {
		*prof = append(*prof, Profile{Scenario: "warm tag GET", Err: err.Error()})
	} else {
		run("trustgate (perf)", g.URL, http.MethodGet, 32, cfg.tagDuration)
		*prof = append(*prof, pr.stop("warm signed-tag GET, 32 clients (scenario 2)"))
	}
	return rows
}

// medianTagRow combines the rounds of one row: the median of each rate and percentile, the sum of
// counts.
func medianTagRow(rs []TagRow) TagRow {
	if len(rs) == 0 {
		return TagRow{}
	}
	out := rs[0]
	out.Rounds = len(rs)
	out.Seconds, out.Requests, out.Errors, out.NotaryRequests, out.UpstreamPerRequest = 0, 0, 0, 0, 0
	var rps, p50, p99, mx []float64
	for _, r := range rs {
		out.Seconds += r.Seconds
		out.Requests += r.Requests
		out.Errors += r.Errors
		out.NotaryRequests += r.NotaryRequests
		out.UpstreamPerRequest += r.UpstreamPerRequest / float64(len(rs))
		if out.FirstErr == "" {
			out.FirstErr = r.FirstErr
		}
		rps, p50, p99, mx = append(rps, r.RPS), append(p50, r.P50ms), append(p99, r.P99ms), append(mx, r.MaxMs)
	}
	out.RPS, out.P50ms, out.P99ms, out.MaxMs = median(rps), median(p50), median(p99), slices.Max(mx)
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
