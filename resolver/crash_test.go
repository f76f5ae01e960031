package resolver_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/resolver"
)

// The crash suite stops trustgate between two writes of one update (by restoring what the
// trust_dir held before the writes that did not happen) and restarts it from the trust_dir.
// What is on disk after any prefix of the writes must neither lose a floor nor keep one that a
// verified parent has already dropped.

// snapshotDir copies every regular file under dir (relative path → bytes).
func snapshotDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func restoreFile(t *testing.T, dir, rel string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, rel), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestInterruptedForget: a verified targets stops listing targets/releases, and trustgate stops
// while it forgets the delegation (after targets.json is written, before the delegation's
// floor and file are both gone). The publisher then adds the delegation again at version 1.
// notary accepts it (its cache's targets.json no longer lists the old file, so that file sets
// no floor); trustgate must too, instead of refusing every tag as a rollback forever.
func TestInterruptedForget(t *testing.T) {
	releases := filepath.Join("tuf", "example.com%2Fteam%2Fapp", "metadata", "targets%2Freleases.json")
	versions := filepath.Join("tuf", "example.com%2Fteam%2Fapp", "versions.json")
	for _, tc := range []struct {
		name    string
		restore []string // files of the trust_dir put back as they were before the forgetting update
	}{
		{name: "stopped after targets.json was written", restore: []string{versions, releases}},
		{name: "stopped after versions.json was written", restore: []string{releases}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tuftest.NewRepo(t, advGUN)
			advBasic(t, r)
			for i := range 3 {
				r.AddTarget("targets/releases", "v2", []byte{byte(i)})
				r.Publish()
			}
			srv := tuftest.Serve(t, advGUN, r.Publish())
			dir := t.TempDir()
			withDir := func(c *resolver.Config) { c.TrustDir = dir }
			if _, err := lookup(t, advClient(t, srv.URL, withDir), advGUN, "v2"); err != nil {
				t.Fatalf("first pull: %v", err)
			}
			before := snapshotDir(t, dir)

			r.RemoveDelegation("targets/releases")
			srv.Set(advGUN, r.Publish())
			_, err := lookup(t, advClient(t, srv.URL, withDir), advGUN, "v2")
			wantErr(t, err, resolver.ErrTagNotSigned)
			for _, rel := range tc.restore {
				restoreFile(t, dir, rel, before[rel])
			}

			r.AddDelegation("targets/releases", []*tuftest.Key{advKey(t)}, nil, 1)
			want := r.AddTarget("targets/releases", "v2", []byte("re-added"))
			srv.Set(advGUN, r.Publish())
			c := advClient(t, srv.URL, withDir)
			got, err := lookup(t, c, advGUN, "v2")
			if err != nil || got.Digest.String() != want {
				t.Fatalf("re-added delegation after an interrupted forget: %+v, %v; want %s", got, err, want)
			}
			if v := readVersions(t, dir)["targets/releases"]; v != 1 {
				t.Errorf("versions.json targets/releases = %d, want 1", v)
			}
		})
	}
}

// TestInterruptedForgetKeepsListedFloors: the load-time check that drops what a cached parent
// no longer lists must keep everything a cached parent does list, and every top-level role.
func TestInterruptedForgetKeepsListedFloors(t *testing.T) {
	r := tuftest.NewRepo(t, advGUN)
	advBasic(t, r)
	r.AddDelegation("targets/releases/rc", []*tuftest.Key{advKey(t)}, nil, 1)
	r.SetVersion("targets/releases/rc", 4)
	r.AddTarget("targets/releases/rc", "rc", []byte("rc"))
	for i := range 3 {
		r.AddTarget("targets/releases", "v2", []byte{byte(i)})
		r.Publish()
	}
	srv := tuftest.Serve(t, advGUN, r.Publish())
	dir := t.TempDir()
	withDir := func(c *resolver.Config) { c.TrustDir = dir }
	if _, err := lookup(t, advClient(t, srv.URL, withDir), advGUN, "v2"); err != nil {
		t.Fatalf("first pull: %v", err)
	}
	r.SetVersion("targets/releases/rc", 3)
	r.AddTarget("targets/releases/rc", "rc", []byte("rolled back"))
	srv.Set(advGUN, r.Publish())
	_, err := lookup(t, advClient(t, srv.URL, withDir), advGUN, "v2")
	wantErr(t, err, resolver.ErrRollback)
	if !strings.Contains(err.Error(), "targets/releases/rc") {
		t.Errorf("refused for another reason: %v", err)
	}
}

