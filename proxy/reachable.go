package proxy

import (
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/opencontainers/go-digest"
)

// maxReachablePerRepo bounds one repository's set; a repository with more reachable objects than
// this (thousands of signed tags) loses older entries, and a client then re-pulls by tag.
const maxReachablePerRepo = 1 << 16

// reachability records, per (upstream, repository), the digests that may be served in enforce
// mode: signed manifests and everything reachable from them. It lives in memory only: after a
// restart a by-digest pull succeeds only once a signed tag of the repository has been resolved
// again (docker and containerd always ask for the tag first; "pull repo@sha256:..." on a fresh
// trustgate is refused until someone pulls a signed tag that reaches it).
type reachability struct {
	repos *lru.Cache[string, *digestSet]
	mu    sync.Mutex // serialises creation of a repository's set
}

type digestSet struct {
	mu sync.Mutex
	m  map[digest.Digest]struct{}
}

func newReachability(size int) (*reachability, error) {
	c, err := lru.New[string, *digestSet](size)
	if err != nil {
		return nil, err
	}
	return &reachability{repos: c}, nil
}

func reachKey(up, repo string) string { return up + "\x00" + repo }

func (r *reachability) add(up, repo string, ds ...digest.Digest) {
	if len(ds) == 0 {
		return
	}
	k := reachKey(up, repo)
	r.mu.Lock()
	set, ok := r.repos.Get(k)
	if !ok {
		set = &digestSet{m: map[digest.Digest]struct{}{}}
		r.repos.Add(k, set)
	}
	r.mu.Unlock()
	set.mu.Lock()
	defer set.mu.Unlock()
	for _, d := range ds {
		if len(set.m) >= maxReachablePerRepo {
			for old := range set.m {
				delete(set.m, old)
				break
			}
		}
		set.m[d] = struct{}{}
	}
}

func (r *reachability) has(up, repo string, d digest.Digest) bool {
	set, ok := r.repos.Get(reachKey(up, repo))
	if !ok {
		return false
	}
	set.mu.Lock()
	defer set.mu.Unlock()
	_, ok = set.m[d]
	return ok
}
