package resolver

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/tuftest"
)

const genGUN = "example.com/team/rotate"

func TestKeyRotations(t *testing.T) {
	tests := []struct {
		name   string
		rotate func(t *testing.T, r *tuftest.Repo)
		// wantReq must appear among the requests of the Update after the rotation.
		wantReq string
	}{
		{"root rotated, signed by old and new", func(t *testing.T, r *tuftest.Repo) { r.RotateRoot() }, genGUN + "/root."},
		// The old root's timestamp key no longer signs: the timestamp fails, no snapshot names
		// the next root, so root.json is fetched by name (not the stale checksum).
		{"timestamp key rotated", func(t *testing.T, r *tuftest.Repo) {
			r.SetKeys(tuftest.Timestamp, tuftest.NewKey(t, tuftest.ECDSA))
		}, genGUN + "/root.json"},
		{"targets key rotated", func(t *testing.T, r *tuftest.Repo) {
			r.SetKeys(tuftest.Targets, tuftest.NewKey(t, tuftest.ECDSA))
		}, genGUN + "/root."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			repo := tuftest.NewRepo(t, genGUN)
			repo.AddTarget("targets", "v1", []byte("one"))
			srv := tuftest.Serve(t, genGUN, repo.Publish())
			c, err := NewClient(Config{ServerURL: srv.URL, TrustDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if _, err := c.Update(ctx, genGUN); err != nil {
				t.Fatal(err)
			}
			tc.rotate(t, repo)
			want := repo.AddTarget("targets", "v2", []byte("two"))
			srv.Set(genGUN, repo.Publish())
			srv.ResetRequests()
			st, err := c.Update(ctx, genGUN)
			if err != nil {
				t.Fatalf("Update after rotation: %v (requests %v)", err, srv.Requests())
			}
			got, err := st.Lookup("v2", nil)
			if err != nil || got.Digest.String() != want {
				t.Fatalf("v2 = %v, %v; want %s", got.Digest, err, want)
			}
			if !strings.Contains(strings.Join(srv.Requests(), " "), tc.wantReq) {
				t.Fatalf("requests %v lack %s", srv.Requests(), tc.wantReq)
			}
			if srv.Count(genGUN+"/2.root.json") != 0 {
				t.Fatalf("walked versioned roots for a one-step rotation: %v", srv.Requests())
			}
		})
	}
}

func TestConcurrentUpdates(t *testing.T) {
	srv := fixtureServer(t)
	c := newTestClient(t, srv, func(cfg *Config) { cfg.TrustDir = t.TempDir() })
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		gun := gunApp
		if i%2 == 1 {
			gun = gunAlpine
		}
		wg.Go(func() {
			st, err := c.Update(context.Background(), gun)
			if err == nil {
				_, err = st.Lookup(map[string]string{gunApp: "v3", gunAlpine: "latest"}[gun], nil)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Same-GUN updates were serialised: root.json was fetched once per GUN.
	n := 0
	for _, p := range srv.take() {
		if strings.HasSuffix(p, "/_trust/tuf/root.json") {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("root.json fetched %d times, want 2", n)
	}
}

func TestExpiredCachedRootIsReplaced(t *testing.T) {
	now := time.Now()
	repo := tuftest.NewRepo(t, genGUN)
	repo.SetExpiry(tuftest.Root, now.Add(time.Hour))
	repo.AddTarget("targets", "v1", []byte("one"))
	srv := tuftest.Serve(t, genGUN, repo.Publish())
	dir := t.TempDir()
	later := func() time.Time { return now.Add(2 * time.Hour) }
	c, _ := NewClient(Config{ServerURL: srv.URL, TrustDir: dir})
	if _, err := c.Update(context.Background(), genGUN); err != nil {
		t.Fatal(err)
	}
	// The server still has only the expired root: refused.
	c, _ = NewClient(Config{ServerURL: srv.URL, TrustDir: dir, Now: later})
	if _, err := c.Update(context.Background(), genGUN); !errors.Is(err, ErrExpired) {
		t.Fatalf("err = %v, want ErrExpired", err)
	}
	// A re-signed root, vouched for by the cached one, replaces it.
	repo.SetExpiry(tuftest.Root, now.AddDate(1, 0, 0))
	srv.Set(genGUN, repo.Publish())
	srv.ResetRequests()
	c, _ = NewClient(Config{ServerURL: srv.URL, TrustDir: dir, Now: later, Pinning: TrustPinning{DisableTOFU: true}})
	st, err := c.Update(context.Background(), genGUN)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Lookup("v1", nil); err != nil {
		t.Fatal(err)
	}
	if srv.Count(genGUN+"/root.json") != 1 {
		t.Fatalf("requests %v", srv.Requests())
	}
}
