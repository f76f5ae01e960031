package resolver_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/trustgate/trustgate/internal/peers"
	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/resolver"
	"github.com/trustgate/trustgate/resolver/redisstore"
)

// startRedis runs a real redis-server for one test and returns a client of it.
func startRedis(t *testing.T) (*peers.Redis, *redis.Client) {
	t.Helper()
	r := peers.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
	t.Cleanup(func() { rdb.Close() })
	return r, rdb
}

// replica is one trustgate's resolver: its own trust dir, the shared store.
func replica(t *testing.T, url string, rdb *redis.Client, m *resolver.StoreMetrics, mod ...func(*resolver.Config)) *resolver.Client {
	t.Helper()
	return advClient(t, url, append([]func(*resolver.Config){func(c *resolver.Config) {
		c.TrustDir = t.TempDir()
		c.Shared = redisstore.New(rdb, redisstore.Options{Prefix: "t:", LockWait: 5 * time.Second, Metrics: m})
		c.SharedFresh = time.Minute
		c.StoreMetrics = m
	}}, mod...)...)
}

// TestSharedRollbackAcrossReplicas: replica A learns a newer publish; B, which had only seen the
// older one, is then replayed the older files and refuses them: the floor A raised is B's too.
// Without the shared store B would accept the replay (the control at the end).
func TestSharedRollbackAcrossReplicas(t *testing.T) {
	_, rdb := startRedis(t)
	r := tuftest.NewRepo(t, advGUN)
	advBasic(t, r)
	srv := tuftest.Serve(t, advGUN, r.Publish())
	noFresh := func(c *resolver.Config) { c.SharedFresh = 0 } // every Update asks the server
	a := replica(t, srv.URL, rdb, nil, noFresh)
	b := replica(t, srv.URL, rdb, nil, noFresh)
	alone := advClient(t, srv.URL)
	for _, c := range []*resolver.Client{a, b, alone} {
		if _, err := lookup(t, c, advGUN, "v1"); err != nil {
			t.Fatal(err)
		}
	}
	old := srv.Files(advGUN)
	r.AddTarget("targets", "v3", []byte("v3"))
	srv.Set(advGUN, r.Publish())
	if _, err := lookup(t, a, advGUN, "v3"); err != nil {
		t.Fatal(err)
	}
	srv.Set(advGUN, old)
	_, err := lookup(t, b, advGUN, "v1")
	wantErr(t, err, resolver.ErrRollback)
	if _, err := lookup(t, alone, advGUN, "v1"); err != nil {
		t.Errorf("control: a replica without the shared store refuses the replay too (%v): the check above would prove nothing", err)
	}
}

