package fanout

import (
	"context"
	"os"
	"sync"

	"github.com/opencontainers/go-digest"
)

// download is the single upstream fetch of one blob into one spool file. Every
// request for the digest (the one that started it included) reads the spool
// through it, so the blob's bytes live on disk and never accumulate in memory.
//
// The spool file is unlinked as soon as it is created (Group.createSpool): the open descriptor is
// the only handle, so the bytes disappear when the last user closes it and a
// crash leaves nothing behind to clean up.
type download struct {
	dgst digest.Digest
	file *os.File

	mu      sync.Mutex
	refs    int   // fetcher + readers + retention; file closed at 0
	size    int64 // -1 until known
	written int64
	done    bool
	err     error // set with done when the download failed
	// progress is closed and replaced on every change so that waiters can
	// select on it together with their own request context, which a
	// sync.Cond cannot do.
	progress chan struct{}
	// sized is closed once size is known or the download failed, so
	// requests can write their headers.
	sized       chan struct{}
	sizedClosed bool
}

func newDownload(f *os.File, dgst digest.Digest) *download {
	return &download{
		dgst:     dgst,
		file:     f,
		size:     -1,
		progress: make(chan struct{}),
		sized:    make(chan struct{}),
	}
}

// acquire must only be called while some other reference is known to be held
// (the Group holds its lock and the download is in flight or retained), so
// refs never goes from 0 back to 1 after the file was closed.
func (d *download) acquire() {
	d.mu.Lock()
	d.refs++
	d.mu.Unlock()
}

func (d *download) release() {
	d.mu.Lock()
	d.refs--
	last := d.refs == 0
	d.mu.Unlock()
	if last {
		d.file.Close()
	}
}

// broadcast wakes every waiter; d.mu must be held.
func (d *download) broadcast() {
	close(d.progress)
	d.progress = make(chan struct{})
}

func (d *download) closeSized() {
	if !d.sizedClosed {
		d.sizedClosed = true
		close(d.sized)
	}
}

// setSize records the size upstream announced. An unknown size (-1) keeps
// requests waiting until the whole blob is spooled and verified, because
// they cannot send Content-Length before that.
func (d *download) setSize(n int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.size = n
	if n >= 0 {
		d.closeSized()
	}
	d.broadcast()
}

func (d *download) publish(written int64) {
	d.mu.Lock()
	d.written = written
	d.broadcast()
	d.mu.Unlock()
}

// finish publishes the verification result. Only after a nil err may
// readers send the final byte of the blob.
func (d *download) finish(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.done = true
	d.err = err
	if err == nil && d.size < 0 {
		d.size = d.written
	}
	d.closeSized()
	d.broadcast()
}

// waitSize blocks until the response headers can be written.
func (d *download) waitSize(ctx context.Context) (int64, error) {
	select {
	case <-d.sized:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// A request that arrives after the verdict gets a proper error status
	// rather than headers followed by an aborted body.
	if d.err != nil {
		return 0, d.err
	}
	return d.size, nil
}

// readable reports how many bytes of the spool are written, whether the
// download is verified, and a channel closed on the next change. Until it is
// verified, responses hold back their own last byte (see tail).
func (d *download) readable() (avail int64, ok bool, changed <-chan struct{}, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.err != nil:
		return 0, false, nil, &failedError{err: d.err}
	case d.done:
		return d.size, true, d.progress, nil
	default:
		return d.written, false, d.progress, nil
	}
}

// verified blocks until the download finished and reports its outcome; a
// response waits for it even when it had nothing to hold back (an empty
// blob).
func (d *download) verified(ctx context.Context) error {
	for {
		d.mu.Lock()
		done, err, ch := d.done, d.err, d.progress
		d.mu.Unlock()
		if done {
			if err != nil {
				return &failedError{err: err}
			}
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// failedError marks errors that come from the shared download (not from
// the client's connection); responses already under way must be aborted.
type failedError struct{ err error }

func (e *failedError) Error() string { return "blob download failed: " + e.err.Error() }
func (e *failedError) Unwrap() error { return e.err }
