package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"
)

// dependency is one peer a built configuration needs: an upstream registry or its trust server.
// Its state is the outcome of the latest exchange with it, whether real traffic or a probe.
type dependency struct {
	Kind  string `json:"kind"` // "upstream" or "trust_server"
	Name  string `json:"name"` // the upstream's name
	URL   string `json:"url"`
	host  string
	probe string            // URL probed when traffic has not reached the peer recently
	rt    http.RoundTripper // the observed transport the probe goes through

	mu     sync.Mutex
	at     time.Time // zero: no outcome yet
	ok     bool
	detail string
}

// record keeps the outcome of one exchange with the peer.
func (d *dependency) record(ok bool, detail string) {
	d.mu.Lock()
	d.at, d.ok, d.detail = time.Now(), ok, detail
	d.mu.Unlock()
}

func (d *dependency) last() (at time.Time, ok bool, detail string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.at, d.ok, d.detail
}

// observed is a transport that records the outcome of every exchange with its dependency's host:
// a response below 500 means the peer is reachable and answering; a transport error or a 5xx
// means it is not. Requests to other hosts (a CDN an upstream redirects to) are not recorded.
type observed struct {
	rt  http.RoundTripper
	dep *dependency
}

func (o observed) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := o.rt.RoundTrip(req)
	if req.URL.Host != o.dep.host {
		return resp, err
	}
	switch {
	case err != nil:
		if req.Context().Err() == nil { // a client that went away says nothing about the peer
			o.dep.record(false, err.Error())
		}
	case resp.StatusCode >= 500:
		o.dep.record(false, fmt.Sprintf("%s %s: %s", req.Method, req.URL.Path, resp.Status))
	default:
		o.dep.record(true, "")
	}
	return resp, err
}

// health tracks one built configuration's dependencies and answers /readyz for it.
type health struct {
	deps     []*dependency
	trustDir string // "" or memoryTrustDir: nothing to check on disk
	interval time.Duration
	// optional lists the dependency kinds whose failure is reported but leaves the mirror ready.
	optional map[string]bool
	// extra are checks of other dependencies (the shared state store), run on every /readyz.
	extra []func(context.Context) check
}

// watch returns rt wrapped so that traffic through it updates a new dependency of kind for
// upstream name at rawURL, probed at probePath.
func (h *health) watch(kind, name, rawURL, probePath string, rt http.RoundTripper) (http.RoundTripper, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	p := *u
	p.Path = probePath
	d := &dependency{Kind: kind, Name: name, URL: rawURL, host: u.Host, probe: p.String()}
	d.rt = observed{rt: rt, dep: d}
	h.deps = append(h.deps, d)
	return d.rt, nil
}

// probeLoop probes, until ctx ends, every dependency that no exchange has reached within the
// interval: at once, then every interval. A probe sends no credentials; any answer below 500
// counts as reachable (an upstream's /v2/ answers 401 to anonymous clients).
func (h *health) probeLoop(ctx context.Context) {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		var wg sync.WaitGroup
		for _, d := range h.deps {
			if at, _, _ := d.last(); time.Since(at) < h.interval {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				pctx, cancel := context.WithTimeout(ctx, min(h.interval, 5*time.Second))
				defer cancel()
				req, err := http.NewRequestWithContext(pctx, http.MethodGet, d.probe, nil)
				if err != nil {
					d.record(false, err.Error())
					return
				}
				resp, err := (&http.Client{Transport: d.rt, CheckRedirect: noRedirects}).Do(req)
				if err != nil {
					if ctx.Err() == nil && pctx.Err() != nil {
						d.record(false, fmt.Sprintf("probe %s: no answer within %s", d.probe, min(h.interval, 5*time.Second)))
					}
					return
				}
				resp.Body.Close()
			}()
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// check is one line of /readyz's body.
type check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
	// Optional checks are reported but do not decide readiness (health.require_trust_servers: false).
	Optional bool `json:"optional,omitempty"`
	// For dependencies: the peer, and when the outcome shown was observed.
	Kind      string     `json:"kind,omitempty"`
	URL       string     `json:"url,omitempty"`
	LastCheck *time.Time `json:"last_check,omitempty"`
}

// readiness is /readyz's body.
type readiness struct {
	Ready  bool    `json:"ready"`
	Checks []check `json:"checks"`
}

// ready reports whether the configuration can serve: its trust_dir is writable and every
// dependency answered within three probe intervals. A dependency with no outcome yet is not
// ready: the first probe runs at start.
func (h *health) ready() []check {
	var out []check
	td := check{Name: "trust_dir", OK: true, Detail: h.trustDir}
	if h.trustDir != "" && h.trustDir != memoryTrustDir {
		f, err := os.CreateTemp(h.trustDir, ".readyz-*")
		if err != nil {
			td.OK, td.Detail = false, "not writable: "+err.Error()
		} else {
			f.Close()
			os.Remove(f.Name())
		}
	}
	out = append(out, td)
	stale := 3 * h.interval
	for _, d := range h.deps {
		at, ok, detail := d.last()
		c := check{Name: d.Kind + " " + d.Name, Kind: d.Kind, URL: d.URL, OK: ok, Detail: detail, Optional: h.optional[d.Kind]}
		switch {
		case at.IsZero():
			c.OK, c.Detail = false, "not reached yet"
		case time.Since(at) > stale:
			c.OK, c.Detail = false, fmt.Sprintf("no answer for %s", time.Since(at).Round(time.Second))
		}
		if !at.IsZero() {
			c.LastCheck = &at
		}
		out = append(out, c)
	}
	for _, f := range h.extra {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		out = append(out, f(ctx))
		cancel()
	}
	return out
}

// healthHandler serves /healthz (the process answers) and /readyz (the current configuration's
// checks, as JSON; 503 when any fails).
func healthHandler(rt *runtime) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		r := rt.readiness()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !r.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
	})
	return mux
}
