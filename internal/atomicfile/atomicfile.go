// Package atomicfile replaces a file so that a reader, or a restart after a crash, sees the old
// content or the new one, never a part of either.
package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
)

// Replace writes data to dir/name through a temporary file in dir named by pattern (as
// os.CreateTemp takes it, so crash debris keeps a recognisable name): written, synced, closed,
// given perm (0 keeps os.CreateTemp's 0600), then renamed over dir/name. The temporary file is
// removed on any failure. Replace does not sync dir: call SyncDir for the rename itself to survive
// a power loss.
func Replace(dir, name, pattern string, data []byte, perm fs.FileMode) error {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if perm != 0 {
		if err := os.Chmod(tmp, perm); err != nil {
			return err
		}
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

// SyncDir fsyncs a directory, which makes the renames and creations in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
