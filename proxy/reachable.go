package proxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/opencontainers/go-digest"
)

// Bounds of reachability. A walk is one request's share of deriving a repository's reachable
// set: what it learns is kept (in memory and in the edge store), so a repository too large for
// one walk is derived over a few requests, each answered 503 until the digest is found or the
// set is complete.
const (
	walkFetches = 64       // manifests fetched upstream per walk
	walkBytes   = 32 << 20 // manifest bytes fetched upstream per walk
	// missingRetry is how long a reachable manifest the upstream has not got (404) reaches
	// nothing before it is asked for again.
	missingRetry = time.Minute
	maxReachable = 1 << 17 // digests in one repository's set
	// reachBudget bounds the digests remembered over all repositories (~100 bytes each);
	// beyond it the least recently used repositories' sets are dropped and derived again
	// (from stored edges) when next asked for.
	reachBudget = 1 << 20
)

var (
	errWalkBudget   = errors.New("deriving what is signed needs more manifests than one request may fetch; retry")
	errWalkTooLarge = fmt.Errorf("repository reaches more than %d digests from its signatures", maxReachable)
)

// reachability remembers, per (upstream, repository), what the repository's current signatures
// reach: the signed manifests, the entries of signed indexes, and the config and layers of every
// reachable manifest. It is derived from a Signatures value and replaced when the verifier
// returns one with different signed digests (re-sign, revocation), so it can never allow more
// than the trust state it was derived from. Nothing here is persisted: the edges it is walked
// over are (see EdgeStore), which makes a derivation after a restart cost no upstream request.
type reachability struct {
	mu     sync.Mutex // guards memos, total, and every memo's sigs and accounted
	memos  *lru.Cache[string, *reachMemo]
	total  int // digests accounted over all memos
	budget int
}

// reachMemo is one repository's derivation. roots is immutable; seen, queue and sizes are guarded
// by mu, which is never held across an upstream fetch or a store access, so a digest already
// reached is answered while a walk waits on the upstream. walking admits one walk at a time.
type reachMemo struct {
	roots map[digest.Digest]struct{}

	sigs      Signatures // guarded by reachability.mu
	accounted int        // guarded by reachability.mu: len(seen) as counted in total

	walking chan struct{} // holds a token while a walk runs; waiting for it respects the request's context

	mu    sync.Mutex
	seen  map[digest.Digest]digest.Digest // reachable so far → the signed digest it is reached from
	queue []digest.Digest                 // reachable manifests whose edges are not walked yet
	// sizes are the blob sizes the reachable manifests' descriptors state; -1 where two of them
	// disagree (no size is trusted then).
	sizes map[digest.Digest]int64
	// missing are reachable manifests the upstream answered 404 for: they reach nothing until
	// the time given, when a walk asks for them again.
	missing map[digest.Digest]time.Time
}

func newReachability(size int) (*reachability, error) {
	r := &reachability{budget: reachBudget}
	// Evictions happen inside memos.Add and memos.RemoveOldest, always with r.mu held.
	c, err := lru.NewWithEvict(size, func(_ string, m *reachMemo) { r.total -= m.accounted })
	if err != nil {
		return nil, err
	}
	r.memos = c
	return r, nil
}

