package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReplace(t *testing.T) {
	dir := t.TempDir()
	for i, tc := range []struct {
		data string
		perm os.FileMode
		want os.FileMode
	}{{"one", 0, 0o600}, {"two", 0o644, 0o644}} {
		if err := Replace(dir, "f.json", ".tmp-f-*", []byte(tc.data), tc.perm); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "f.json"))
		if err != nil || string(b) != tc.data {
			t.Fatalf("write %d: read %q, %v", i, b, err)
		}
		fi, _ := os.Stat(filepath.Join(dir, "f.json"))
		if fi.Mode().Perm() != tc.want {
			t.Errorf("write %d: mode %v, want %v", i, fi.Mode().Perm(), tc.want)
		}
	}
	if err := SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
}

// A rename that cannot happen (the target is a directory) leaves the old content and no
// temporary file.
func TestReplaceFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "f.json"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f.json", "keep"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Replace(dir, "f.json", ".tmp-f-*", []byte("x"), 0); err == nil {
		t.Fatal("replaced a non-empty directory")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "f.json" {
		t.Errorf("left behind: %v", entries)
	}
}
