package resolver

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestEscapeNameNoCollisions: two different GUNs (or roles) never share a trust-dir entry. A
// name longer than maxName once escaped is stored under its hash; a short name that reads
// like such a hash must not land on the same entry (it would load the other GUN's root as its
// trust anchor and its floors as its own).
func TestEscapeNameNoCollisions(t *testing.T) {
	long := "registry.example.com/" + strings.Repeat("deep/", 60) + "app"
	lookalike := escapeName(long)
	if !strings.HasPrefix(lookalike, hashedPrefix) {
		t.Fatalf("escapeName(%d bytes) = %q, want a hashed name", len(long), lookalike)
	}
	for _, pair := range [][2]string{
		{long, lookalike},
		{"targets/" + strings.Repeat("r", 240), escapeName("targets/" + strings.Repeat("r", 240))},
		{"..", escapeName("..")},
	} {
		if a, b := escapeName(pair[0]), escapeName(pair[1]); a == b {
			t.Errorf("escapeName(%q) = escapeName(%q) = %q", pair[0], pair[1], a)
		}
	}
}

// TestWritesSyncNewDirectories: a file is durable once it is renamed into place and its
// directory synced, but a directory that was just created is itself only an entry in its parent,
// which must be synced too. Otherwise a power loss after the first pull of a repository can lose
// its whole directory, trusted root and floors with it, while later writes to it were synced.
func TestWritesSyncNewDirectories(t *testing.T) {
	var synced []string
	s := store{dir: t.TempDir(), sync: func(dir string) error {
		synced = append(synced, dir)
		return nil
	}}
	if err := s.saveFile("example.com/team/app", roleRoot, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	gun := s.gunDir("example.com/team/app")
	for _, dir := range []string{s.dir, filepath.Join(s.dir, "tuf"), gun, filepath.Join(gun, "metadata")} {
		if !slices.Contains(synced, dir) {
			t.Errorf("%s not synced after the first write (synced: %v)", dir, synced)
		}
	}
	synced = nil
	if err := s.saveVersions("example.com/team/app", map[string]int{roleRoot: 1}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(synced, []string{gun}) {
		t.Errorf("versions.json into an existing directory synced %v, want only %s", synced, gun)
	}
}
