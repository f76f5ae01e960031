package fanout

import (
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/opencontainers/go-digest"
)

// maxRetainedEntries caps the number of retained spools independently of
// their bytes, so that many tiny blobs cannot exhaust file descriptors.
const maxRetainedEntries = 256

// retention keeps recently completed, verified spools open so that the
// second pull of a layer right after the first (another node, a retry, a
// Range resume) is served without going upstream again. It is bounded by
// the bytes of the spools it holds; callers hold Group.mu.
type retention struct {
	max   int64
	bytes int64
	lru   *simplelru.LRU[digest.Digest, *download]
}

func newRetention(max int64) *retention {
	r := &retention{max: max}
	// NewLRU only fails for a non-positive size.
	r.lru, _ = simplelru.NewLRU(maxRetainedEntries, func(_ digest.Digest, d *download) {
		r.bytes -= d.size
		d.release()
	})
	return r
}

func (r *retention) get(dgst digest.Digest) *download {
	d, _ := r.lru.Get(dgst)
	return d
}

// add retains a verified download, evicting older ones beyond the budget.
// A blob larger than the whole budget is not kept at all.
func (r *retention) add(d *download) {
	if r.max <= 0 || d.size > r.max || r.lru.Contains(d.dgst) {
		return
	}
	r.makeRoom(d.size)
	d.acquire()
	r.bytes += d.size
	r.lru.Add(d.dgst, d)
}

// makeRoom evicts until n more bytes fit in the budget, so that retained
// spools plus a starting download stay within MaxSpoolBytes where possible.
func (r *retention) makeRoom(n int64) {
	for r.lru.Len() > 0 && r.bytes+max(n, 0) > r.max {
		r.lru.RemoveOldest()
	}
}

// evictOldest drops the least recently used spool; false if none is left.
func (r *retention) evictOldest() bool {
	_, _, ok := r.lru.RemoveOldest()
	return ok
}

func (r *retention) purge() { r.lru.Purge() }

// Verified reports whether a verified spool of dgst is retained on disk, and its size: such a
// blob can be described (HEAD) without asking upstream.
func (g *Group) Verified(dgst digest.Digest) (size int64, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	d, ok := g.keep.lru.Peek(dgst)
	if !ok {
		return 0, false
	}
	return d.size, true
}
