package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/trustgate/trustgate/bench"
	"github.com/trustgate/trustgate/internal/peers"
	"github.com/trustgate/trustgate/internal/tuftest"
)

// TTLRow is scenario 2b (issue #13): warm GETs of a signed tag by tag, in a closed loop of
// Concurrency clients, from a repository of Tags signed tags, on a trustgate whose trust_ttl
// either never expires during the run (variant A, the baseline), expires all the time with the
// trust data unchanged (B), or expires while the trust data is re-published every Republish
// (B': each refresh fetches and verifies the whole targets file again).
type TTLRow struct {
	Variant     string // "A", "B" or "B'"
	TTL         string // trust_ttl of the process
	Republish   string `json:",omitempty"` // B': one more tag signed and published this often
	Tags        int
	Concurrency int
	Rounds      int     // interleaved rounds; rates and percentiles are the median round's
	Seconds     float64 // total over the rounds
	Requests    int
	Errors      int
	FirstErr    string `json:",omitempty"`
	RPS         float64
	P50ms       float64
	P99ms       float64
	P999ms      float64
	MaxMs       float64 // slowest request of all rounds
	// TimestampGETs is timestamp.json requests at the trust server during the row: one per
	// refresh that trust_ttl expiries started. TargetsGETs is targets.json requests: refreshes
	// that found new trust data and verified the whole targets file again. Publishes is how many
	// times the trust data changed during the row.
	TimestampGETs int
	TargetsGETs   int
	Publishes     int
	// Per second of the row (rounds in order): the slowest request started in it, and the
	// timestamp and targets requests that reached the trust server in it.
	SecondMaxMs      []float64 `json:",omitempty"`
	SecondTimestamps []int     `json:",omitempty"`
	SecondTargets    []int     `json:",omitempty"`
	// With -ttl-notary-delay, the trust server answers timestamp.json only after that delay
	// (NotaryDelay), and OverDelay counts the requests that took at least as long: a request that
	// waited for a refresh is one of them.
	NotaryDelay string `json:",omitempty"`
	OverDelay   int    `json:",omitempty"`
	// StallMs is the longest the load generator itself was held up during the row: the most a
	// 1 ms sleep in it overslept (the worst round). Every request in flight then was held up as
	// long, whatever trustgate did.
	StallMs float64 `json:",omitempty"`
}

const ttlRepo = "library/many"

type ttlVariant struct {
	name      string
	ttl       time.Duration
	republish time.Duration // 0 = the trust data stays as it is
	notary    *bench.CountingProxy
	server    *tuftest.Server
	gate      *server
}

