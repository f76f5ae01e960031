package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/resolver"
)

// BenchmarkResolveWarm is the per-request cost of a warm signed-tag resolution: the trust state
// is cached (TTL not reached), so this is LRU lookup, expiry check and the role walk, with no
// network. Parallel runs show lock contention between request goroutines. `make bench` runs it
// with a CPU profile; nothing is asserted about speed.
func BenchmarkResolveWarm(b *testing.B) {
	const gun = "docker.io/library/bench"
	repo := tuftest.NewRepo(b, gun)
	sum := sha256.Sum256([]byte("manifest"))
	want := "sha256:" + hex.EncodeToString(sum[:])
	repo.AddTargetDigest("targets", "v1", want, 528)
	srv := tuftest.Serve(b, gun, repo.Publish())
	rc, err := resolver.NewClient(resolver.Config{ServerURL: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	c, err := New(rc, Options{TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	// resolve reports with Errorf: RunParallel's goroutines must not call Fatal.
	resolve := func(b *testing.B) bool {
		t, err := c.Resolve(ctx, gun, "v1", resolver.DefaultRoles)
		if err != nil || t.Digest.String() != want {
			b.Errorf("Resolve = %v, %v", t.Digest, err)
			return false
		}
		return true
	}
	if !resolve(b) { // cold: fills the cache
		b.FailNow()
	}
	srv.ResetRequests()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !resolve(b) {
				return
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !resolve(b) {
					return
				}
			}
		})
	})
	if n := len(srv.Requests()); n != 0 {
		b.Fatalf("warm resolutions reached the trust server %d times", n)
	}
}
