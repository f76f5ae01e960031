package fanout

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// The spool directory is the operator's disk, not an assumption: it may be
// full, deleted, read-only or unwritable while trustgate runs. Each request
// tries it afresh (no failed state is kept), a missing directory is
// recreated, and a full filesystem first gives up retained spools, oldest
// first, before a download fails with ErrSpool.

// createSpool creates and unlinks a spool file in the spool directory. The
// caller holds g.mu.
func (g *Group) createSpool() (*os.File, error) {
	dir := g.opts.Dir
	recreated := false
	for {
		f, err := os.CreateTemp(dir, "fanout-spool-*")
		if err == nil {
			if err := os.Remove(f.Name()); err != nil {
				f.Close()
				return nil, g.spoolError("unlink spool file", err)
			}
			return f, nil
		}
		switch {
		case errors.Is(err, fs.ErrNotExist) && !recreated:
			recreated = true
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, g.spoolError("recreate spool directory", err)
			}
			g.log.Warn("recreated missing blob spool directory", "dir", dir)
		case errors.Is(err, syscall.ENOSPC) && g.keep.evictOldest():
			// Out of inodes or blocks: retry with one retained spool fewer.
		default:
			return nil, g.spoolError("create spool file", err)
		}
	}
}

// spoolWrite runs a write to the spool (preallocation included) and, while
// the filesystem is full, evicts the oldest retained spool and retries.
func (g *Group) spoolWrite(op string, write func() error) error {
	for {
		err := write()
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.ENOSPC) || !g.evictOldest() {
			return g.spoolError(op, err)
		}
	}
}

func (g *Group) evictOldest() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.keep.evictOldest()
}

// makeRoom evicts retained spools, oldest first, until a download of n
// bytes fits both MaxSpoolBytes and the free space of the spool's
// filesystem. Evicting a spool frees its blocks once no response reads it
// any more.
func (g *Group) makeRoom(n int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.keep.makeRoom(n)
	if n <= 0 {
		return
	}
	for g.keep.lru.Len() > 0 {
		free, ok := diskFree(g.opts.Dir)
		if !ok || free >= n {
			return
		}
		g.keep.evictOldest()
	}
}

// spoolError logs err with the spool path and returns it as ErrSpool with
// only the reason (the errno): the path is the operator's, not the client's.
func (g *Group) spoolError(op string, err error) error {
	g.log.Warn("blob spool unavailable", "dir", g.opts.Dir, "op", op, "err", err)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("%w: %s: %w", ErrSpool, op, err)
}
