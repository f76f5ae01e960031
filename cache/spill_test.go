package cache_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/cache"
	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/resolver"
)

// countingClient is a resolver.Client whose Updates are counted; evictions pass through, so the
// resolver forgets an evicted repository as in production.
type countingClient struct {
	*resolver.Client
	n atomic.Int64
}

func (c *countingClient) Update(ctx context.Context, gun string) (*resolver.State, error) {
	c.n.Add(1)
	return c.Client.Update(ctx, gun)
}

const otherGUN = "example.com/team/other"

// spillFixture is two signed repositories behind one server and a cache of one entry that
// spills, so resolving one evicts the other.
type spillFixture struct {
	repo   *tuftest.Repo
	srv    *tuftest.Server
	clock  *clock
	client *countingClient
	cache  *cache.Cache
	parent string
}

func newSpillFixture(t *testing.T) *spillFixture {
	t.Helper()
	clk := newClock(time.Now())
	repo := tuftest.NewRepo(t, gun, tuftest.WithNow(clk.Now))
	repo.AddTarget("targets", "v1", []byte("manifest one"))
	repo.AddTarget("targets", "both", []byte("targets' both"))
	repo.AddDelegation("targets/releases", []*tuftest.Key{tuftest.NewKey(t, tuftest.ECDSA)}, []string{""}, 1)
	repo.AddTarget("targets/releases", "v2", []byte("manifest two"))
	repo.AddTarget("targets/releases", "both", []byte("releases' both"))
	repo.AddDelegation("targets/team", []*tuftest.Key{tuftest.NewKey(t, tuftest.ECDSA)}, []string{"team-"}, 1)
	repo.AddTarget("targets/team", "team-1", []byte("team one"))
	srv := tuftest.Serve(t, gun, repo.Publish())
	other := tuftest.NewRepo(t, otherGUN, tuftest.WithNow(clk.Now))
	other.AddTarget("targets", "o1", []byte("other one"))
	srv.Set(otherGUN, other.Publish())
	f := &spillFixture{repo: repo, srv: srv, clock: clk, parent: t.TempDir()}
	f.client, f.cache = f.newCache(t)
	return f
}

// newCache is a cache of one entry over a new resolver client on the fixture's server, spilling
// into a directory of its own under the fixture's parent.
func (f *spillFixture) newCache(t *testing.T) (*countingClient, *cache.Cache) {
	t.Helper()
	rc, err := resolver.NewClient(resolver.Config{ServerURL: f.srv.URL, Now: f.clock.Now, TrustDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	cc := &countingClient{Client: rc}
	c, err := cache.New(cc, cache.Options{TTL: 30 * time.Second, Size: 1, Now: f.clock.Now, SpillDir: f.parent})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Wait(); _ = c.Close() })
	return cc, c
}

// spillFile is where c keeps gun's state.
func spillFile(t *testing.T, c *cache.Cache, g string) string {
	t.Helper()
	sum := sha256.Sum256([]byte(g))
	return filepath.Join(c.SpillDirForTest(), hex.EncodeToString(sum[:]))
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// evict resolves the other repository, which evicts gun from a cache of one entry.
func evict(t *testing.T, c *cache.Cache) {
	t.Helper()
	if _, err := c.Resolve(context.Background(), otherGUN, "o1", nil); err != nil {
		t.Fatal(err)
	}
}

// answers is everything a request can learn from gun's state.
type answers struct {
	Lookups map[string]string
	Tags    map[string][]string
}

func ask(t *testing.T, c *cache.Cache) answers {
	t.Helper()
	ctx := context.Background()
	a := answers{Lookups: map[string]string{}, Tags: map[string][]string{}}
	for _, roles := range [][]string{nil, {"targets"}, {"targets/team", "targets"}} {
		key := filepath.Join(roles...)
		for _, tag := range []string{"v1", "v2", "both", "team-1", "none"} {
			tgt, err := c.Resolve(ctx, gun, tag, roles)
			if err != nil {
				a.Lookups[key+" "+tag] = "error: " + err.Error()
				continue
			}
			a.Lookups[key+" "+tag] = tgt.Digest.String() + " " + tgt.Role + " " + filepath.Join(tgt.Signers...)
		}
		tags, err := c.Tags(ctx, gun, roles)
		if err != nil {
			t.Fatal(err)
		}
		a.Tags[key] = tags
	}
	return a
}

// TestSpilledStateAnswersAsBefore: a repository evicted from the cache is read back from the
// spill and answers every lookup, tag list and delegation exactly as before, without an update.
func TestSpilledStateAnswersAsBefore(t *testing.T) {
	f := newSpillFixture(t)
	want := ask(t, f.cache)
	evict(t, f.cache)
	updates := f.client.n.Load()
	requests := len(f.srv.Requests())
	got := ask(t, f.cache)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after eviction:\n%+v\nwant\n%+v", got, want)
	}
	if n := f.client.n.Load() - updates; n != 0 {
		t.Errorf("reading back an evicted repository ran %d updates, want none", n)
	}
	if n := len(f.srv.Requests()) - requests; n != 0 {
		t.Errorf("reading back an evicted repository made %d requests, want none", n)
	}
}