// ttlScenario measures whether a trust_ttl expiry makes any request wait. The trust server is
// internal/tuftest's (notary-server's read API, in this process): stock notary-server and its CLI
// sign one tag per invocation, too slow for thousands of tags. Every version B' publishes is
// signed before the rows start, so signing costs the load generator nothing while it measures.
func ttlScenario(root *scope, w *world, cfg config) []TTLRow {
	p := peers.PushImage(root, w.reg, ttlRepo, tag)
	g := gun(ttlRepo)
	repo := tuftest.NewRepo(root, g)
	for i := range cfg.ttlTags - 1 {
		repo.AddTargetDigest(tuftest.Targets, fmt.Sprintf("t%d", i), fmt.Sprintf("%064x", i), int64(1000+i))
	}
	repo.AddTargetDigest(tuftest.Targets, tag, p.Digest, p.Size)
	t0 := time.Now()
	first := repo.Publish()
	perRound := cfg.ttlDuration + cfg.ttlDuration/2 // the 32-client row and the 1-client row
	versions := make([]map[string][]byte, int(time.Duration(cfg.ttlRounds)*perRound/cfg.ttlRepublish)+2)
	for i := range versions {
		repo.AddTargetDigest(tuftest.Targets, fmt.Sprintf("new-%d", i), fmt.Sprintf("%064x", 1<<40+i), 1000)
		versions[i] = repo.Publish()
	}
	root.Logf("ttl: signed %d tags and %d later versions in %v (targets.json %d bytes)",
		cfg.ttlTags, len(versions), time.Since(t0).Round(time.Millisecond), len(first["targets.json"]))

	variants := []*ttlVariant{
		{name: "A", ttl: time.Hour},
		{name: "B", ttl: cfg.ttl},
		{name: "B'", ttl: cfg.ttl, republish: cfg.ttlRepublish},
	}
	for _, v := range variants {
		// Each variant has its own trust server and counting proxy, so B' publishing does not
		// change what A and B see, and counts are per variant.
		v.server = tuftest.Serve(root, g, first)
		cp, err := bench.StartCountingProxy(v.server.URL)
		if err != nil {
			root.Fatal(err)
		}
		root.Cleanup(func() { _ = cp.Close() })
		v.notary = cp
		sc := root.sub("ttl-" + v.name)
		root.Cleanup(sc.close)
		var rules []peers.GateRule
		if cfg.ttlRoles != "" {
			rules = []peers.GateRule{{Match: g, Mode: "enforce", Roles: strings.Split(cfg.ttlRoles, ",")}}
		}
		v.gate = w.gateTTL(sc, w.reg.URL, cp.URL, v.ttl, rules, "")
		prime(sc, v.gate.URL, p)
		if d := cfg.ttlNotaryDelay; d > 0 {
			srv := v.server
			srv.Override(g, "timestamp.json", tuftest.Response{Delay: d, Handler: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				_, _ = w.Write(srv.Files(g)["timestamp.json"])
			}})
		}
	}
	next := 0 // the next of versions to publish; B' only moves forward
	url := manifestURL("", p.Repo, p.Tag)

	run := func(v *ttlVariant, c int, d time.Duration) TTLRow {
		client := &http.Client{Transport: bench.NewTransport(c)}
		defer client.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), d+2*time.Minute)
		defer cancel()
		v.notary.Reset()
		pubs := 0
		var wg sync.WaitGroup
		stop := make(chan struct{})
		if v.republish > 0 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(v.republish)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						if next < len(versions) {
							v.server.Set(g, versions[next])
							next++
							pubs++
						}
					}
				}
			}()
		}
		var stall time.Duration
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				t0 := time.Now()
				time.Sleep(time.Millisecond)
				stall = max(stall, time.Since(t0)-time.Millisecond)
			}
		}()
		res := bench.Run(ctx, client, bench.Load{
			Concurrency: c, Duration: d, Want: http.StatusOK, Timeline: true,
			NewRequest: func(ctx context.Context) (*http.Request, error) {
				return manifestRequest(ctx, http.MethodGet, v.gate.URL+url)
			},
		})
		close(stop)
		wg.Wait()
		time.Sleep(100 * time.Millisecond) // a refresh the last requests started reaches the server
		ts, tg := v.notary.Arrivals(http.MethodGet, "tuf:timestamp"), v.notary.Arrivals(http.MethodGet, "tuf:targets")
		r := TTLRow{Variant: v.name, TTL: v.ttl.String(), Tags: cfg.ttlTags, Concurrency: c, Rounds: 1,
			Seconds: res.Elapsed.Seconds(), Requests: res.Requests, Errors: res.Errors, FirstErr: res.FirstErr, RPS: res.RPS(),
			P50ms: ms(res.Percentile(0.50)), P99ms: ms(res.Percentile(0.99)), P999ms: ms(res.Percentile(0.999)), MaxMs: ms(res.Percentile(1)),
			TimestampGETs: len(ts), TargetsGETs: len(tg), Publishes: pubs, StallMs: ms(stall)}
		if v.republish > 0 {
			r.Republish = v.republish.String()
		}
		if d := cfg.ttlNotaryDelay; d > 0 {
			r.NotaryDelay = d.String()
			r.OverDelay = len(res.Latencies) - sort.Search(len(res.Latencies), func(i int) bool { return res.Latencies[i] >= d })
		}
		for _, m := range bench.MaxPerInterval(res.Samples, time.Second) {
			r.SecondMaxMs = append(r.SecondMaxMs, ms(m))
		}
		r.SecondTimestamps = perSecond(res.Start, ts, len(r.SecondMaxMs))
		r.SecondTargets = perSecond(res.Start, tg, len(r.SecondMaxMs))
		var slowest bench.Sample
		for _, x := range res.Samples {
			if x.Latency > slowest.Latency {
				slowest = x
			}
		}
		root.Logf("ttl: %-2s ttl %-6s c=%-2d %8.0f req/s p50 %.3fms p99 %.3fms p99.9 %.3fms max %.1fms timestamp GETs %d targets GETs %d publishes %d over delay %d driver stall %.1fms (slowest started %s) errors %d %s",
			r.Variant, r.TTL, c, r.RPS, r.P50ms, r.P99ms, r.P999ms, r.MaxMs, r.TimestampGETs, r.TargetsGETs, r.Publishes, r.OverDelay, r.StallMs,
			res.Start.Add(slowest.Start).UTC().Format("15:04:05.000"), r.Errors, r.FirstErr)
		return r
	}

	type cell struct {
		c int
		d time.Duration
	}
	cells := []cell{{32, cfg.ttlDuration}, {1, cfg.ttlDuration / 2}}
	per := map[string][]TTLRow{}
	key := func(v *ttlVariant, cl cell) string { return fmt.Sprintf("%s|%d", v.name, cl.c) }
	for round := range cfg.ttlRounds {
		for _, cl := range cells {
			for i := range variants {
				v := variants[(i+round)%len(variants)]
				per[key(v, cl)] = append(per[key(v, cl)], run(v, cl.c, cl.d))
			}
		}
	}
	var rows []TTLRow
	for _, cl := range cells {
		for _, v := range variants {
			rows = append(rows, medianTTLRow(per[key(v, cl)]))
		}
	}
	return rows
}

