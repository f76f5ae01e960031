package debris

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// SpillDirPrefix starts the name of a directory of verified trust states a running trustgate
// keeps (package cache): os.MkdirTemp(temp_dir, SpillDirPrefix+"*"). Unlike the temporary files
// above, such a directory lives as long as its process, however long it goes untouched, so its
// owner holds a lock on it (LockDir) for as long as it uses it; the lock goes with the process.
const SpillDirPrefix = "trustgate-verified-"

// SpillDir reports whether name is a directory of verified trust states (SpillDirPrefix and
// os.MkdirTemp's decimal random part).
func SpillDir(name string) bool { return madeTemp(name, SpillDirPrefix) }

// LockDir takes the lock that marks dir as in use by this process until Close: SweepDirs never
// removes a directory whose lock is held.
func LockDir(dir string) (io.Closer, error) { return lockDir(dir) }

// SweepDirs removes the directories directly in dir whose names match and that no running
// process uses: a directory (a symbolic link is never followed, nor removed) of this process's
// user, last modified more than Age ago, whose lock (LockDir) it can take. The age keeps a sweep
// from taking a directory in the moment between its creation and its owner's LockDir. It
// returns what it removed; errors for single directories are joined and do not stop the sweep.
// Where locks are not supported (not unix) nothing is removed.
func SweepDirs(dir string, match func(name string) bool, now time.Time) (removed []string, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || !match(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		info, err := os.Lstat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			errs = append(errs, err)
			continue
		case !info.IsDir() || !owned(info) || now.Sub(info.ModTime()) < Age:
			continue
		}
		ok, err := removeUnlocked(path)
		switch {
		case err != nil:
			errs = append(errs, err)
		case ok:
			removed = append(removed, path)
		}
	}
	return removed, errors.Join(errs...)
}