// TestSpillFileNotTrusted: a file the cache did not write as it is (sealed under another key,
// changed, cut short, or another repository's) is ignored, and the repository is updated.
func TestSpillFileNotTrusted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, f *spillFixture, path string)
	}{
		{"another key", func(t *testing.T, f *spillFixture, path string) {
			// Another process (or this one before a restart) sealed a file for the same
			// repository: copied into place, it is not this cache's.
			_, c2 := f.newCache(t)
			if _, err := c2.Resolve(context.Background(), gun, "v1", nil); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(spillFile(t, c2, gun))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"bit flipped in the header", flipAt(20)},
		{"bit flipped in the body", flipAt(-10)},
		{"truncated", func(t *testing.T, _ *spillFixture, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b[:len(b)-1], 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"another repository's", func(t *testing.T, f *spillFixture, path string) {
			if err := os.Rename(spillFile(t, f.cache, otherGUN), path); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSpillFixture(t)
			want := ask(t, f.cache)
			evict(t, f.cache)
			path := spillFile(t, f.cache, gun)
			if !fileExists(path) {
				t.Fatalf("no spill file at %s", path)
			}
			tc.tamper(t, f, path)
			updates := f.client.n.Load()
			if got := ask(t, f.cache); !reflect.DeepEqual(got, want) {
				t.Errorf("after eviction:\n%+v\nwant\n%+v", got, want)
			}
			if n := f.client.n.Load() - updates; n != 1 {
				t.Errorf("%d updates after the file was tampered with, want 1", n)
			}
		})
	}
}

func flipAt(i int) func(t *testing.T, f *spillFixture, path string) {
	return func(t *testing.T, _ *spillFixture, path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if i < 0 {
			i += len(b)
		}
		b[i] ^= 1
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSpillRevocation: what a refresh finds replaces the spilled state at once. A removed tag
// stays removed after an eviction; a refresh that ends in an attack drops the spilled state too,
// so the next request fails closed instead of reading the last good state back.
func TestSpillRevocation(t *testing.T) {
	ctx := context.Background()
	t.Run("tag removed", func(t *testing.T) {
		f := newSpillFixture(t)
		if _, err := f.cache.Resolve(ctx, gun, "v1", nil); err != nil {
			t.Fatal(err)
		}
		f.repo.RemoveTarget("targets", "v1")
		f.srv.Set(gun, f.repo.Publish())
		f.clock.Add(time.Minute)
		if _, err := f.cache.Resolve(ctx, gun, "v1", nil); err != nil {
			t.Fatalf("the request that starts the refresh: %v", err)
		}
		f.cache.Wait()
		evict(t, f.cache)
		updates := f.client.n.Load()
		if _, err := f.cache.Resolve(ctx, gun, "v1", nil); !errors.Is(err, resolver.ErrTagNotSigned) {
			t.Fatalf("after the refresh and an eviction: %v, want not signed", err)
		}
		if n := f.client.n.Load() - updates; n != 0 {
			t.Errorf("%d updates, want the refreshed state read back", n)
		}
	})
	t.Run("rollback", func(t *testing.T) {
		f := newSpillFixture(t)
		old := maps.Clone(f.srv.Files(gun))
		f.repo.AddTarget("targets", "v3", []byte("three"))
		f.srv.Set(gun, f.repo.Publish())
		f.clock.Add(time.Minute)
		if _, err := f.cache.Resolve(ctx, gun, "v1", nil); err != nil {
			t.Fatal(err)
		}
		f.cache.Wait()
		f.srv.Set(gun, old) // replay
		f.clock.Add(time.Minute)
		if _, err := f.cache.Resolve(ctx, gun, "v1", nil); err != nil {
			t.Fatalf("the request that starts the refresh: %v", err)
		}
		f.cache.Wait()
		if p := spillFile(t, f.cache, gun); fileExists(p) {
			t.Errorf("the dropped state is still spilled at %s", p)
		}
		for i := range 2 {
			if _, err := f.cache.Resolve(ctx, gun, "v1", nil); !errors.Is(err, resolver.ErrRollback) {
				t.Fatalf("request %d after the refresh found a rollback: %v, want ErrRollback", i, err)
			}
			evict(t, f.cache)
		}
	})
}

// TestSpillFreshness: a spilled state read back is used by the rule an entry in memory is: fresh
// as it is, older than TTL answered and refreshed in the background, past its expiry not at all.
func TestSpillFreshness(t *testing.T) {
	ctx := context.Background()
	t.Run("stale", func(t *testing.T) {
		f := newSpillFixture(t)
		old, err := f.cache.Resolve(ctx, gun, "v1", nil)
		if err != nil {
			t.Fatal(err)
		}
		evict(t, f.cache)
		f.repo.AddTarget("targets", "v1", []byte("manifest one, re-signed"))
		f.srv.Set(gun, f.repo.Publish())
		f.clock.Add(time.Minute)
		updates := f.client.n.Load()
		got, err := f.cache.Resolve(ctx, gun, "v1", nil)
		if err != nil || got.Digest != old.Digest {
			t.Fatalf("older than TTL: %s, %v; want the spilled %s", got.Digest, err, old.Digest)
		}
		f.cache.Wait()
		if n := f.client.n.Load() - updates; n != 1 {
			t.Fatalf("%d updates, want one background refresh", n)
		}
		if got, err := f.cache.Resolve(ctx, gun, "v1", nil); err != nil || got.Digest == old.Digest {
			t.Fatalf("after the refresh: %s, %v; want the re-signed digest", got.Digest, err)
		}
	})
	t.Run("re-checked", func(t *testing.T) {
		// A refresh that finds nothing new moves the time the spilled state was checked (the
		// file's header alone is rewritten), so the state read back is fresh, not stale.
		f := newSpillFixture(t)
		if _, err := f.cache.Resolve(ctx, gun, "v1", nil); err != nil {
			t.Fatal(err)
		}
		before, err := os.ReadFile(spillFile(t, f.cache, gun))
		if err != nil {
			t.Fatal(err)
		}
		f.clock.Add(time.Minute)
		if _, err := f.cache.Resolve(ctx, gun, "v1", nil); err != nil {
			t.Fatal(err)
		}
		f.cache.Wait()
		after, err := os.ReadFile(spillFile(t, f.cache, gun))
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(before) || string(after[80:]) != string(before[80:]) || string(after[:80]) == string(before[:80]) {
			t.Errorf("after a re-check that found nothing new: want the same body under a new header")
		}
		evict(t, f.cache)
		f.clock.Add(20 * time.Second)
		updates := f.client.n.Load()
		if _, err := f.cache.Resolve(ctx, gun, "v1", nil); err != nil {
			t.Fatal(err)
		}
		f.cache.Wait()
		if n := f.client.n.Load() - updates; n != 0 {
			t.Fatalf("%d updates for a state re-checked 20s ago, want none", n)
		}
	})
	t.Run("checked in the future", func(t *testing.T) {
		// The wall clock stepped back after the state was spilled: its checked time, read from
		// disk without a monotonic reading, is ahead of now. The state is not fresh for the length
		// of the step: it is stale, served and refreshed.
		f := newSpillFixture(t)
		if _, err := f.cache.Resolve(ctx, gun, "v1", nil); err != nil {
			t.Fatal(err)
		}
		evict(t, f.cache)
		f.clock.Add(-time.Hour)
		updates := f.client.n.Load()
		if _, err := f.cache.Resolve(ctx, gun, "v1", nil); err != nil {
			t.Fatal(err)
		}
		f.cache.Wait()
		if n := f.client.n.Load() - updates; n != 1 {
			t.Fatalf("%d updates for a state checked an hour from now, want one background refresh", n)
		}
	})
	t.Run("expired", func(t *testing.T) {
		f := newSpillFixture(t)
		if _, err := f.cache.Resolve(ctx, gun, "v1", nil); err != nil {
			t.Fatal(err)
		}
		evict(t, f.cache)
		f.clock.Add(15 * 24 * time.Hour)
		updates := f.client.n.Load()
		if _, err := f.cache.Resolve(ctx, gun, "v1", nil); !errors.Is(err, resolver.ErrExpired) {
			t.Fatalf("past its expiry: %v, want ErrExpired", err)
		}
		if n := f.client.n.Load() - updates; n != 1 {
			t.Fatalf("%d updates, want the expired spill ignored and one update", n)
		}
		if p := spillFile(t, f.cache, gun); fileExists(p) {
			t.Errorf("the expired state is still spilled at %s", p)
		}
	})
}

// TestSpillDirRemovedOnClose: the directory a cache spills into is its own, 0700, and gone after
// Close.
func TestSpillDirRemovedOnClose(t *testing.T) {
	f := newSpillFixture(t)
	if _, err := f.cache.Resolve(context.Background(), gun, "v1", nil); err != nil {
		t.Fatal(err)
	}
	dir := f.cache.SpillDirForTest()
	info, err := os.Stat(dir)
	if err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("spill directory %s: %v, %v; want 0700", dir, info.Mode(), err)
	}
	if err := f.cache.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("after Close: %v, want the directory gone", err)
	}
}

// TestSpillDirSetUp: a temp_dir that does not exist yet is created (as the blob spool's is); one
// that cannot be created leaves the cache serving without a spill, not failing to start.
func TestSpillDirSetUp(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, parent string
		spills       bool
	}{
		{"missing", filepath.Join(base, "not", "yet"), true},
		{"under a file", filepath.Join(file, "tmp"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			c, err := cache.New(&countingUpdater{}, cache.Options{SpillDir: tc.parent, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer c.Close()
			if got := c.SpillDirForTest() != ""; got != tc.spills {
				t.Fatalf("spilling: %v, want %v (log: %s)", got, tc.spills, logs.String())
			}
			if !tc.spills && !strings.Contains(logs.String(), "not spilled") {
				t.Errorf("no warning logged: %q", logs.String())
			}
		})
	}
}

// TestSpillDirReplaced: the spill works in the directory it created, not in whatever is found at
// its path later. Once the directory is moved away and another put in its place (by anyone who
// can, e.g. after a cleaner removed it from a shared temp_dir), a file this cache sealed and
// planted there after the cache dropped the state (here: a rollback found by a refresh) is not
// read back.
func TestSpillDirReplaced(t *testing.T) {
	ctx := context.Background()
	f := newSpillFixture(t)
	old := maps.Clone(f.srv.Files(gun))
	f.repo.AddTarget("targets", "v3", []byte("three"))
	f.srv.Set(gun, f.repo.Publish())
	f.clock.Add(time.Minute)
	if _, err := f.cache.Resolve(ctx, gun, "v1", nil); err != nil {
		t.Fatal(err)
	}
	f.cache.Wait()
	p := spillFile(t, f.cache, gun)
	sealed, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(p)
	if err := os.Rename(dir, dir+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f.srv.Set(gun, old) // replay
	f.clock.Add(time.Minute)
	if _, err := f.cache.Resolve(ctx, gun, "v1", nil); err != nil {
		t.Fatalf("the request that starts the refresh: %v", err)
	}
	f.cache.Wait()
	if err := os.WriteFile(p, sealed, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cache.Resolve(ctx, gun, "v1", nil); !errors.Is(err, resolver.ErrRollback) {
		t.Fatalf("after the refresh found a rollback, with the sealed state planted in the replaced directory: %v, want ErrRollback", err)
	}
}

// TestSpillClosedQuiet: a background refresh that drops its state after Close (a reload closes the
// old caches while their refreshes run) has nothing on disk to remove and reports no failure.
func TestSpillClosedQuiet(t *testing.T) {
	ctx := context.Background()
	f := newSpillFixture(t)
	var logged bytes.Buffer
	rc, err := resolver.NewClient(resolver.Config{ServerURL: f.srv.URL, Now: f.clock.Now, TrustDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.New(rc, cache.Options{TTL: 30 * time.Second, Size: 1, Now: f.clock.Now, SpillDir: f.parent,
		Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	old := maps.Clone(f.srv.Files(gun))
	f.repo.AddTarget("targets", "v3", []byte("three"))
	f.srv.Set(gun, f.repo.Publish())
	if _, err := c.Resolve(ctx, gun, "v1", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	f.srv.Set(gun, old) // replay
	f.clock.Add(time.Minute)
	if _, err := c.Resolve(ctx, gun, "v1", nil); err != nil {
		t.Fatalf("the request that starts the refresh: %v", err)
	}
	c.Wait()
	if _, err := c.Resolve(ctx, gun, "v1", nil); !errors.Is(err, resolver.ErrRollback) {
		t.Fatalf("after the refresh: %v, want ErrRollback", err)
	}
	if strings.Contains(logged.String(), "level=ERROR") || strings.Contains(logged.String(), "level=WARN") {
		t.Errorf("after Close:\n%s", logged.String())
	}
}
