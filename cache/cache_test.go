package cache_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/cache"
	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/resolver"
)

// clock is a settable time shared by the resolver (expiry checks) and the cache (TTL), so tests
// move time instead of sleeping.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock    { c := &clock{}; c.ns.Store(t.UnixNano()); return c }
func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

type fixture struct {
	repo  *tuftest.Repo
	srv   *tuftest.Server
	clock *clock
	cache *cache.Cache
}

const gun = "example.com/team/app"

func newFixture(t *testing.T, ttl time.Duration) *fixture {
	t.Helper()
	clk := newClock(time.Now())
	repo := tuftest.NewRepo(t, gun, tuftest.WithNow(clk.Now))
	repo.AddTarget("targets", "v1", []byte("manifest one"))
	srv := tuftest.Serve(t, gun, repo.Publish())
	rc, err := resolver.NewClient(resolver.Config{ServerURL: srv.URL, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(rc, cache.Options{TTL: ttl, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{repo: repo, srv: srv, clock: clk, cache: c}
}

func TestWarmResolutionCostsNoRequests(t *testing.T) {
	f := newFixture(t, 30*time.Second)
	ctx := context.Background()
	first, err := f.cache.Resolve(ctx, gun, "v1", resolver.DefaultRoles)
	if err != nil {
		t.Fatal(err)
	}
	cold := len(f.srv.Requests())
	if cold == 0 {
		t.Fatal("a cold resolution made no request")
	}
	for i := 0; i < 50; i++ {
		f.clock.Add(100 * time.Millisecond) // 5s in all, inside the TTL
		got, err := f.cache.Resolve(ctx, gun, "v1", resolver.DefaultRoles)
		if err != nil || got.Digest != first.Digest {
			t.Fatalf("warm resolution %d: %v, %v", i, got.Digest, err)
		}
	}
	if n := len(f.srv.Requests()); n != cold {
		t.Fatalf("warm resolutions made %d requests, want 0", n-cold)
	}
}

func TestReSignedTagSeenAfterTTL(t *testing.T) {
	f := newFixture(t, 30*time.Second)
	ctx := context.Background()
	old, err := f.cache.Resolve(ctx, gun, "v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	f.repo.AddTarget("targets", "v1", []byte("manifest two"))
	f.srv.Set(gun, f.repo.Publish())

	f.clock.Add(29 * time.Second)
	if got, _ := f.cache.Resolve(ctx, gun, "v1", nil); got.Digest != old.Digest {
		t.Fatalf("inside the TTL the cached answer should stand; got %s", got.Digest)
	}
	f.srv.ResetRequests()
	f.clock.Add(2 * time.Second)
	// Past the TTL the request is answered from the verified state, which is still within its
	// expiry, while one refresh runs in the background; what it verifies is the next answer.
	if got, err := f.cache.Resolve(ctx, gun, "v1", nil); err != nil || got.Digest != old.Digest {
		t.Fatalf("the request that starts the refresh: got %s, %v; want the verified %s without waiting", got.Digest, err, old.Digest)
	}
	f.cache.Wait()
	got, err := f.cache.Resolve(ctx, gun, "v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest == old.Digest {
		t.Fatalf("after the refresh the re-signed digest should be seen; still %s", got.Digest)
	}
	if n := f.srv.Count(gun + "/timestamp.json"); n != 1 {
		t.Fatalf("refresh fetched timestamp.json %d times, want 1 (requests: %v)", n, f.srv.Requests())
	}
}

func TestConcurrentColdResolutionsShareOneChain(t *testing.T) {
	f := newFixture(t, 30*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.cache.Resolve(context.Background(), gun, "v1", nil); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, name := range []string{"root.json", "timestamp.json"} {
		if n := f.srv.Count(gun + "/" + name); n != 1 {
			t.Errorf("%s fetched %d times by 100 concurrent resolutions, want 1 (requests: %v)", name, n, f.srv.Requests())
		}
	}
}

func TestExpiredStateIsNotServed(t *testing.T) {
	f := newFixture(t, 30*24*time.Hour)
	ctx := context.Background()
	if _, err := f.cache.Resolve(ctx, gun, "v1", nil); err != nil {
		t.Fatal(err)
	}
	// The timestamp expires after 14 days; the TTL alone would keep serving for 30.
	f.clock.Add(14*24*time.Hour + time.Minute)
	f.srv.Override(gun, "timestamp.json", tuftest.Response{Status: 503})
	_, err := f.cache.Resolve(ctx, gun, "v1", nil)
	if err == nil || resolver.IsNotSigned(err) {
		t.Fatalf("expired trust data with the server down: got %v, want a 503-class error", err)
	}
	if !errors.Is(err, resolver.ErrExpired) && !errors.Is(err, resolver.ErrUnavailable) {
		t.Fatalf("got %v, want ErrExpired or ErrUnavailable", err)
	}
}

func TestServerDownWithValidTimestampKeepsServing(t *testing.T) {
	f := newFixture(t, time.Second)
	ctx := context.Background()
	want, err := f.cache.Resolve(ctx, gun, "v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.Override(gun, "timestamp.json", tuftest.Response{Status: 503})
	f.clock.Add(time.Hour)
	got, err := f.cache.Resolve(ctx, gun, "v1", nil)
	if err != nil || got.Digest != want.Digest {
		t.Fatalf("server down, timestamp still valid: got %v, %v; want %s", got.Digest, err, want.Digest)
	}
}

func TestNoTrustDataIsRememberedForTTL(t *testing.T) {
	f := newFixture(t, 30*time.Second)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		_, err := f.cache.Resolve(ctx, "example.com/unknown/repo", "v1", nil)
		if !errors.Is(err, resolver.ErrNoTrustData) {
			t.Fatalf("got %v, want ErrNoTrustData", err)
		}
	}
	if n := f.srv.Count("example.com/unknown/repo/root.json"); n != 1 {
		t.Fatalf("root.json of an unknown repository fetched %d times within the TTL, want 1", n)
	}
	f.clock.Add(31 * time.Second)
	_, _ = f.cache.Resolve(ctx, "example.com/unknown/repo", "v1", nil)
	if n := f.srv.Count("example.com/unknown/repo/root.json"); n != 2 {
		t.Fatalf("after the TTL root.json should be asked again; fetched %d times", n)
	}
}

func TestUnsignedTagAndTags(t *testing.T) {
	f := newFixture(t, 30*time.Second)
	ctx := context.Background()
	if _, err := f.cache.Resolve(ctx, gun, "nope", nil); !errors.Is(err, resolver.ErrTagNotSigned) {
		t.Fatalf("got %v, want ErrTagNotSigned", err)
	}
	tags, err := f.cache.Tags(ctx, gun, nil)
	if err != nil || len(tags) != 1 || tags[0] != "v1" {
		t.Fatalf("Tags = %v, %v", tags, err)
	}
}

// A waiter that gives up must not fail the update the others are waiting on.
func TestCancelledWaiterDoesNotCancelSharedUpdate(t *testing.T) {
	f := newFixture(t, 30*time.Second)
	f.srv.Override(gun, "root.json", tuftest.Response{Delay: 300 * time.Millisecond, Body: f.srv.Files(gun)["root.json"]})
	impatient, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := f.cache.Resolve(impatient, gun, "v1", nil)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the impatient caller start the shared update
	var patientErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, patientErr = f.cache.Resolve(context.Background(), gun, "v1", nil)
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("impatient caller: got %v, want context.Canceled", err)
	}
	wg.Wait()
	if patientErr != nil {
		t.Fatalf("patient caller failed with the impatient one: %v", patientErr)
	}
}
