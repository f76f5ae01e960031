package main

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/trustgate/trustgate/bench"
)

// ColdRow is scenario 3: the first GET of a signed tag on a freshly started system (empty trust
// directory, empty caches), repeated Runs times with a new process each time.
type ColdRow struct {
	System   string
	Runs     int
	MedianMs float64
	MinMs    float64
	MaxMs    float64
	Errors   int
	FirstErr string `json:",omitempty"`
	// Requests that reached notary-server and the upstream for one first pull (counted by the
	// counting proxies; identical in every run or the row says so in CountsVary).
	Notary     int
	Upstream   int
	NotaryBy   bench.Counts
	UpstreamBy bench.Counts
	CountsVary bool `json:",omitempty"`
}

// HerdRow is scenario 4: Clients first pulls of the same tag (or blob) at the same moment.
type HerdRow struct {
	System     string
	What       string // "tag" or "blob"
	Clients    int
	OK         int
	FirstErr   string `json:",omitempty"`
	WallMs     float64
	Notary     int
	Upstream   int
	NotaryBy   bench.Counts
	UpstreamBy bench.Counts
}

// start returns the base URL of a fresh system in front of the counting proxies, or the counted
// upstream itself for "direct".
type starter func(sc *scope) string

func (w *world) starters() []struct {
	name  string
	start starter
} {
	return []struct {
		name  string
		start starter
	}{
		{"direct", func(*scope) string { return w.upCount.URL }},
		{"trustgate", func(sc *scope) string { return w.gate(sc, w.upCount.URL, w.notCount.URL).URL }},
		{"distribution proxy", func(sc *scope) string { return startDistProxy(sc, w.upCount.URL).URL }},
	}
}

func coldScenario(root *scope, w *world, runs int) []ColdRow {
	var rows []ColdRow
	for _, s := range w.starters() {
		r := ColdRow{System: s.name, Runs: runs}
		var lat []float64
		for i := range runs {
			sc := root.sub("cold-" + s.name)
			base := s.start(sc)
			w.upCount.Reset()
			w.notCount.Reset()
			client := &http.Client{Transport: bench.NewTransport(1)}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			t0 := time.Now()
			err := getManifest(ctx, client, manifestURL(base, w.small.Repo, w.small.Tag), w.small)
			el := time.Since(t0)
			cancel()
			client.CloseIdleConnections()
			if err != nil {
				r.Errors++
				if r.FirstErr == "" {
					r.FirstErr = err.Error()
				}
			} else {
				lat = append(lat, ms(el))
			}
			nc, uc := w.notCount.Counts(), w.upCount.Counts()
			if s.name == "direct" {
				uc = subtractOne(uc, "GET manifest-tag") // the client's own request
			}
			if i == 0 {
				r.Notary, r.Upstream, r.NotaryBy, r.UpstreamBy = nc.Total(), uc.Total(), nc, uc
			} else if nc.String() != r.NotaryBy.String() || uc.String() != r.UpstreamBy.String() {
				r.CountsVary = true
			}
			sc.close()
		}
		if len(lat) > 0 {
			slices.Sort(lat)
			r.MedianMs, r.MinMs, r.MaxMs = lat[len(lat)/2], lat[0], lat[len(lat)-1]
		}
		root.Logf("cold: %-20s median %.1fms (min %.1f max %.1f) notary %d [%s] upstream %d [%s] errors %d %s",
			r.System, r.MedianMs, r.MinMs, r.MaxMs, r.Notary, r.NotaryBy, r.Upstream, r.UpstreamBy, r.Errors, r.FirstErr)
		rows = append(rows, r)
	}
	return rows
}

func subtractOne(c bench.Counts, key string) bench.Counts {
	if c[key] > 0 {
		c[key]--
		if c[key] == 0 {
			delete(c, key)
		}
	}
	return c
}

func herdScenario(root *scope, w *world, n int) []HerdRow {
	var rows []HerdRow
	p := w.multi
	layer := p.Layers[0]
	herd := func(system, what, url string, hdr http.Header) HerdRow {
		w.upCount.Reset()
		w.notCount.Reset()
		client := &http.Client{Transport: bench.NewTransport(n)}
		defer client.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		wall, fs := bench.FetchAll(ctx, client, url, n, hdr)
		nc, uc := w.notCount.Counts(), w.upCount.Counts()
		r := HerdRow{System: system, What: what, Clients: n, WallMs: ms(wall),
			Notary: nc.Total(), Upstream: uc.Total(), NotaryBy: nc, UpstreamBy: uc}
		for _, f := range fs {
			if f.Err == nil {
				r.OK++
			} else if r.FirstErr == "" {
				r.FirstErr = f.Err.Error()
			}
		}
		root.Logf("herd: %-20s %-4s %d clients: ok %d, %.0fms, notary %d [%s], upstream %d [%s] %s",
			system, what, n, r.OK, r.WallMs, r.Notary, r.NotaryBy, r.Upstream, r.UpstreamBy, r.FirstErr)
		return r
	}
	accept := http.Header{"Accept": {manifestAccept}}
	for _, s := range w.starters() {
		if s.name == "direct" {
			continue // n requests upstream by definition
		}
		sc := root.sub("herd-" + s.name)
		base := s.start(sc)
		rows = append(rows, herd(s.name, "tag", manifestURL(base, p.Repo, p.Tag), accept))
		// The blob herd follows on the same process: the tag is now resolved (trustgate serves only
		// blobs reachable from a signed manifest), the blob has never been fetched.
		rows = append(rows, herd(s.name, "blob", blobURL(base, p.Repo, layer.Digest), nil))
		sc.close()
	}
	return rows
}