// TestSharedOneChain: three replicas resolving one cold repository at once ask the trust server
// for root, timestamp, snapshot and targets once in total; the others verify the stored files
// (hits) after waiting for the one refresh (lock waits).
func TestSharedOneChain(t *testing.T) {
	_, rdb := startRedis(t)
	r := tuftest.NewRepo(t, advGUN)
	r.AddTarget("targets", "v1", []byte("manifest v1"))
	srv := tuftest.Serve(t, advGUN, r.Publish())
	ch, cm, cw, ce := newCounter(), newCounter(), newCounter(), newCounter()
	m := &resolver.StoreMetrics{Hits: ch, Misses: cm, LockWaits: cw, Errors: ce}
	var wg sync.WaitGroup
	for range 3 {
		c := replica(t, srv.URL, rdb, m)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := lookup(t, c, advGUN, "v1"); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	for _, name := range []string{"root.json", "timestamp.json"} {
		if n := srv.Count(advGUN + "/" + name); n != 1 {
			t.Errorf("%s fetched %d times, want 1 (requests %v)", name, n, srv.Requests())
		}
	}
	if n := len(srv.Requests()); n != 4 {
		t.Errorf("%d metadata requests, want 4 (root, timestamp, snapshot, targets): %v", n, srv.Requests())
	}
	hits, misses, waits, errs := testutil.ToFloat64(ch), testutil.ToFloat64(cm), testutil.ToFloat64(cw), testutil.ToFloat64(ce)
	t.Logf("hits %v misses %v lock waits %v errors %v", hits, misses, waits, errs)
	if misses != 1 || hits != 11 || waits < 1 || errs != 0 { // 12 Updates: one asked the server
		t.Errorf("metrics: hits %v misses %v lock waits %v errors %v; want 11, 1, at least 1, 0", hits, misses, waits, errs)
	}
}

// TestSharedStoreDown: with Redis stopped, a replica keeps resolving a repository it has seen
// (from its own state, asking the trust server; also after a restart, from its trust dir), and
// refuses one it never saw (503: it cannot know the floors others recorded). Restarted empty, the store gets the floors
// back from the replica, which never lowers its own.
func TestSharedStoreDown(t *testing.T) {
	red, rdb := startRedis(t)
	r := tuftest.NewRepo(t, advGUN)
	r.AddTarget("targets", "v1", []byte("manifest v1"))
	other := tuftest.NewRepo(t, "example.com/other")
	other.AddTarget("targets", "v1", []byte("other v1"))
	srv := tuftest.Serve(t, advGUN, r.Publish())
	srv.Set("example.com/other", other.Publish())
	dir := t.TempDir()
	a := replica(t, srv.URL, rdb, nil, func(c *resolver.Config) { c.SharedFresh = 0; c.TrustDir = dir })
	if _, err := lookup(t, a, advGUN, "v1"); err != nil {
		t.Fatal(err)
	}
	r.AddTarget("targets", "v2", []byte("manifest v2"))
	srv.Set(advGUN, r.Publish())
	if err := red.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := lookup(t, a, advGUN, "v2"); err != nil {
		t.Fatalf("known repository with the store down: %v", err)
	}
	_, err := lookup(t, a, "example.com/other", "v1")
	wantErr(t, err, resolver.ErrUnavailable)
	// Restarted while the store is down, the replica still has the repository in its trust dir.
	restarted := replica(t, srv.URL, rdb, nil, func(c *resolver.Config) { c.SharedFresh = 0; c.TrustDir = dir })
	if _, err := lookup(t, restarted, advGUN, "v2"); err != nil {
		t.Fatalf("restarted with the store down, repository in the trust dir: %v", err)
	}
	_, err = lookup(t, restarted, "example.com/other", "v1")
	wantErr(t, err, resolver.ErrUnavailable)

	red.Restart(t)
	if _, err := lookup(t, a, advGUN, "v2"); err != nil {
		t.Fatalf("after the store came back empty: %v", err)
	}
	st, err := redisstore.New(rdb, redisstore.Options{Prefix: "t:"}).Load(context.Background(), advGUN, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Versions["timestamp"] != r.Version("timestamp") || st.Files["root"] == nil {
		t.Errorf("store after coming back empty: floors %v, root cached %v; want timestamp %d", st.Versions, st.Files["root"] != nil, r.Version("timestamp"))
	}
}

func newCounter() prometheus.Counter { return prometheus.NewCounter(prometheus.CounterOpts{Name: "c"}) }

// TestSharedRootFirstWriterWins: replica A trusts the repository's root first; replica B, whose
// trust server (a man in the middle, say) serves another root for the same GUN, is refused
// instead of trusting it on first use — the shared root is B's anchor. Alone, B would trust it.
func TestSharedRootFirstWriterWins(t *testing.T) {
	_, rdb := startRedis(t)
	genuine := tuftest.NewRepo(t, advGUN)
	genuine.AddTarget("targets", "v1", []byte("genuine"))
	forged := tuftest.NewRepo(t, advGUN)
	forged.AddTarget("targets", "v1", []byte("forged"))
	good := tuftest.Serve(t, advGUN, genuine.Publish())
	evil := tuftest.Serve(t, advGUN, forged.Publish())
	a := replica(t, good.URL, rdb, nil)
	if _, err := lookup(t, a, advGUN, "v1"); err != nil {
		t.Fatal(err)
	}
	b := replica(t, evil.URL, rdb, nil, func(c *resolver.Config) { c.SharedFresh = 0 })
	_, err := lookup(t, b, advGUN, "v1")
	wantErr(t, err, resolver.ErrThreshold, resolver.ErrInvalid, resolver.ErrPinMismatch)
	if got, err := lookup(t, advClient(t, evil.URL), advGUN, "v1"); err != nil || got.Digest.Encoded() != tuftest.SHA256Hex([]byte("forged")) {
		t.Errorf("control: alone, the forged root is trusted on first use: %+v, %v", got, err)
	}
}

// TestSharedFloorsWrittenThrough: floors a replica learns from the shared store land in its trust
// dir too, so restarted without the store (or with the store emptied) it still refuses a replay
// of what another replica saw superseded. (The floors get there by more than one path: merging
// writes them through, and so does the root re-check after the refused replay.)
func TestSharedFloorsWrittenThrough(t *testing.T) {
	_, rdb := startRedis(t)
	r := tuftest.NewRepo(t, advGUN)
	advBasic(t, r)
	srv := tuftest.Serve(t, advGUN, r.Publish())
	dirB := t.TempDir()
	a := replica(t, srv.URL, rdb, nil, func(c *resolver.Config) { c.SharedFresh = 0 })
	b := replica(t, srv.URL, rdb, nil, func(c *resolver.Config) { c.TrustDir = dirB; c.SharedFresh = 0 })
	if _, err := lookup(t, b, advGUN, "v1"); err != nil {
		t.Fatal(err)
	}
	old := srv.Files(advGUN)
	r.AddTarget("targets", "v3", []byte("v3"))
	srv.Set(advGUN, r.Publish())
	if _, err := lookup(t, a, advGUN, "v3"); err != nil {
		t.Fatal(err)
	}
	srv.Set(advGUN, old)
	if _, err := lookup(t, b, advGUN, "v1"); err == nil {
		t.Fatal("B accepted the replay with the shared store")
	}
	restarted := advClient(t, srv.URL, func(c *resolver.Config) { c.TrustDir = dirB })
	_, err := lookup(t, restarted, advGUN, "v1")
	wantErr(t, err, resolver.ErrRollback)
}

// TestSharedRootConflict: two replicas trust a repository on first use at the same moment (the
// lease is held elsewhere, so neither waits for the other) and get different roots: the one whose
// root reaches the store second is refused (a pin mismatch, 503), and on its next request takes
// the stored root as its anchor — which then refuses its forged trust data.
func TestSharedRootConflict(t *testing.T) {
	_, rdb := startRedis(t)
	genuine := tuftest.NewRepo(t, advGUN)
	genuine.AddTarget("targets", "v1", []byte("genuine"))
	forged := tuftest.NewRepo(t, advGUN)
	forged.AddTarget("targets", "v1", []byte("forged"))
	good := tuftest.Serve(t, advGUN, genuine.Publish())
	evil := tuftest.Serve(t, advGUN, forged.Publish())
	// A lease nobody releases: both replicas give up waiting for it and refresh on their own.
	if err := rdb.Set(context.Background(), "t:lock/"+advGUN, "elsewhere", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	short := func(c *resolver.Config) {
		c.SharedFresh = 0
		c.Shared = redisstore.New(rdb, redisstore.Options{Prefix: "t:", LockWait: 50 * time.Millisecond})
	}
	dirB := t.TempDir()
	a := replica(t, good.URL, rdb, nil, short)
	b := replica(t, evil.URL, rdb, nil, short, func(c *resolver.Config) { c.TrustDir = dirB })
	forgedRoot := evil.Files(advGUN)["root.json"]
	evil.Override(advGUN, "root.json", tuftest.Response{Handler: func(w http.ResponseWriter, r *http.Request) {
		// B has read the empty store and asked for its root; A trusts the genuine one first.
		if _, err := lookup(t, a, advGUN, "v1"); err != nil {
			t.Errorf("A: %v", err)
		}
		_, _ = w.Write(forgedRoot)
	}})
	_, err := lookup(t, b, advGUN, "v1")
	wantErr(t, err, resolver.ErrPinMismatch)
	if !errors.Is(err, resolver.ErrRootConflict) {
		t.Errorf("error %v does not name the conflict", err)
	}
	if roots, _ := filepath.Glob(filepath.Join(dirB, "tuf", "*", "metadata", "root.json")); len(roots) != 0 {
		t.Errorf("the refused root reached B's trust dir: %v", roots)
	}
	evil.ClearOverride(advGUN, "root.json")
	_, err = lookup(t, b, advGUN, "v1")
	wantErr(t, err, resolver.ErrThreshold, resolver.ErrInvalid)
}