// TestStaleVersionsFileLongDelegationName: a delegation name whose escaped form is too long for
// a file name is stored under a hashed name. Stopped after its file was written and before
// versions.json, the file must still set the floor on load.
func TestStaleVersionsFileLongDelegationName(t *testing.T) {
	long := "targets/" + strings.Repeat("r", 240)
	r := tuftest.NewRepo(t, advGUN)
	advBasic(t, r)
	r.AddDelegation(long, []*tuftest.Key{advKey(t)}, nil, 1)
	r.SetVersion(long, 3)
	r.AddTarget(long, "x", []byte("three"))
	srv := tuftest.Serve(t, advGUN, r.Publish())
	dir := t.TempDir()
	withDir := func(c *resolver.Config) { c.TrustDir = dir }
	if _, err := lookup(t, advClient(t, srv.URL, withDir), advGUN, "v1"); err != nil {
		t.Fatalf("first pull: %v", err)
	}
	before := snapshotDir(t, dir)
	r.AddTarget(long, "x", []byte("four"))
	srv.Set(advGUN, r.Publish())
	if _, err := lookup(t, advClient(t, srv.URL, withDir), advGUN, "v1"); err != nil {
		t.Fatalf("second pull: %v", err)
	}
	if v := readVersions(t, dir)[long]; v != 4 {
		t.Fatalf("versions.json %s = %d, want 4", long, v)
	}
	versions := filepath.Join("tuf", "example.com%2Fteam%2Fapp", "versions.json")
	restoreFile(t, dir, versions, before[versions])

	// Replay the delegation at version 3 under the newer snapshot and timestamp.
	r.SetVersion(long, 3)
	r.AddTarget(long, "x", []byte("three again"))
	srv.Set(advGUN, r.Publish())
	_, err := lookup(t, advClient(t, srv.URL, withDir), advGUN, "v1")
	wantErr(t, err, resolver.ErrRollback)
}

// TestOddFilesInTrustDir: trustgate only ever writes regular files into the trust_dir, by
// atomic rename. Anything else where a role's file or versions.json belongs (a symlink to a
// device that never ends, a FIFO that blocks on open, a directory) must make the Update fail
// closed, quickly and within bounded memory, never hang it or start a new TOFU.
func TestOddFilesInTrustDir(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string // relative to the GUN's directory
		make func(t *testing.T, p string)
	}{
		{name: "timestamp.json is a symlink to /dev/zero", file: "metadata/timestamp.json",
			make: func(t *testing.T, p string) { mustDo(t, os.Symlink("/dev/zero", p)) }},
		{name: "root.json is a FIFO", file: "metadata/root.json",
			make: func(t *testing.T, p string) { mustDo(t, syscall.Mkfifo(p, 0o600)) }},
		{name: "versions.json is a FIFO", file: "versions.json",
			make: func(t *testing.T, p string) { mustDo(t, syscall.Mkfifo(p, 0o600)) }},
		{name: "targets.json is a directory", file: "metadata/targets.json",
			make: func(t *testing.T, p string) { mustDo(t, os.Mkdir(p, 0o700)) }},
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
			p := filepath.Join(gunDir(dir), filepath.FromSlash(tc.file))
			mustDo(t, os.Remove(p))
			tc.make(t, p)
			srv.ResetRequests()
			done := make(chan error, 1)
			go func() {
				_, err := lookup(t, advClient(t, srv.URL, withDir), advGUN, "v1")
				done <- err
			}()
			select {
			case err := <-done:
				wantErr(t, err, resolver.ErrInvalid)
			case <-time.After(10 * time.Second):
				t.Fatal("Update did not return within 10s")
			}
			if n := srv.Count(advGUN + "/root.json"); n != 0 {
				t.Errorf("root.json fetched %d times: trust on first use again", n)
			}
		})
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestSharedTrustDirNeverLowersAFile: `trustgate resolve` uses the trust_dir of a running
// `trustgate serve`, so two resolvers can write one repository's state. One that loaded the
// state before the other verified a newer publish must not overwrite the newer file with an
// older one it is shown (its own floor allows it): after a restart the floor would be the older
// version, and the file between the two could be replayed.
func TestSharedTrustDirNeverLowersAFile(t *testing.T) {
	r := tuftest.NewRepo(t, advGUN)
	advBasic(t, r)
	srv := tuftest.Serve(t, advGUN, r.Publish())
	dir := t.TempDir()
	withDir := func(c *resolver.Config) { c.TrustDir = dir }
	serve, resolve := advClient(t, srv.URL, withDir), advClient(t, srv.URL, withDir)
	for _, c := range []*resolver.Client{serve, resolve} {
		if _, err := lookup(t, c, advGUN, "v1"); err != nil {
			t.Fatalf("first pull: %v", err)
		}
	}
	r.AddTarget("targets", "v1", []byte("six"))
	six := r.Publish()
	r.AddTarget("targets", "v1", []byte("seven"))
	srv.Set(advGUN, r.Publish())
	if _, err := lookup(t, serve, advGUN, "v1"); err != nil {
		t.Fatalf("serve pulls the newest: %v", err)
	}
	srv.Set(advGUN, six)
	_, err := lookup(t, resolve, advGUN, "v1")
	wantErr(t, err, resolver.ErrRollback)

	_, err = lookup(t, advClient(t, srv.URL, withDir), advGUN, "v1")
	wantErr(t, err, resolver.ErrRollback)
}
