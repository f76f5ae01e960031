package resolver_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/resolver"
)

// The trust-state suite attacks what the resolver remembers between updates: version floors
// after a partial update, after a crash and across restarts. Each case is a replay that notary
// v0.7.0 refuses because its cache holds every role the moment it verified.

// gunDir is the store's directory for advGUN under trustDir (see store.go for the escaping).
func gunDir(trustDir string) string {
	return filepath.Join(trustDir, "tuf", "example.com%2Fteam%2Fapp")
}

func readVersions(t *testing.T, trustDir string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(gunDir(trustDir), "versions.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]int
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestPartialUpdateReplay: a newer publish is verified only in part (the rest fails: outage,
// or a role that does not verify); then the server replays the files of the last complete
// state. The roles that verified must already hold their floors, in memory and on disk.
func TestPartialUpdateReplay(t *testing.T) {
	for _, tc := range []struct {
		name string
		// fail makes the update to the new files fail after some roles verified.
		fail func(t *testing.T, r *tuftest.Repo, s *tuftest.Server, files map[string][]byte)
	}{
		{name: "snapshot fetch fails after the newer timestamp verified",
			fail: func(t *testing.T, r *tuftest.Repo, s *tuftest.Server, files map[string][]byte) {
				s.Override(advGUN, "snapshot."+tuftest.SHA256Hex(files["snapshot.json"])+".json", tuftest.Response{Status: 503})
			}},
		{name: "targets fetch fails after the newer snapshot verified",
			fail: func(t *testing.T, r *tuftest.Repo, s *tuftest.Server, files map[string][]byte) {
				s.Override(advGUN, "targets."+tuftest.SHA256Hex(files["targets.json"])+".json", tuftest.Response{Status: 503})
			}},
		{name: "publish refused: targets signed by a key root does not list",
			fail: func(t *testing.T, r *tuftest.Repo, s *tuftest.Server, files map[string][]byte) {
				r.SignWith("targets", advKey(t))
				r.AddTarget("targets", "v1", []byte("refused"))
				s.Set(advGUN, r.Publish())
			}},
	} {
		for _, restart := range []bool{false, true} {
			name := tc.name
			if restart {
				name += "/restarted from TrustDir"
			}
			t.Run(name, func(t *testing.T) {
				r := tuftest.NewRepo(t, advGUN)
				advBasic(t, r)
				srv := tuftest.Serve(t, advGUN, r.Publish())
				dir := t.TempDir()
				withDir := func(c *resolver.Config) { c.TrustDir = dir }
				c := advClient(t, srv.URL, withDir)
				if _, err := lookup(t, c, advGUN, "v1"); err != nil {
					t.Fatalf("first pull: %v", err)
				}
				old := srv.Files(advGUN)

				r.AddTarget("targets", "v1", []byte("v1 new"))
				files := r.Publish()
				srv.Set(advGUN, files)
				tc.fail(t, r, srv, files)
				if _, err := lookup(t, c, advGUN, "v1"); err == nil {
					t.Fatal("the partial update succeeded")
				} else {
					t.Logf("partial update: %v", err)
				}

				srv.Set(advGUN, old)
				if restart {
					c = advClient(t, srv.URL, withDir)
				}
				_, err := lookup(t, c, advGUN, "v1")
				wantErr(t, err, resolver.ErrRollback)
			})
		}
	}
}

// TestStaleVersionsFile: trustgate stopped after it wrote a role's metadata and before it wrote
// versions.json (or versions.json is gone). The metadata on disk still sets the floor.
func TestStaleVersionsFile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stale func(t *testing.T, dir string, before []byte)
	}{
		{name: "versions.json from before the last update", stale: func(t *testing.T, dir string, before []byte) {
			if err := os.WriteFile(filepath.Join(gunDir(dir), "versions.json"), before, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "versions.json missing", stale: func(t *testing.T, dir string, _ []byte) {
			if err := os.Remove(filepath.Join(gunDir(dir), "versions.json")); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tuftest.NewRepo(t, advGUN)
			advBasic(t, r)
			srv := tuftest.Serve(t, advGUN, r.Publish())
			dir := t.TempDir()
			withDir := func(c *resolver.Config) { c.TrustDir = dir }
			if _, err := lookup(t, advClient(t, srv.URL, withDir), advGUN, "v1"); err != nil {
				t.Fatalf("first pull: %v", err)
			}
			old := srv.Files(advGUN)
			before, err := os.ReadFile(filepath.Join(gunDir(dir), "versions.json"))
			if err != nil {
				t.Fatal(err)
			}

			r.AddTarget("targets", "v1", []byte("v1 new"))
			srv.Set(advGUN, r.Publish())
			if _, err := lookup(t, advClient(t, srv.URL, withDir), advGUN, "v1"); err != nil {
				t.Fatalf("second pull: %v", err)
			}
			tc.stale(t, dir, before)

			srv.Set(advGUN, old)
			_, err = lookup(t, advClient(t, srv.URL, withDir), advGUN, "v1")
			wantErr(t, err, resolver.ErrRollback)
		})
	}
}

// TestPersistFailureFailsClosed: a floor that cannot be written is not a floor. An update whose
// state cannot be persisted fails with ErrUnavailable instead of serving what it cannot
// remember.
func TestPersistFailureFailsClosed(t *testing.T) {
	r := tuftest.NewRepo(t, advGUN)
	advBasic(t, r)
	srv := tuftest.Serve(t, advGUN, r.Publish())
	dir := t.TempDir()
	c := advClient(t, srv.URL, func(c *resolver.Config) { c.TrustDir = dir })
	if _, err := lookup(t, c, advGUN, "v1"); err != nil {
		t.Fatalf("first pull: %v", err)
	}
	// A non-empty directory where versions.json goes: the atomic rename fails, even for root.
	vf := filepath.Join(gunDir(dir), "versions.json")
	if err := os.Remove(vf); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(vf, "blocker"), 0o700); err != nil {
		t.Fatal(err)
	}
	r.AddTarget("targets", "v1", []byte("v1 new"))
	srv.Set(advGUN, r.Publish())
	_, err := lookup(t, c, advGUN, "v1")
	wantErr(t, err, resolver.ErrUnavailable)
}

// TestFloorsFromEveryFile: the floor of every role is the highest of versions.json and the
// version in its cached file, each read on load.
func TestFloorsFromEveryFile(t *testing.T) {
	r := tuftest.NewRepo(t, advGUN)
	advBasic(t, r)
	for range 3 {
		r.AddTarget("targets/releases", "v2", []byte{byte(r.Version("targets/releases"))})
		r.Publish()
	}
	srv := tuftest.Serve(t, advGUN, r.Publish())
	dir := t.TempDir()
	withDir := func(c *resolver.Config) { c.TrustDir = dir }
	if _, err := lookup(t, advClient(t, srv.URL, withDir), advGUN, "v2"); err != nil {
		t.Fatalf("first pull: %v", err)
	}
	got := readVersions(t, dir)
	for _, role := range []string{"root", "timestamp", "snapshot", "targets", "targets/releases"} {
		if got[role] != r.Version(role) {
			t.Errorf("versions.json %s = %d, want %d", role, got[role], r.Version(role))
		}
	}
	// versions.json forgets targets/releases; its cached file remembers.
	if err := os.WriteFile(filepath.Join(gunDir(dir), "versions.json"), []byte(`{"root":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r.SetVersion("targets/releases", r.Version("targets/releases")-1)
	r.AddTarget("targets/releases", "v2", []byte("rolled back"))
	srv.Set(advGUN, r.Publish())
	_, err := lookup(t, advClient(t, srv.URL, withDir), advGUN, "v2")
	wantErr(t, err, resolver.ErrRollback)
}

// TestDelegationReadded: `notary delegation remove targets/releases` and, later, adding it
// again starts a new role at version 1. Once a verified parent no longer lists the delegation
// its floor is forgotten (notary's old builder cannot load the cached file without a parent
// that lists it), so the new role resolves; the floor is never forgotten on less than that.
func TestDelegationReadded(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := "same client"
		if restart {
			name = "restarted from TrustDir"
		}
		t.Run(name, func(t *testing.T) {
			r := tuftest.NewRepo(t, advGUN)
			advBasic(t, r)
			for i := range 3 {
				r.AddTarget("targets/releases", "v2", []byte{byte(i)})
				r.Publish()
			}
			srv := tuftest.Serve(t, advGUN, r.Publish())
			dir := t.TempDir()
			withDir := func(c *resolver.Config) { c.TrustDir = dir }
			c := advClient(t, srv.URL, withDir)
			if _, err := lookup(t, c, advGUN, "v2"); err != nil {
				t.Fatalf("first pull: %v", err)
			}

			r.RemoveDelegation("targets/releases")
			srv.Set(advGUN, r.Publish())
			_, err := lookup(t, c, advGUN, "v2")
			wantErr(t, err, resolver.ErrTagNotSigned)
			if _, err := os.Stat(filepath.Join(gunDir(dir), "metadata", "targets%2Freleases.json")); !os.IsNotExist(err) {
				t.Errorf("cached file of the removed delegation: %v, want it gone", err)
			}
			if v, ok := readVersions(t, dir)["targets/releases"]; ok {
				t.Errorf("versions.json still holds targets/releases at %d", v)
			}

			r.AddDelegation("targets/releases", []*tuftest.Key{advKey(t)}, nil, 1)
			want := r.AddTarget("targets/releases", "v2", []byte("re-added"))
			srv.Set(advGUN, r.Publish())
			if restart {
				c = advClient(t, srv.URL, withDir)
			}
			got, err := lookup(t, c, advGUN, "v2")
			if err != nil || got.Digest.String() != want || got.Role != "targets/releases" {
				t.Fatalf("re-added delegation: %+v, %v; want %s", got, err, want)
			}
		})
	}
}

// TestDelegationFloorKept: the cases where a delegation's floor must survive.
func TestDelegationFloorKept(t *testing.T) {
	t.Run("removed and re-added in one publish", func(t *testing.T) {
		// No verified parent ever omitted it: notary's cache still vouches for version 3.
		r := tuftest.NewRepo(t, advGUN)
		advBasic(t, r)
		for i := range 3 {
			r.AddTarget("targets/releases", "v2", []byte{byte(i)})
			r.Publish()
		}
		srv := tuftest.Serve(t, advGUN, r.Publish())
		c := advClient(t, srv.URL)
		if _, err := lookup(t, c, advGUN, "v2"); err != nil {
			t.Fatalf("first pull: %v", err)
		}
		r.RemoveDelegation("targets/releases")
		r.AddDelegation("targets/releases", []*tuftest.Key{advKey(t)}, nil, 1)
		r.AddTarget("targets/releases", "v2", []byte("re-added"))
		srv.Set(advGUN, r.Publish())
		_, err := lookup(t, c, advGUN, "v2")
		wantErr(t, err, resolver.ErrRollback)
	})
	t.Run("rolled back and signed by a key the parent does not list", func(t *testing.T) {
		// notary checks a delegation's version before its signatures: a rollback is fatal,
		// not a delegation skipped as under its threshold (which would let targets answer).
		r := tuftest.NewRepo(t, advGUN)
		advBasic(t, r)
		r.SetVersion("targets/releases", 3)
		r.AddTarget("targets/releases", "v2", []byte("three"))
		srv := tuftest.Serve(t, advGUN, r.Publish())
		c := advClient(t, srv.URL)
		if _, err := lookup(t, c, advGUN, "v2"); err != nil {
			t.Fatalf("first pull: %v", err)
		}
		r.SetVersion("targets/releases", 2)
		r.SignWith("targets/releases", advKey(t))
		r.AddTarget("targets", "v3", []byte("parent re-signed"))
		srv.Set(advGUN, r.Publish())
		_, err := lookup(t, c, advGUN, "v1")
		wantErr(t, err, resolver.ErrRollback)
	})
	t.Run("parent skipped as expired", func(t *testing.T) {
		// targets/a is expired for one publish, so targets/a/b is not visited; a's listing of b
		// was not re-verified, so b keeps its floor.
		r := tuftest.NewRepo(t, advGUN)
		advBasic(t, r)
		r.AddDelegation("targets/a", []*tuftest.Key{advKey(t)}, nil, 1)
		r.AddDelegation("targets/a/b", []*tuftest.Key{advKey(t)}, nil, 1)
		r.SetVersion("targets/a/b", 3)
		r.AddTarget("targets/a/b", "x", []byte("x"))
		srv := tuftest.Serve(t, advGUN, r.Publish())
		dir := t.TempDir()
		c := advClient(t, srv.URL, func(c *resolver.Config) { c.TrustDir = dir })
		if _, err := lookup(t, c, advGUN, "v1"); err != nil {
			t.Fatalf("first pull: %v", err)
		}
		r.SetExpiry("targets/a", past())
		srv.Set(advGUN, r.Publish())
		if _, err := lookup(t, c, advGUN, "v1"); err != nil {
			t.Fatalf("pull with targets/a expired: %v", err)
		}
		if readVersions(t, dir)["targets/a/b"] != 3 {
			t.Fatalf("floor of targets/a/b lost while its parent was skipped: %v", readVersions(t, dir))
		}
		r.SetExpiry("targets/a", past().AddDate(1, 0, 0))
		r.SetVersion("targets/a/b", 2)
		r.AddTarget("targets/a/b", "x", []byte("rolled back"))
		srv.Set(advGUN, r.Publish())
		_, err := lookup(t, c, advGUN, "v1")
		wantErr(t, err, resolver.ErrRollback)
	})
}

// TestPinnedRootRotation: notary applies trust_pinning when it has no trusted root (and when the
// cached one has expired), never to a rotation the trusted root signs. EveryRoot is the stricter
// mode: every root, the cached one included, must match the pins.
func TestPinnedRootRotation(t *testing.T) {
	for _, tc := range []struct {
		name      string
		everyRoot bool
		restart   bool
		want      []error // nil: the rotated root is accepted
	}{
		{name: "default"},
		{name: "default, restarted from TrustDir", restart: true},
		{name: "every root", everyRoot: true, want: []error{resolver.ErrPinMismatch}},
		{name: "every root, restarted from TrustDir", everyRoot: true, restart: true, want: []error{resolver.ErrPinMismatch}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tuftest.NewRepo(t, advGUN)
			advBasic(t, r)
			srv := tuftest.Serve(t, advGUN, r.Publish())
			dir := t.TempDir()
			pinned := r.RootKeyIDs()
			cfg := func(c *resolver.Config) {
				c.TrustDir = dir
				c.Pinning = resolver.TrustPinning{Certs: map[string][]string{advGUN: pinned}, DisableTOFU: true, EveryRoot: tc.everyRoot}
			}
			c := advClient(t, srv.URL, cfg)
			if _, err := lookup(t, c, advGUN, "v1"); err != nil {
				t.Fatalf("first pull: %v", err)
			}
			r.RotateRoot() // a new root key, cross-signed by the pinned one
			want := r.AddTarget("targets", "v1", []byte("after rotation"))
			srv.Set(advGUN, r.Publish())
			if tc.restart {
				c = advClient(t, srv.URL, cfg)
			}
			got, err := lookup(t, c, advGUN, "v1")
			if tc.want != nil {
				wantErr(t, err, tc.want...)
				return
			}
			if err != nil || got.Digest.String() != want {
				t.Fatalf("after a rotation signed by the pinned root: %+v, %v; want %s", got, err, want)
			}
		})
	}
}

// TestPinsChangedAfterTrust: a root trusted before the pins changed stays the anchor (notary:
// "the root on disk is the source of trust pinning") unless EveryRoot is set.
func TestPinsChangedAfterTrust(t *testing.T) {
	r := tuftest.NewRepo(t, advGUN)
	advBasic(t, r)
	srv := tuftest.Serve(t, advGUN, r.Publish())
	dir := t.TempDir()
	if _, err := lookup(t, advClient(t, srv.URL, func(c *resolver.Config) { c.TrustDir = dir }), advGUN, "v1"); err != nil {
		t.Fatalf("first pull (TOFU): %v", err)
	}
	other := tuftest.NewRepo(t, advGUN).RootKeyIDs()
	for _, everyRoot := range []bool{false, true} {
		c := advClient(t, srv.URL, func(c *resolver.Config) {
			c.TrustDir = dir
			c.Pinning = resolver.TrustPinning{Certs: map[string][]string{advGUN: other}, EveryRoot: everyRoot}
		})
		_, err := lookup(t, c, advGUN, "v1")
		if everyRoot {
			wantErr(t, err, resolver.ErrPinMismatch)
		} else if err != nil {
			t.Errorf("default mode, cached root and a pin to another key: %v", err)
		}
	}
}

// TestPinnedSuccessorOfExpiredRoot: when the cached root has expired, notary fetches its
// successor with the pins applied (BootstrapNewBuilderWithNewTrustpin), even by default.
func TestPinnedSuccessorOfExpiredRoot(t *testing.T) {
	start := time.Now()
	r := tuftest.NewRepo(t, advGUN)
	r.SetExpiry(tuftest.Root, start.Add(time.Hour))
	advBasic(t, r)
	srv := tuftest.Serve(t, advGUN, r.Publish())
	dir := t.TempDir()
	pinned := r.RootKeyIDs()
	now := start
	c := advClient(t, srv.URL, func(c *resolver.Config) {
		c.TrustDir = dir
		c.Now = func() time.Time { return now }
		c.Pinning = resolver.TrustPinning{Certs: map[string][]string{advGUN: pinned}}
	})
	if _, err := lookup(t, c, advGUN, "v1"); err != nil {
		t.Fatalf("first pull: %v", err)
	}
	r.RotateRoot()
	r.SetExpiry(tuftest.Root, start.AddDate(1, 0, 0))
	srv.Set(advGUN, r.Publish())
	now = start.Add(2 * time.Hour)
	_, err := lookup(t, c, advGUN, "v1")
	wantErr(t, err, resolver.ErrPinMismatch)
}
