package resolver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/trustgate/trustgate/internal/tuftest"
)

// TestRetainedRepositoriesBounded: a trust server that answers a valid root for any name (its
// own, trusted on first use) and a client that asks for name after name made the resolver keep
// every repository's verified metadata in memory for ever. With a trust_dir, the state of an
// idle repository can be dropped from memory and read back, floors included, when it is next
// needed; only memory-only state must stay, or its floors would be lost.
func TestRetainedRepositoriesBounded(t *testing.T) {
	srv := tuftest.NewServer(t)
	repos := map[string]*tuftest.Repo{}
	var guns []string
	for i := range 8 {
		gun := fmt.Sprintf("example.com/hostile/name-%d", i)
		r := tuftest.NewRepo(t, gun)
		r.AddTarget("targets", "v1", []byte(gun))
		srv.Set(gun, r.Publish())
		repos[gun] = r
		guns = append(guns, gun)
	}
	for _, memoryOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("memory only %v", memoryOnly), func(t *testing.T) {
			cfg := Config{ServerURL: srv.URL}
			if !memoryOnly {
				cfg.TrustDir = t.TempDir()
			}
			c, err := NewClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			c.maxIdle = 3
			ctx := context.Background()
			for _, gun := range guns {
				if _, err := c.Update(ctx, gun); err != nil {
					t.Fatalf("%s: %v", gun, err)
				}
			}
			c.mu.Lock()
			n := len(c.guns)
			c.mu.Unlock()
			if memoryOnly && n != len(guns) {
				t.Fatalf("memory-only state of %d repositories kept, want all %d (their floors live nowhere else)", n, len(guns))
			}
			if !memoryOnly && n > c.maxIdle {
				t.Fatalf("state of %d repositories kept in memory, want at most %d", n, c.maxIdle)
			}
			// The first repository was dropped from memory (or not): its floor holds either way.
			r := repos[guns[0]]
			old := srv.Files(guns[0])
			r.AddTarget("targets", "v1", []byte("newer"))
			srv.Set(guns[0], r.Publish())
			if _, err := c.Update(ctx, guns[0]); err != nil {
				t.Fatalf("newer publish: %v", err)
			}
			for _, gun := range guns[1:] {
				if _, err := c.Update(ctx, gun); err != nil {
					t.Fatalf("%s: %v", gun, err)
				}
			}
			srv.Set(guns[0], old)
			if _, err := c.Update(ctx, guns[0]); !errors.Is(err, ErrRollback) {
				t.Fatalf("replay after the state was dropped from memory: %v, want ErrRollback", err)
			}
			srv.Set(guns[0], r.Publish())
		})
	}
}

// TestUnsavedStateIsNotDropped: a floor that could not be written (the update failed closed)
// lives only in memory; dropping that repository's state as idle would read back the older
// floor from disk, and the newer timestamp's predecessor could be replayed.
func TestUnsavedStateIsNotDropped(t *testing.T) {
	srv := tuftest.NewServer(t)
	var guns []string
	var first *tuftest.Repo
	for i := range 6 {
		gun := fmt.Sprintf("example.com/team/app-%d", i)
		r := tuftest.NewRepo(t, gun)
		r.AddTarget("targets", "v1", []byte(gun))
		srv.Set(gun, r.Publish())
		if i == 0 {
			first = r
		}
		guns = append(guns, gun)
	}
	c, err := NewClient(Config{ServerURL: srv.URL, TrustDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	c.maxIdle = 2
	ctx := context.Background()
	for _, gun := range guns {
		if _, err := c.Update(ctx, gun); err != nil {
			t.Fatalf("%s: %v", gun, err)
		}
	}
	if _, err := c.Update(ctx, guns[0]); err != nil { // in memory again
		t.Fatal(err)
	}
	old := srv.Files(guns[0])
	ts := filepath.Join(c.store.gunDir(guns[0]), "metadata", "timestamp.json")
	if err := os.Remove(ts); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(ts, 0o700); err != nil { // the write of the newer timestamp fails
		t.Fatal(err)
	}
	first.AddTarget("targets", "v1", []byte("newer"))
	srv.Set(guns[0], first.Publish())
	if _, err := c.Update(ctx, guns[0]); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("update whose timestamp cannot be written: %v, want ErrUnavailable", err)
	}
	if err := os.Remove(ts); err != nil { // the disk recovers
		t.Fatal(err)
	}
	for _, gun := range guns[1:] {
		if _, err := c.Update(ctx, gun); err != nil {
			t.Fatalf("%s: %v", gun, err)
		}
	}
	srv.Set(guns[0], old)
	if _, err := c.Update(ctx, guns[0]); !errors.Is(err, ErrRollback) {
		t.Fatalf("replay of the timestamp before the unsaved one: %v, want ErrRollback", err)
	}
}

// TestDroppedStateUnderLoad: concurrent Updates of more repositories than are kept in memory.
// Each repository is trusted on first use once (dropped state is read back from disk, never
// bootstrapped again), and every Update succeeds.
func TestDroppedStateUnderLoad(t *testing.T) {
	srv := tuftest.NewServer(t)
	var guns []string
	for i := range 6 {
		gun := fmt.Sprintf("example.com/team/load-%d", i)
		r := tuftest.NewRepo(t, gun)
		r.AddTarget("targets", "v1", []byte(gun))
		srv.Set(gun, r.Publish())
		guns = append(guns, gun)
	}
	c, err := NewClient(Config{ServerURL: srv.URL, TrustDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	c.maxIdle = 2
	var wg sync.WaitGroup
	errs := make(chan error, 120)
	for i := range 120 {
		wg.Go(func() {
			if _, err := c.Update(context.Background(), guns[i%len(guns)]); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, gun := range guns {
		if n := srv.Count(gun + "/root.json"); n != 1 {
			t.Errorf("%s: root.json fetched %d times, want 1", gun, n)
		}
	}
}
