package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// NewTransport is the client transport every scenario shares: enough idle connections per host
// that a closed loop of n workers reuses its connections instead of measuring TCP handshakes, no
// transparent gzip (registries' responses must arrive as sent), no proxy from the environment.
func NewTransport(n int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4 * n,
		MaxIdleConnsPerHost: max(n, 32),
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
		ReadBufferSize:      64 << 10,
		WriteBufferSize:     64 << 10,
	}
}

// Load describes a closed-loop run: Concurrency workers each send a request, read the whole
// response, and send the next, until Duration has passed.
type Load struct {
	Concurrency int
	Duration    time.Duration
	// NewRequest builds one request; it is called for every request.
	NewRequest func(ctx context.Context) (*http.Request, error)
	// Want is the status a successful response has.
	Want int
	// Timeline keeps every request's start and latency in LoadResult.Samples, in start order per
	// worker, so the latency around a moment of the run (a trust expiry) can be looked at.
	Timeline bool
}

// Sample is one request of a Timeline run: when it started (from the start of the run) and how
// long it took.
type Sample struct {
	Start   time.Duration
	Latency time.Duration
}

// LoadResult is what a run measured. Latencies are sorted ascending.
type LoadResult struct {
	Requests  int
	Errors    int
	FirstErr  string
	Start     time.Time // when the run started; Sample.Start counts from it
	Elapsed   time.Duration
	Latencies []time.Duration
	Samples   []Sample // with Load.Timeline, unsorted
}

// RPS is successful requests per second.
func (r LoadResult) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests-r.Errors) / r.Elapsed.Seconds()
}

// Percentile returns the q-quantile (0..1) of the latencies, by nearest rank.
func (r LoadResult) Percentile(q float64) time.Duration { return Percentile(r.Latencies, q) }

// Percentile returns the q-quantile (0 ≤ q ≤ 1) of sorted by the nearest-rank method; 0 if empty.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(q*float64(len(sorted)) + 0.999999999)
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Run executes l with client. Every response body is read to the end so connections are reused,
// as a registry client does. When Duration has passed no new request is started, but requests in
// flight are completed and counted: dropping them would hide exactly the slowest ones. ctx bounds
// everything (a stuck server).
func Run(ctx context.Context, client *http.Client, l Load) LoadResult {
	type worker struct {
		lat      []time.Duration
		samples  []Sample
		errs     int
		firstErr string
	}
	ws := make([]worker, l.Concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(l.Duration)
	for i := range ws {
		wg.Add(1)
		go func(w *worker) {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(deadline) {
				t0 := time.Now()
				err := once(ctx, client, l)
				el := time.Since(t0)
				w.lat = append(w.lat, el)
				if l.Timeline {
					w.samples = append(w.samples, Sample{Start: t0.Sub(start), Latency: el})
				}
				if err != nil {
					w.errs++
					if w.firstErr == "" {
						w.firstErr = err.Error()
					}
				}
			}
		}(&ws[i])
	}
	wg.Wait()
	res := LoadResult{Start: start, Elapsed: time.Since(start)}
	for _, w := range ws {
		res.Latencies = append(res.Latencies, w.lat...)
		res.Samples = append(res.Samples, w.samples...)
		res.Errors += w.errs
		if res.FirstErr == "" {
			res.FirstErr = w.firstErr
		}
	}
	res.Requests = len(res.Latencies)
	slices.Sort(res.Latencies)
	return res
}

func once(ctx context.Context, client *http.Client, l Load) error {
	req, err := l.NewRequest(ctx)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != l.Want {
		return fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
	}
	return err
}

// MaxPerInterval returns, for each interval of width from the start of the run, the slowest
// request that started in it (0 for an interval in which none started).
func MaxPerInterval(samples []Sample, width time.Duration) []time.Duration {
	var out []time.Duration
	for _, s := range samples {
		i := int(s.Start / width)
		if i < 0 {
			continue
		}
		for len(out) <= i {
			out = append(out, 0)
		}
		out[i] = max(out[i], s.Latency)
	}
	return out
}
