package proxy

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/trustgate/trustgate/cache"
	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/resolver"
)

// TestEvictedStateIsCollectable: the notary verifier's views of a trust state do not keep the
// state alive once the trust cache has evicted it (memory stays within cache.trust_bytes), while
// a state still in the cache keeps its view.
func TestEvictedStateIsCollectable(t *testing.T) {
	const a, b, c = "example.com/team/a", "example.com/team/b", "example.com/team/c"
	srv := tuftest.NewServer(t)
	for _, gun := range []string{a, b, c} {
		r := tuftest.NewRepo(t, gun)
		r.AddTarget("targets", "v1", []byte(gun))
		srv.Set(gun, r.Publish())
	}
	rc, err := resolver.NewClient(resolver.Config{ServerURL: srv.URL, TrustDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := cache.New(rc, cache.Options{TTL: time.Hour, Size: 1})
	if err != nil {
		t.Fatal(err)
	}
	v := newNotaryVerifier(NotaryStates(tc.State), time.Now)
	ctx := context.Background()
	dec := policy.Decision{Mode: policy.Enforce, Notary: &policy.NotaryRule{}}

	collected := make(chan struct{})
	func() {
		sigs, err := v.Signatures(ctx, a, dec)
		if err != nil {
			t.Fatal(err)
		}
		if all, err := sigs.All(); err != nil || len(all) != 1 {
			t.Fatalf("All: %v, %v", all, err)
		}
		again, err := v.Signatures(ctx, a, dec)
		if err != nil {
			t.Fatal(err)
		}
		if again != sigs {
			t.Error("a second request on the same state built a new view")
		}
		st, err := tc.State(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		runtime.AddCleanup(st, func(ch chan struct{}) { close(ch) }, collected)
	}()
	// b evicts a, c evicts b: golang-lru keeps the value it last evicted (in its eviction buffer)
	// until it evicts another.
	for _, gun := range []string{b, c} {
		if _, err := v.Signatures(ctx, gun, dec); err != nil {
			t.Fatal(err)
		}
	}
	// The verifier and the cache stay in use, as in a running server.
	defer runtime.KeepAlive(v)
	defer runtime.KeepAlive(tc)
	for range 20 {
		runtime.GC()
		select {
		case <-collected:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Error("the evicted state is still reachable after 20 collections")
}
