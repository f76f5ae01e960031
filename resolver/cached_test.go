package resolver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/tuftest"
)

// TestVerifyCached: trust data cached by an Update is verified again from trust_dir alone, after
// the server is gone and after the data has expired (as of its last valid instant), while a cached
// file that was changed on disk is refused.
func TestVerifyCached(t *testing.T) {
	const gun = "docker.io/library/frozen"
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	r := tuftest.NewRepo(t, gun, tuftest.WithNow(fixedNow(t0)))
	r.AddTarget("targets", "v1", []byte("manifest v1"))
	srv := tuftest.Serve(t, gun, r.Publish())
	dir := t.TempDir()

	c, err := NewClient(Config{ServerURL: srv.URL, TrustDir: dir, Now: fixedNow(t0.Add(time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	online, err := c.Update(context.Background(), gun)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	tsExpiry := t0.AddDate(0, 0, 14) // tuftest's timestamp lifetime

	t.Run("still valid", func(t *testing.T) {
		now := t0.Add(2 * time.Hour)
		st, at, err := VerifyCached(context.Background(), Config{ServerURL: srv.URL, TrustDir: dir, Now: fixedNow(now)}, gun)
		if err != nil {
			t.Fatal(err)
		}
		if !at.Equal(now) {
			t.Errorf("verified as of %s, want now (%s)", at, now)
		}
		want, _ := online.Lookup("v1", nil)
		got, err := st.Lookup("v1", nil)
		if err != nil || got.Digest != want.Digest || got.Size != want.Size {
			t.Errorf("v1 = %+v, %v; want %+v", got, err, want)
		}
		if v := st.Versions(); v["targets"] != r.Version("targets") || v["timestamp"] != r.Version("timestamp") {
			t.Errorf("versions = %v, want targets %d, timestamp %d", v, r.Version("targets"), r.Version("timestamp"))
		}
	})

	t.Run("expired", func(t *testing.T) {
		now := t0.AddDate(0, 2, 0)
		// Update refuses: the server is gone and the cached timestamp has expired.
		c2, err := NewClient(Config{ServerURL: srv.URL, TrustDir: dir, Now: fixedNow(now)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c2.Update(context.Background(), gun); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Update after expiry with the server gone: %v, want ErrUnavailable", err)
		}
		st, at, err := VerifyCached(context.Background(), Config{ServerURL: srv.URL, TrustDir: dir, Now: fixedNow(now)}, gun)
		if err != nil {
			t.Fatal(err)
		}
		if !at.Equal(tsExpiry) {
			t.Errorf("verified as of %s, want the timestamp's expiry %s", at, tsExpiry)
		}
		if tgt, err := st.Lookup("v1", nil); err != nil || !tgt.Expires.Equal(tsExpiry) {
			t.Errorf("v1 = %+v, %v; want expiry %s", tgt, err, tsExpiry)
		}
	})

	t.Run("tampered", func(t *testing.T) {
		file := filepath.Join(dir, "tuf", escapeName(gun), "metadata", "targets.json")
		orig, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.WriteFile(file, orig, 0o600) })
		forged := tuftest.EditJSON(t, orig, func(m map[string]interface{}) {
			m["signed"].(map[string]interface{})["targets"].(map[string]interface{})["v1"].(map[string]interface{})["length"] = 1
		})
		if err := os.WriteFile(file, forged, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := VerifyCached(context.Background(), Config{ServerURL: srv.URL, TrustDir: dir, Now: fixedNow(t0.AddDate(0, 2, 0))}, gun); err == nil {
			t.Fatal("a cached targets.json changed on disk verified")
		}
	})

	t.Run("nothing cached", func(t *testing.T) {
		_, _, err := VerifyCached(context.Background(), Config{ServerURL: srv.URL, TrustDir: dir}, "docker.io/library/never")
		if !errors.Is(err, ErrNoTrustData) {
			t.Fatalf("err = %v, want ErrNoTrustData", err)
		}
	})

	guns, err := CachedGUNs(dir)
	if err != nil || len(guns) != 1 || guns[0] != gun {
		t.Errorf("CachedGUNs = %v, %v; want [%s]", guns, err, gun)
	}
}