// memo returns the derivation for key under sigs: the one it has if sigs is the same value or
// signs the same digests, else a new one.
func (r *reachability) memo(key string, sigs Signatures) *reachMemo {
	r.mu.Lock()
	m, ok := r.memos.Get(key)
	if ok && sameSignatures(m.sigs, sigs) {
		r.mu.Unlock()
		return m
	}
	r.mu.Unlock()

	roots := map[digest.Digest]struct{}{}
	all, _ := sigs.All() // a signature that does not verify is no root (reachable reports it)
	for _, s := range all {
		roots[s.Digest] = struct{}{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if m, ok := r.memos.Get(key); ok && maps.Equal(m.roots, roots) {
		m.sigs = sigs
		return m
	} else if ok {
		r.memos.Remove(key) // evict callback: total -= accounted
	}
	m = &reachMemo{sigs: sigs, roots: roots, walking: make(chan struct{}, 1), seen: make(map[digest.Digest]digest.Digest, len(roots)), sizes: map[digest.Digest]int64{}, missing: map[digest.Digest]time.Time{}}
	for d := range roots {
		m.seen[d] = d
		m.queue = append(m.queue, d)
	}
	r.memos.Add(key, m)
	return m
}

// sameSignatures reports whether a and b are the same value. A Verifier's Signatures need not be
// comparable (a struct holding a slice): == on such values panics, so they are never the same.
func sameSignatures(a, b Signatures) bool {
	ta := reflect.TypeOf(a)
	return ta == reflect.TypeOf(b) && ta != nil && ta.Comparable() && a == b
}

// account records that m now holds n digests and drops the least recently used other sets while
// the total is over budget.
func (r *reachability) account(key string, m *reachMemo, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, ok := r.memos.Peek(key); !ok || cur != m {
		return // replaced or evicted meanwhile: not counted
	}
	r.total += n - m.accounted
	m.accounted = n
	for r.total > r.budget && r.memos.Len() > 1 {
		if _, oldest, ok := r.memos.GetOldest(); !ok || oldest == m {
			break
		}
		r.memos.RemoveOldest()
	}
}

// walkBudget is what one walk may still fetch upstream.
type walkBudget struct {
	fetches int
	bytes   int64
}

// reachable reports whether d is signed in ref's repository under sigs, the signed digest it is
// reached from, and its size as the descriptors that reach it state (-1 if unknown). Edges come from the edge store; a manifest whose edges are unknown is fetched by
// digest (hash-verified) within the walk's budget. A signed manifest the upstream does not have
// reaches nothing; it is asked for again after missingRetry. A digest not reached while some signature did not verify is an error (503),
// not unsigned.
func (s *Server) reachable(ctx context.Context, ref repoRef, sigs Signatures, d digest.Digest) (root digest.Digest, size int64, ok bool, err error) {
	key := ref.up.cfg.Name + "\x00" + ref.repo
	m := s.reach.memo(key, sigs)
	lookup := func() (digest.Digest, int64, bool, int) {
		m.mu.Lock()
		defer m.mu.Unlock()
		root, ok := m.seen[d]
		size, known := m.sizes[d]
		if !known {
			size = -1
		}
		return root, size, ok, len(m.seen)
	}
	root, size, ok, n := lookup()
	if !ok {
		select {
		case m.walking <- struct{}{}:
			ok, err = s.walk(ctx, ref, m, d)
			<-m.walking
			root, size, _, n = lookup()
		case <-ctx.Done():
			err = fmt.Errorf("waiting for another request deriving what is signed: %w", context.Cause(ctx))
		}
	}
	s.reach.account(key, m, n)
	if !ok && err == nil {
		// Not reached by any verified signature; if one did not verify, d may be its.
		_, err = sigs.All()
	}
	return root, size, ok, err
}

// walk expands m until d is found, the graph is exhausted, or the walk's budget is spent. The
// caller holds m.walking, so only this walk changes m; it holds m.mu except while it fetches.
func (s *Server) walk(ctx context.Context, ref repoRef, m *reachMemo, d digest.Digest) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.seen[d]; ok {
		return true, nil
	}
	if len(m.seen) > maxReachable {
		return false, errWalkTooLarge // walking on would grow the set by a manifest per request
	}
	now := s.now()
	for c, at := range m.missing {
		if !now.Before(at) {
			delete(m.missing, c)
			m.queue = append(m.queue, c)
		}
	}
	budget := walkBudget{fetches: walkFetches, bytes: walkBytes}
	// A manifest that can't be fetched now (upstream trouble) is set aside so the rest of the
	// graph is still walked; it stays queued for the next request, and its error is returned
	// only if d is not found elsewhere.
	var failed []digest.Digest
	var firstErr error
	defer func() { m.queue = append(m.queue, failed...) }()
	for len(m.queue) > 0 {
		next := m.queue[0]
		root := m.seen[next]
		m.mu.Unlock()
		e, err := s.edges(ctx, ref, next, &budget)
		m.mu.Lock()
		switch {
		case errors.Is(err, errWalkBudget):
			return false, err
		case errors.Is(err, errNotFound):
			e = Edges{} // signed, but gone upstream: reaches nothing for now
			m.missing[next] = now.Add(missingRetry)
		case err != nil:
			m.queue = m.queue[1:]
			failed = append(failed, next)
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		m.queue = m.queue[1:]
		for _, c := range e.Manifests {
			if _, ok := m.seen[c]; !ok {
				m.seen[c] = root
				m.queue = append(m.queue, c)
			}
		}
		for i, b := range e.Blobs {
			if _, ok := m.seen[b]; !ok {
				m.seen[b] = root
			}
			if n, ok := e.size(i); ok {
				if old, had := m.sizes[b]; !had {
					m.sizes[b] = n
				} else if old != n {
					m.sizes[b] = -1
				}
			}
		}
		if _, ok := m.seen[d]; ok {
			return true, nil
		}
		if len(m.seen) > maxReachable {
			return false, errWalkTooLarge
		}
	}
	return false, firstErr
}

// edges returns manifest d's edges, from the edge store or by fetching d.
func (s *Server) edges(ctx context.Context, ref repoRef, d digest.Digest, b *walkBudget) (Edges, error) {
	store := s.graph[ref.up.cfg.Name]
	if e, ok := store.get(ctx, d); ok {
		return e, nil
	}
	if b.fetches <= 0 || b.bytes <= 0 {
		return Edges{}, errWalkBudget
	}
	b.fetches--
	m, _, err := s.manifests.byDigest(ctx, ref.up, ref.repo, d)
	if err != nil {
		return Edges{}, err
	}
	b.bytes -= int64(len(m.body))
	e := edgesOf(m.body)
	store.record(ctx, d, e)
	return e, nil
}

// learn records the edges of a verified manifest about to be served (its bytes were hashed).
func (s *Server) learn(ctx context.Context, up *upstream, m *manifest) {
	store := s.graph[up.cfg.Name]
	if !store.mem.Contains(m.digest) {
		store.record(ctx, m.digest, edgesOf(m.body))
	}
}
