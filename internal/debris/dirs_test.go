//go:build unix

package debris

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestSweepDirs: a spill directory is removed only when no process holds its lock and it has
// been untouched for Age; a locked one (a running trustgate's), a young one, one whose name is not
// trustgate's, and a symbolic link are kept.
func TestSweepDirs(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * Age)
	mk := func(name string, age time.Time) string {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "state"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, age, age); err != nil {
			t.Fatal(err)
		}
		return p
	}
	crashed := mk(SpillDirPrefix+"111", old)
	live := mk(SpillDirPrefix+"222", old)
	lock, err := LockDir(live)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	young := mk(SpillDirPrefix+"333", time.Now())
	foreign := mk("trustgate-verified-x", old)
	target := mk("elsewhere", old)
	link := filepath.Join(dir, SpillDirPrefix+"444")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}

	removed, err := SweepDirs(dir, SpillDir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{crashed}) {
		t.Errorf("removed %v, want [%s]", removed, crashed)
	}
	for _, p := range []string{live, young, foreign, target, link} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: %v, want it kept", p, err)
		}
	}
	if _, err := os.Stat(crashed); !os.IsNotExist(err) {
		t.Errorf("%s: %v, want it gone", crashed, err)
	}
	if _, err := LockDir(live); err == nil {
		t.Error("a second lock on a locked directory was granted")
	}
}
