package resolver

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
)

// Limits bound the memory and concurrency that trust fetches may take, whatever a trust server
// sends. Zero fields select the defaults below.
type Limits struct {
	// MaxMetadataBytes bounds the metadata bodies being downloaded at once, summed over every
	// fetch of every Client sharing the Limiter. Buffers are reserved as bytes arrive (never from
	// a Content-Length); a fetch that would go past the budget fails with ErrUnavailable, so a
	// still-valid cached timestamp stands in as for any outage. It is also the largest file that
	// can be fetched at all.
	MaxMetadataBytes int64
	// MaxConcurrentBootstraps bounds first-contact root.json fetches (repositories with no trusted
	// root yet) per Client, that is per trust server, so one server that stalls cannot hold up
	// another's. Further ones wait for a slot as long as their context allows, then fail with
	// ErrUnavailable.
	MaxConcurrentBootstraps int
	// MaxRootBytes caps root.json and N.root.json, the only files fetched without a length from a
	// signed parent (notary caps them at 100 MiB; real roots are a few KiB). A longer body is read
	// only up to the cap, so it cannot verify; a root listed by the snapshot is fetched by checksum
	// with the snapshot's length instead.
	MaxRootBytes int64
}

// Defaults for Limits.
const (
	DefaultMaxMetadataBytes        = 64 << 20
	DefaultMaxConcurrentBootstraps = 8
	DefaultMaxRootBytes            = 1 << 20
)

// readChunk is the first buffer a fetch reserves; buffers double from there as bytes arrive.
const readChunk = 4 << 10

// Limiter enforces Limits. Share one among every Client of a process so that the byte budget
// holds in total, not per trust server.
type Limiter struct {
	limits Limits
	bytes  *budget
	boot   chan struct{} // first-contact slots; each Client has its own (forClient)
}

// budget counts bytes reserved out of max. Reads never wait for it (a read that waited while
// holding part of the budget could deadlock with the others), so a counter is all it takes.
type budget struct {
	max  int64
	used atomic.Int64
}

// TryAcquire reserves n bytes if that keeps the total within max.
func (b *budget) TryAcquire(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// Release returns n reserved bytes.
func (b *budget) Release(n int64) { b.used.Add(-n) }

// NewLimiter checks l and fills in defaults.
func NewLimiter(l Limits) (*Limiter, error) {
	if l.MaxMetadataBytes == 0 {
		l.MaxMetadataBytes = DefaultMaxMetadataBytes
	}
	if l.MaxConcurrentBootstraps == 0 {
		l.MaxConcurrentBootstraps = DefaultMaxConcurrentBootstraps
	}
	if l.MaxRootBytes == 0 {
		l.MaxRootBytes = min(DefaultMaxRootBytes, l.MaxMetadataBytes)
	}
	switch {
	case l.MaxMetadataBytes < 0:
		return nil, fmt.Errorf("resolver: max metadata bytes %d is negative", l.MaxMetadataBytes)
	case l.MaxConcurrentBootstraps < 0:
		return nil, fmt.Errorf("resolver: max concurrent bootstraps %d is negative", l.MaxConcurrentBootstraps)
	case l.MaxRootBytes < 0 || l.MaxRootBytes > maxDownloadSize:
		return nil, fmt.Errorf("resolver: max root bytes %d is not between 1 and notary's %d", l.MaxRootBytes, int64(maxDownloadSize))
	case l.MaxRootBytes > l.MaxMetadataBytes:
		return nil, fmt.Errorf("resolver: max root bytes %d exceeds max metadata bytes %d", l.MaxRootBytes, l.MaxMetadataBytes)
	}
	return &Limiter{limits: l, bytes: &budget{max: l.MaxMetadataBytes}, boot: make(chan struct{}, l.MaxConcurrentBootstraps)}, nil
}

// forClient is the Limiter one Client uses: the shared byte budget, and first-contact slots of
// its own.
func (l *Limiter) forClient() *Limiter {
	return &Limiter{limits: l.limits, bytes: l.bytes, boot: make(chan struct{}, l.limits.MaxConcurrentBootstraps)}
}

// Limits returns the limits in force, defaults filled in.
func (l *Limiter) Limits() Limits { return l.limits }

// bootstrap waits for a first-contact slot; the caller calls release when its root fetch is done.
func (l *Limiter) bootstrap(ctx context.Context, gun string) (release func(), err error) {
	select {
	case l.boot <- struct{}{}:
		return func() { <-l.boot }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %s: waiting for one of %d first-contact slots (trust_limits.max_concurrent_bootstraps): %w",
			ErrUnavailable, gun, l.limits.MaxConcurrentBootstraps, ctx.Err())
	}
}

// errBudget is the failure of a read that would take the in-flight metadata past the budget.
func (l *Limiter) errBudget() error {
	return fmt.Errorf("%w: trust metadata in flight would exceed %d bytes (trust_limits.max_metadata_bytes)", ErrUnavailable, l.limits.MaxMetadataBytes)
}

// read returns r's bytes up to limit (a longer body is cut off there, like notary's GetSized).
// The buffer grows by doubling as bytes arrive, and each buffer is reserved from the budget
// before it is allocated; the reservation ends when read returns. declared is the length the
// sender announced (negative: none): it reserves nothing, but the doubling stops at it, so
// that a body of the announced length ends in a buffer of exactly its size rather than one of
// up to twice it (and a copy to trim it).
func (l *Limiter) read(r io.Reader, limit, declared int64) ([]byte, error) {
	var buf []byte
	var held int64
	defer func() { l.bytes.Release(held) }()
	for int64(len(buf)) < limit {
		if len(buf) == cap(buf) {
			var probe [1]byte
			var extra int
			if len(buf) > 0 && int64(len(buf)) == declared {
				// Full at the announced length: grow only if there is more.
				var err error
				if extra, err = readSome(r, probe[:]); err == io.EOF {
					break
				} else if err != nil {
					return nil, err
				}
			}
			n := min(max(2*int64(cap(buf)), readChunk), limit)
			if declared > int64(len(buf)) {
				n = min(n, declared)
			}
			if !l.bytes.TryAcquire(n) {
				return nil, l.errBudget()
			}
			nb := make([]byte, len(buf), n)
			copy(nb, buf)
			l.bytes.Release(held)
			buf, held = append(nb, probe[:extra]...), n
			continue
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	// The bytes may be kept (verified metadata stays in memory per repository): do not keep
	// the doubling's spare capacity with them, if the budget has room for the copy.
	if spare := cap(buf) - len(buf); spare > len(buf)/8 && l.bytes.TryAcquire(int64(len(buf))) {
		defer l.bytes.Release(int64(len(buf)))
		return append([]byte(nil), buf...), nil
	}
	return buf, nil
}

// readSome reads into p until at least one byte or an error arrives.
func readSome(r io.Reader, p []byte) (int, error) {
	for {
		if n, err := r.Read(p); n > 0 || err != nil {
			if n > 0 {
				err = nil // the next read reports it again
			}
			return n, err
		}
	}
}
