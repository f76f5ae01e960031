package cache_test

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/trustgate/trustgate/cache"
	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/resolver"
)

// gatedUpdater holds every Update until its gate is opened, counting them.
type gatedUpdater struct {
	inner   cache.Updater
	gate    chan struct{}
	started chan struct{}
}

func (g *gatedUpdater) Update(ctx context.Context, gun string) (*resolver.State, error) {
	g.started <- struct{}{}
	<-g.gate
	return g.inner.Update(ctx, gun)
}

// TestStaleStateAnswersWhileRefreshing: past the TTL, requests are answered from the verified
// state while one refresh runs; they do not wait for it.
func TestStaleStateAnswersWhileRefreshing(t *testing.T) {
	f := newFixture(t, 30*time.Second)
	rc, err := resolver.NewClient(resolver.Config{ServerURL: f.srv.URL, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedUpdater{inner: rc, gate: make(chan struct{}), started: make(chan struct{}, 10)}
	c, err := cache.New(g, cache.Options{TTL: 30 * time.Second, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	close(g.gate)
	old, err := c.Resolve(ctx, gun, "v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	<-g.started
	g.gate = make(chan struct{})

	f.repo.AddTarget("targets", "v1", []byte("manifest two"))
	f.srv.Set(gun, f.repo.Publish())
	f.clock.Add(time.Minute)
	done := make(chan error, 1)
	go func() {
		for range 20 {
			got, err := c.Resolve(ctx, gun, "v1", nil)
			if err == nil && got.Digest != old.Digest {
				err = errors.New("answer changed before the refresh was let through")
			}
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("requests waited for the refresh")
	}
	<-g.started // exactly one refresh started for 20 requests
	if len(g.started) != 0 {
		t.Fatalf("%d more refreshes started", len(g.started))
	}
	close(g.gate)
	c.Wait()
	got, err := c.Resolve(ctx, gun, "v1", nil)
	if err != nil || got.Digest == old.Digest {
		t.Fatalf("after the refresh: %s, %v; want the re-signed digest", got.Digest, err)
	}
}

// TestBackgroundRevocationEnforcedNextRequest: a refresh that finds a delegation's key revoked
// makes the next request refuse the tag it signed.
func TestBackgroundRevocationEnforcedNextRequest(t *testing.T) {
	f := newFixture(t, 30*time.Second)
	ctx := context.Background()
	key := tuftest.NewKey(t, tuftest.ECDSA)
	f.repo.AddDelegation("targets/releases", []*tuftest.Key{key}, []string{""}, 1)
	f.repo.AddTarget("targets/releases", "rel", []byte("released"))
	f.srv.Set(gun, f.repo.Publish())
	if _, err := f.cache.Resolve(ctx, gun, "rel", nil); err != nil {
		t.Fatal(err)
	}
	// Revoked: targets lists another key for releases; its file is still signed by the old one.
	f.repo.SetKeys("targets/releases", tuftest.NewKey(t, tuftest.ECDSA))
	f.repo.SignWith("targets/releases", key)
	f.srv.Set(gun, f.repo.Publish())
	f.clock.Add(time.Minute)
	if _, err := f.cache.Resolve(ctx, gun, "rel", nil); err != nil {
		t.Fatalf("the request that starts the refresh is answered from the verified state: %v", err)
	}
	f.cache.Wait()
	if _, err := f.cache.Resolve(ctx, gun, "rel", nil); !errors.Is(err, resolver.ErrTagNotSigned) {
		t.Fatalf("after the refresh found the revocation: %v, want not signed", err)
	}
}

// TestBackgroundRollbackFailsClosed: a refresh that finds the server replaying older trust
// data drops the state, so the next requests fail (503-class), not keep serving it.
func TestBackgroundRollbackFailsClosed(t *testing.T) {
	f := newFixture(t, 30*time.Second)
	ctx := context.Background()
	old := maps.Clone(f.srv.Files(gun))
	f.repo.AddTarget("targets", "v2", []byte("two"))
	f.srv.Set(gun, f.repo.Publish())
	f.clock.Add(time.Minute)
	if _, err := f.cache.Resolve(ctx, gun, "v1", nil); err != nil {
		t.Fatal(err)
	}
	f.cache.Wait()
	if _, err := f.cache.Resolve(ctx, gun, "v2", nil); err != nil {
		t.Fatalf("v2 after the refresh: %v", err)
	}

	f.srv.Set(gun, old) // replay
	f.clock.Add(time.Minute)
	if _, err := f.cache.Resolve(ctx, gun, "v1", nil); err != nil {
		t.Fatalf("the request that starts the refresh: %v", err)
	}
	f.cache.Wait()
	for i := range 2 {
		_, err := f.cache.Resolve(ctx, gun, "v1", nil)
		if !errors.Is(err, resolver.ErrRollback) || resolver.IsNotSigned(err) {
			t.Fatalf("request %d after the refresh found a rollback: %v, want ErrRollback", i, err)
		}
	}
}

// TestBackgroundTimestampOutageKeepsServing: a refresh that cannot reach the server for the
// timestamp keeps the verified state in service (the resolver falls back to its cached
// timestamp, as notary does), until its expiry.
func TestBackgroundTimestampOutageKeepsServing(t *testing.T) {
	f := newFixture(t, 30*time.Second)
	ctx := context.Background()
	want, err := f.cache.Resolve(ctx, gun, "v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.Override(gun, "timestamp.json", tuftest.Response{Status: 503})
	for range 3 {
		f.clock.Add(time.Minute)
		got, err := f.cache.Resolve(ctx, gun, "v1", nil)
		if err != nil || got.Digest != want.Digest {
			t.Fatalf("during an outage: %s, %v; want the verified %s", got.Digest, err, want.Digest)
		}
		f.cache.Wait()
	}
	if n := f.srv.Count(gun + "/timestamp.json"); n != 4 {
		t.Fatalf("timestamp asked %d times, want 4 (cold, then one refresh per TTL)", n)
	}
	f.clock.Add(15 * 24 * time.Hour)
	if _, err := f.cache.Resolve(ctx, gun, "v1", nil); err == nil {
		t.Fatal("served past the timestamp's expiry during an outage")
	}
}

// TestBackgroundPartialUpdateFailsClosed: a refresh that verifies a newer timestamp and then
// cannot fetch the snapshot it names drops the state (notary fails the update: the publisher
// replaced the state, perhaps to revoke), so the next request is a 503-class error.
func TestBackgroundPartialUpdateFailsClosed(t *testing.T) {
	f := newFixture(t, 30*time.Second)
	ctx := context.Background()
	if _, err := f.cache.Resolve(ctx, gun, "v1", nil); err != nil {
		t.Fatal(err)
	}
	f.repo.RemoveTarget("targets", "v1")
	files := f.repo.Publish()
	f.srv.Set(gun, files)
	f.srv.Override(gun, "snapshot."+tuftest.SHA256Hex(files["snapshot.json"])+".json", tuftest.Response{Status: 503})
	f.srv.Override(gun, "snapshot.json", tuftest.Response{Status: 503})
	f.clock.Add(time.Minute)
	if _, err := f.cache.Resolve(ctx, gun, "v1", nil); err != nil {
		t.Fatalf("the request that starts the refresh: %v", err)
	}
	f.cache.Wait()
	_, err := f.cache.Resolve(ctx, gun, "v1", nil)
	if !errors.Is(err, resolver.ErrUnavailable) || resolver.IsNotSigned(err) {
		t.Fatalf("after a partial refresh: %v, want ErrUnavailable", err)
	}
}

// recordingUpdater records the evictions the cache passes on.
type recordingUpdater struct {
	*resolver.Client
	evicted []string
}

func (r *recordingUpdater) Evict(gun string) bool {
	r.evicted = append(r.evicted, gun)
	return r.Client.Evict(gun)
}

// TestByteBudgetEvicts: past MaxBytes the least recently used repository is evicted, and with
// it the resolver's state; reloading it from the trust dir costs the timestamp request only.
func TestByteBudgetEvicts(t *testing.T) {
	f := newFixture(t, 30*time.Second)
	const other = "example.com/team/other"
	repo2 := tuftest.NewRepo(t, other, tuftest.WithNow(f.clock.Now))
	for i := range 100 {
		repo2.AddTarget("targets", "t"+string(rune('a'+i%26))+string(rune('a'+i/26)), []byte{byte(i)})
	}
	f.srv.Set(other, repo2.Publish())
	rc, err := resolver.NewClient(resolver.Config{ServerURL: f.srv.URL, Now: f.clock.Now, TrustDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	u := &recordingUpdater{Client: rc}
	c, err := cache.New(u, cache.Options{TTL: 30 * time.Second, Now: f.clock.Now, MaxBytes: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Resolve(ctx, gun, "v1", nil); err != nil {
		t.Fatal(err)
	}
	small := c.Bytes()
	if small <= 0 || small > 32<<10 {
		t.Fatalf("one small repository is estimated at %d bytes", small)
	}
	if _, err := c.Resolve(ctx, other, "taa", nil); err != nil {
		t.Fatal(err)
	}
	if len(u.evicted) != 1 || u.evicted[0] != gun {
		t.Fatalf("evicted %v, want [%s]", u.evicted, gun)
	}
	if b := c.Bytes(); b <= small {
		t.Fatalf("bytes after eviction %d, want the larger repository's alone", b)
	}
	f.srv.ResetRequests()
	if _, err := c.Resolve(ctx, gun, "v1", nil); err != nil {
		t.Fatal(err)
	}
	if reqs := f.srv.Requests(); len(reqs) != 1 || reqs[0] != gun+"/timestamp.json" {
		t.Fatalf("reloading an evicted repository requested %v, want the timestamp only", reqs)
	}
}
