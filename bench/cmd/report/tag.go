package main

import (
	"context"
	"net/http"
	"path/filepath"
	"time"

	"github.com/trustgate/trustgate/bench"
)

// TagRow is scenario 2: HEAD or GET of a signed tag, trust state and manifest warm, in a closed
// loop of Concurrency clients sharing one http.Transport.
type TagRow struct {
	System      string
	Method      string
	Concurrency int
	Seconds     float64
	Requests    int
	Errors      int
	FirstErr    string `json:",omitempty"`
	RPS         float64
	P50ms       float64
	P99ms       float64
	// UpstreamPerRequest is upstream registry requests (access log) per client request;
	// NotaryRequests is what reached notary-server during the row (trust_ttl re-checks).
	UpstreamPerRequest float64
	NotaryRequests     int
}

func tagScenario(root *scope, w *world, cfg config, out string, prof *[]Profile) []TagRow {
	var rows []TagRow
	url := func(base string) string { return manifestURL(base, w.small.Repo, w.small.Tag) }
	run := func(system, base, method string, c int, d time.Duration) TagRow {
		client := &http.Client{Transport: bench.NewTransport(c)}
		defer client.CloseIdleConnections()
		mark := w.reg.Log.Len()
		w.notCount.Reset()
		res := bench.Run(context.Background(), client, bench.Load{
			Concurrency: c, Duration: d, Want: http.StatusOK,
			NewRequest: func(ctx context.Context) (*http.Request, error) {
				return manifestRequest(ctx, method, url(base))
			},
		})
		time.Sleep(200 * time.Millisecond)
		r := TagRow{System: system, Method: method, Concurrency: c, Seconds: res.Elapsed.Seconds(),
			Requests: res.Requests, Errors: res.Errors, FirstErr: res.FirstErr, RPS: res.RPS(),
			P50ms: ms(res.Percentile(0.50)), P99ms: ms(res.Percentile(0.99)),
			NotaryRequests: w.notCount.Counts().Total()}
		if res.Requests > 0 {
			r.UpstreamPerRequest = float64(upstreamRequests(w.reg, mark)) / float64(res.Requests)
		}
		root.Logf("tag: %-20s %-4s c=%-2d %8.0f req/s p50 %.3fms p99 %.3fms upstream/req %.2f notary %d errors %d %s",
			system, method, c, r.RPS, r.P50ms, r.P99ms, r.UpstreamPerRequest, r.NotaryRequests, r.Errors, r.FirstErr)
		return r
	}
	all := func(system, base string) {
		for _, c := range []int{32, 1} {
			for _, m := range []string{http.MethodHead, http.MethodGet} {
				d := cfg.tagDuration
				if c == 1 {
					d = cfg.tagDuration / 2
				}
				rows = append(rows, run(system, base, m, c, d))
			}
		}
	}

	all("direct", w.reg.URL)

	sc := root.sub("tag-trustgate")
	g := w.gate(sc, w.reg.URL, w.notCount.URL)
	prime(sc, g.URL, w.small)
	all("trustgate", g.URL)
	// Profiled extra round on the same (warm) process, not in the table.
	if pr, err := startPerf(g.Pid(), filepath.Join(out, "perf-tag-get-c32.data")); err != nil {
		*prof = append(*prof, Profile{Scenario: "warm tag GET", Err: err.Error()})
	} else {
		run("trustgate (perf)", g.URL, http.MethodGet, 32, cfg.tagDuration)
		*prof = append(*prof, pr.stop("warm signed-tag GET, 32 clients (scenario 2)"))
	}
	sc.close()

	sc = root.sub("tag-distribution")
	d := startDistProxy(sc, w.reg.URL)
	prime(sc, d.URL, w.small)
	all("distribution proxy", d.URL)
	sc.close()
	return rows
}