// perSecond counts the times in each second from start, for n seconds (later ones count in the
// last).
func perSecond(start time.Time, at []time.Time, n int) []int {
	if n == 0 {
		return nil
	}
	out := make([]int, n)
	for _, t := range at {
		i := int(t.Sub(start) / time.Second)
		out[min(max(i, 0), n-1)]++
	}
	return out
}

// medianTTLRow combines the rounds of one row: the median of each rate and percentile, the
// maximum of max, the sum of counts, the per-second series one after the other.
func medianTTLRow(rs []TTLRow) TTLRow {
	if len(rs) == 0 {
		return TTLRow{}
	}
	out := rs[0]
	out.Rounds = len(rs)
	out.Seconds, out.Requests, out.Errors, out.TimestampGETs, out.TargetsGETs, out.Publishes, out.OverDelay = 0, 0, 0, 0, 0, 0, 0
	out.SecondMaxMs, out.SecondTimestamps, out.SecondTargets = nil, nil, nil
	var rps, p50, p99, p999, mx []float64
	for _, r := range rs {
		out.Seconds += r.Seconds
		out.Requests += r.Requests
		out.Errors += r.Errors
		out.TimestampGETs += r.TimestampGETs
		out.TargetsGETs += r.TargetsGETs
		out.Publishes += r.Publishes
		out.OverDelay += r.OverDelay
		out.StallMs = max(out.StallMs, r.StallMs)
		if out.FirstErr == "" {
			out.FirstErr = r.FirstErr
		}
		out.SecondMaxMs = append(out.SecondMaxMs, r.SecondMaxMs...)
		out.SecondTimestamps = append(out.SecondTimestamps, r.SecondTimestamps...)
		out.SecondTargets = append(out.SecondTargets, r.SecondTargets...)
		rps, p50, p99, p999, mx = append(rps, r.RPS), append(p50, r.P50ms), append(p99, r.P99ms), append(p999, r.P999ms), append(mx, r.MaxMs)
	}
	out.RPS, out.P50ms, out.P99ms, out.P999ms, out.MaxMs = median(rps), median(p50), median(p99), median(p999), slices.Max(mx)
	return out
}

