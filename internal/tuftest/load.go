package tuftest

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// LoadDir reads a directory of Notary metadata (such as the real fixtures) into the file map
// Server serves, keyed by URL name: "root.json", "2.root.json", "targets/releases.json".
// An unreadable or empty directory fails the test: a fixture that silently loads nothing would
// turn every case built on it into a test of nothing.
func LoadDir(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil || len(files) == 0 {
		t.Fatalf("tuftest: loading %s: %v (%d files)", dir, err, len(files))
	}
	return files
}
