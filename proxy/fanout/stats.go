package fanout

import "sync/atomic"

// Stats are cumulative counters for tests, benchmarks and metrics.
type Stats struct {
	Fetches       int64 // downloads started: one per digest at a time
	Opens         int64 // upstream requests, resumes included
	Resumes       int64 // dropped upstream connections resumed with Range
	UpstreamBytes int64 // bytes received from upstream
	Joins         int64 // requests that joined a download in flight
	Hits          int64 // requests served from a retained verified spool
	Failures      int64 // downloads that failed (error, size lie, digest mismatch)
	Aborts        int64 // responses aborted after their headers because the download failed
	Retained      int   // verified spools currently retained
	RetainedBytes int64 // their total size
}

type counters struct {
	fetches, opens, resumes, upstreamBytes, joins, hits, failures, aborts atomic.Int64
}

// Stats returns a snapshot of the counters.
func (g *Group) Stats() Stats {
	g.mu.Lock()
	n, b := g.keep.lru.Len(), g.keep.bytes
	g.mu.Unlock()
	return Stats{
		Fetches:       g.stats.fetches.Load(),
		Opens:         g.stats.opens.Load(),
		Resumes:       g.stats.resumes.Load(),
		UpstreamBytes: g.stats.upstreamBytes.Load(),
		Joins:         g.stats.joins.Load(),
		Hits:          g.stats.hits.Load(),
		Failures:      g.stats.failures.Load(),
		Aborts:        g.stats.aborts.Load(),
		Retained:      n,
		RetainedBytes: b,
	}
}