func findTTL(rows []TTLRow, variant string, c int) (TTLRow, bool) {
	for _, r := range rows {
		if r.Variant == variant && r.Concurrency == c && r.Errors == 0 && r.Requests > 0 {
			return r, true
		}
	}
	return TTLRow{}, false
}

// secondsWhere summarises the per-second maxima of r in the seconds keep selects (by index):
// how many, their median and their worst.
func (r TTLRow) secondsWhere(keep func(i int) bool) (n int, med, worst float64) {
	var v []float64
	for i, m := range r.SecondMaxMs {
		if keep(i) {
			v = append(v, m)
		}
	}
	if len(v) == 0 {
		return 0, 0, 0
	}
	return len(v), median(v), slices.Max(v)
}

func at(v []int, i int) int {
	if i < len(v) {
		return v[i]
	}
	return 0
}

// ttlSection writes scenario 2b: the rows with their ratios to A's, then the per-second maxima.
func (r *Report) ttlSection(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	c := r.Config
	p("\n## 2b. Warm manifest by signed tag across trust_ttl expiries (issue #13)\n\n")
	p("Closed-loop GETs of a signed tag by tag in a repository of %s signed tags, as in scenario 2, on three trustgate processes side by side: ", c["ttlTags"])
	p("A with trust_ttl 1h (no expiry during the run: the warm baseline); B with trust_ttl %s (the state expires about once a second while requests keep coming; each expiry starts one background refresh that finds the timestamp unchanged); ", c["ttl"])
	p("B' the same while a new tag is signed and published every %s (timestamp, snapshot and targets change, so a refresh fetches and verifies the whole targets file again). ", c["ttlRepublish"])
	p("Each row is %s interleaved rounds of %s at 32 clients (half that at 1 client); req/s and percentiles are the median round's, max is the slowest request of all rounds. ", c["ttlRounds"], c["ttlDuration"])
	p("The trust server is internal/tuftest's (notary-server's read API, in the driver's process, every version signed before the rows start) behind a counting proxy per variant: timestamp GETs = refreshes started, targets GETs = full re-verifications.\n\n")
	if roles := c["ttlRoles"]; roles != "" {
		p("The repository's policy rule names its own Notary roles: `%s` (`-ttl-roles`), and the tag is signed in targets.\n\n", roles)
	}
	if d := c["ttlNotaryDelay"]; d != "" && d != "0s" {
		p("**Diagnostic run: the trust server answered every timestamp.json only after %s** (`-ttl-notary-delay`), so each refresh took at least that long; a request that waited for one took at least as long too, and is counted in \"≥ delay\" (A never refreshes: its count is the machine's own stalls).\n\n", d)
	}
	p("How to read it: a request that waited for a refresh would show in the max of B or of B' (a refresh of %s tags takes tens of ms); p99 and p99.9 show whether refreshes cost the others CPU. ", c["ttlTags"])
	p("The max of a run on a shared 2-core machine also catches GC pauses and scheduler stalls of any process (the load generator's too), so A's max, measured in the same rounds, is the fair baseline for \"slowest\": max ÷ max(A) near 1 means expiries add nothing beyond that noise. Driver stall is the longest the load generator itself was held up in the row (the most a 1 ms sleep in it overslept): every request in flight then looked that slow, whatever trustgate did.\n\n")
	p("| variant | trust_ttl | re-publish | clients | req/s | p50 ms | p99 ms | p99.9 ms | max ms | driver stall ms | p99 ÷ p99(A) | max ÷ p99(A) | max ÷ max(A) | requests | ≥ delay | timestamp GETs | targets GETs | publishes | errors |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	ratio := func(a, b float64) string {
		if b <= 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	for _, t := range r.TTL {
		p99, max99, maxMax := "–", "–", "–"
		if a, ok := findTTL(r.TTL, "A", t.Concurrency); ok {
			p99, max99, maxMax = ratio(t.P99ms, a.P99ms), ratio(t.MaxMs, a.P99ms), ratio(t.MaxMs, a.MaxMs)
		}
		over := "–"
		if t.NotaryDelay != "" {
			over = fmt.Sprint(t.OverDelay)
		}
		p("| %s | %s | %s | %d | %.0f | %.3f | %.3f | %.3f | %.1f | %.1f | %s | %s | %s | %d | %s | %d | %d | %d | %s |\n", t.Variant, t.TTL, dash(t.Republish), t.Concurrency,
			t.RPS, t.P50ms, t.P99ms, t.P999ms, t.MaxMs, t.StallMs, p99, max99, maxMax, t.Requests, over, t.TimestampGETs, t.TargetsGETs, t.Publishes, errs(t.Errors, t.FirstErr))
	}
	p("\nPer second of each row (rounds one after the other): the slowest request that started in that second, over all seconds, and split by what reached the trust server in that second.\n\n")
	p("| variant | clients | seconds | per-second max: median ms | worst ms | seconds with a re-verify (targets GET): n, median, worst ms | with only a re-check (timestamp GET): n, median, worst ms | with neither: n, median, worst ms |\n|---|---|---|---|---|---|---|---|\n")
	cellOf := func(n int, med, worst float64) string {
		if n == 0 {
			return "0"
		}
		return fmt.Sprintf("%d, %.1f, %.1f", n, med, worst)
	}
	for _, t := range r.TTL {
		n, med, worst := t.secondsWhere(func(int) bool { return true })
		if n == 0 {
			continue
		}
		rv := cellOf(t.secondsWhere(func(i int) bool { return at(t.SecondTargets, i) > 0 }))
		rc := cellOf(t.secondsWhere(func(i int) bool { return at(t.SecondTargets, i) == 0 && at(t.SecondTimestamps, i) > 0 }))
		none := cellOf(t.secondsWhere(func(i int) bool { return at(t.SecondTargets, i) == 0 && at(t.SecondTimestamps, i) == 0 }))
		p("| %s | %d | %d | %.1f | %.1f | %s | %s | %s |\n", t.Variant, t.Concurrency, n, med, worst, rv, rc, none)
	}
}

// ttlChecks states issue #13's target: the slowest request across trust_ttl expiries within 2×
// the warm p99 (A's, same clients).
func ttlChecks(rows []TTLRow) []Check {
	var cs []Check
	for _, c := range []int{32, 1} {
		for _, v := range []string{"B", "B'"} {
			what := "expiries, trust data unchanged"
			if v == "B'" {
				what = "expiries, trust data re-published"
			}
			target := fmt.Sprintf("trust_ttl %s (%s), %d client(s): slowest request ≤ 2× warm p99", v, what, c)
			a, ok1 := findTTL(rows, "A", c)
			b, ok2 := findTTL(rows, v, c)
			if !ok1 || !ok2 || a.P99ms <= 0 || a.MaxMs <= 0 {
				cs = append(cs, Check{target, "not measured (missing or failed row)", "n/a"})
				continue
			}
			cs = append(cs, Check{target,
				fmt.Sprintf("max %.2f ms vs A's p99 %.3f ms = %.1f× (A's own max: %.1f×); max ÷ max(A) %.2f×, p99 ÷ p99(A) %.2f×; %d refreshes, %d re-verifies",
					b.MaxMs, a.P99ms, b.MaxMs/a.P99ms, a.MaxMs/a.P99ms, b.MaxMs/a.MaxMs, b.P99ms/a.P99ms, b.TimestampGETs, b.TargetsGETs),
				verdict(b.MaxMs <= 2*a.P99ms)})
		}
	}
	return cs
}
