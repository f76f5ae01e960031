package oracle_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// loadFixture reads a directory of notary metadata into the file map tuftest.Server serves,
// keyed by URL name ("root.json", "2.root.json", "targets/releases.json").
func loadFixture(t testing.TB, dir string) map[string][]byte {
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
	if err != nil {
		t.Fatal(err)
	}
	return files
}
