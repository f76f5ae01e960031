package resolver_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/resolver"
)

// TestUpgradeFrom7ce1633 loads a trust_dir written by the previous layout (commit 7ce1633, see
// testdata/upgrade-7ce1633/README.md): the cached root is still the anchor (no new TOFU: with
// TOFU disabled and no pin it resolves, without fetching root.json), and every floor it recorded
// still holds (a replay of the first publish is a rollback).
func TestUpgradeFrom7ce1633(t *testing.T) {
	fixture := filepath.Join("testdata", "upgrade-7ce1633")
	now := func() time.Time { return time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC) }
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(fixture, "trust"))); err != nil {
		t.Fatal(err)
	}
	old := readVersions(t, dir)
	cfg := func(c *resolver.Config) {
		c.TrustDir = dir
		c.Now = now
		c.Pinning = resolver.TrustPinning{DisableTOFU: true}
	}

	v2 := tuftest.LoadDir(t, filepath.Join(fixture, "server-v2"))
	srv := tuftest.Serve(t, advGUN, v2)
	got, err := lookup(t, advClient(t, srv.URL, cfg), advGUN, "v2")
	if err != nil || got.Digest.String() != "sha256:"+tuftest.SHA256Hex([]byte("manifest v2, re-signed")) {
		t.Fatalf("upgraded trust_dir, current publish: %+v, %v", got, err)
	}
	if n := srv.Count(advGUN + "/root.json"); n != 0 {
		t.Errorf("root.json fetched %d times: the cached root was not used as the anchor", n)
	}
	for role, v := range old {
		if now := readVersions(t, dir)[role]; now < v {
			t.Errorf("floor of %s went from %d to %d", role, v, now)
		}
	}

	srv.Set(advGUN, tuftest.LoadDir(t, filepath.Join(fixture, "server-v1")))
	_, err = lookup(t, advClient(t, srv.URL, cfg), advGUN, "v2")
	wantErr(t, err, resolver.ErrRollback)
}
