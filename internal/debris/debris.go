// Package debris removes the temporary files a killed trustgate leaves behind: blob spools that
// were created but not yet unlinked, and half-written trust state and edge records that were not
// yet renamed into place.
//
// A file is debris only if all of these hold: its name is one of trustgate's own temporary
// patterns, it sits where trustgate puts such files, it is a regular file (a symbolic link is
// never followed, nor removed), it belongs to this process's user, and it was last modified more
// than Age ago.
//
// The age threshold, rather than a lock, is what keeps a sweep from removing a file another
// running trustgate (or `trustgate resolve`, or a second replica on the same disk) is writing:
// each of these files exists under its temporary name only for the span of one write — a spool
// is unlinked right after it is created, a record is renamed right after it is written — so one
// untouched for Age is not in use. A lock would need every writer, including older versions and
// other subcommands, to take it, and a temp_dir such as /tmp is shared with processes that don't.
// Even a wrongly removed temporary file costs no data: its writer's rename fails, and it writes
// again.
package debris

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Age is how long a temporary file must have been left untouched to be taken for debris.
const Age = 10 * time.Minute

// Spool reports whether name is a blob spool the fan-out creates: os.CreateTemp(dir,
// "fanout-spool-*"), whose random part is decimal digits.
func Spool(name string) bool { return madeTemp(name, "fanout-spool-") }

// madeTemp reports whether name is one os.CreateTemp or os.MkdirTemp made from prefix+"*": the
// prefix, then the decimal digits of its random part.
func madeTemp(name, prefix string) bool {
	rest, ok := strings.CutPrefix(name, prefix)
	return ok && rest != "" && strings.Trim(rest, "0123456789") == ""
}

// Temp reports whether name is a file written to be renamed into place (resolver state, edge
// records): ".tmp-" followed by anything.
func Temp(name string) bool { return strings.HasPrefix(name, ".tmp-") && len(name) > len(".tmp-") }

// Sweep removes the debris in dir whose names match: in dir alone, or in its whole tree if
// recursive (symbolic links to directories are not descended into). A missing dir holds none. It
// returns what it removed; errors for single files are joined and do not stop the sweep.
func Sweep(dir string, recursive bool, match func(name string) bool, now time.Time) (removed []string, err error) {
	var errs []error
	walkErr := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		switch {
		case err != nil && path == dir && errors.Is(err, fs.ErrNotExist):
			return fs.SkipAll
		case err != nil:
			errs = append(errs, err)
			return nil
		case e.IsDir() && path != dir && !recursive:
			return fs.SkipDir
		case !e.Type().IsRegular() || !match(e.Name()):
			return nil
		}
		switch ok, err := Remove(path, match, now); {
		case err != nil:
			errs = append(errs, err)
		case ok:
			removed = append(removed, path)
		}
		return nil
	})
	return removed, errors.Join(append(errs, walkErr)...)
}

// Remove removes the file at path if it is debris by the rules above, for a caller that walks the
// directory itself; ok says whether it did.
func Remove(path string, match func(name string) bool, now time.Time) (ok bool, err error) {
	if !match(filepath.Base(path)) {
		return false, nil
	}
	info, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case !info.Mode().IsRegular() || !owned(info) || now.Sub(info.ModTime()) < Age:
		return false, nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return true, nil
}
