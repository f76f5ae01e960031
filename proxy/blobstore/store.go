// Package blobstore keeps verified blobs on one of distribution's storage drivers (filesystem,
// s3, gcs, azure, inmemory), so that every trustgate replica sharing the store serves a blob any
// of them has verified without going upstream.
//
// # Trust
//
// The store never decides what may be served: the proxy's verdict does, before the store is
// asked. A stored object is trusted only because it was verified on the way in: Put is given
// bytes that hashed to their digest and stores them under it, written to a temporary key and
// then moved, so a partial write is never visible under a digest. On the way out, Open checks
// the object's size against the verified size (when the caller knows it) before a byte is read,
// and the proxy streams what Open returns through its fan-out, which hashes every byte and holds
// back the last one until the digest matched, exactly as for upstream bytes. So an object
// altered in the store, even to the same size, is never served as a complete response; the
// caller then Discards it and the next request goes upstream.
//
// # Layout
//
//	/trustgate/v1/<namespace>/blobs/<algorithm>/<hex[:2]>/<hex>   a verified blob
//	/trustgate/v1/_uploads/<random>                              a write in progress
//
// The namespace keeps blobs of different upstreams apart (see proxy: bytes fetched from one
// registry, maybe with private credentials, are not served to requests addressed to another).
//
// # Eviction
//
// Sweep walks the store and deletes blobs stored longer ago than MaxAge, then the oldest until
// the rest fit MaxBytes, and uploads abandoned for an hour (a replica that died mid-write). Age
// is the object's modification time as the driver reports it: the time it was stored; serving a
// blob does not refresh it (as distribution's proxy expires by the time a blob was fetched).
// Every replica may sweep; deletes are idempotent, and a blob deleted under a running read
// makes that read fail and the proxy resume it from upstream.
//
// # Unavailability
//
// A store that fails (unreachable, timeouts, permission) is never a reason to fail a pull: Open
// and Stat return ErrUnavailable, the proxy goes upstream, and for the next RetryAfter the store
// is not asked again (doubled for every failure in a row, up to a minute), so an unreachable
// store costs one timeout now and then, not one per request.
package blobstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	// ErrNotFound means the store has no such blob (a miss).
	ErrNotFound = errors.New("blobstore: blob not stored")
	// ErrUnavailable means the store could not be asked: it failed, or it failed recently and
	// is not asked again before RetryAfter.
	ErrUnavailable = errors.New("blobstore: store unavailable")
	// ErrCorrupt means the stored object is not the verified blob (its size differs); Open
	// deletes it.
	ErrCorrupt = errors.New("blobstore: stored blob corrupt")
)

const (
	root       = "/trustgate/v1"
	uploadsDir = root + "/_uploads"
	// staleUpload is how old an upload must be before Sweep deletes it as abandoned.
	staleUpload = time.Hour
)

// Options configure a Store. Defaults for the binary are in cmd/trustgate/config.go.
type Options struct {
	// MaxBytes bounds the bytes of stored blobs; Sweep deletes the oldest beyond it. 0 = no bound.
	MaxBytes int64
	// MaxAge: Sweep deletes blobs stored longer ago. 0 = no bound.
	MaxAge time.Duration
	// SweepInterval is how often Run sweeps. 0 means 10m.
	SweepInterval time.Duration
	// Timeout bounds each store operation except the body of a read and of a write (which
	// the caller's context bounds). 0 means 10s.
	Timeout time.Duration
	// RetryAfter is how long the store is not asked after it failed. 0 means 5s.
	RetryAfter time.Duration
	Logger     *slog.Logger          // nil = discard
	Metrics    prometheus.Registerer // nil = not exported
	Now        func() time.Time      // nil = time.Now
}

// Store is a verified-blob cache on a storage driver. It is safe for concurrent use.
type Store struct {
	driver storagedriver.StorageDriver
	opts   Options
	log    *slog.Logger
	m      *metrics

	mu        sync.Mutex
	lastErr   string // the failure that made the store unavailable, for Status
	downUntil time.Time
	backoff   time.Duration // the current wait after a failure: RetryAfter, doubled per failure in a row
}

// maxBackoff caps how long a failing store is left alone.
const maxBackoff = time.Minute

// New returns a Store on d.
func New(d storagedriver.StorageDriver, opts Options) (*Store, error) {
	if d == nil {
		return nil, errors.New("blobstore: no storage driver")
	}
	if opts.MaxBytes < 0 || opts.MaxAge < 0 {
		return nil, errors.New("blobstore: MaxBytes and MaxAge must not be negative")
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = 10 * time.Minute
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m, err := newMetrics(opts.Metrics, d.Name())
	if err != nil {
		return nil, err
	}
	s := &Store{driver: d, opts: opts, log: opts.Logger.With("blob_store", d.Name()), m: m}
	s.m.up.Set(1)
	return s, nil
}

// Driver names the storage driver, for logs.
func (s *Store) Driver() string { return s.driver.Name() }

// blobPath is where blob dgst of namespace ns is stored. Both are validated: dgst by go-digest
// (algorithm and lowercase hex only), ns by escapeNamespace.
func blobPath(ns string, dgst digest.Digest) (string, error) {
	if err := dgst.Validate(); err != nil {
		return "", err
	}
	if ns == "" {
		return "", errors.New("blobstore: empty namespace")
	}
	hx := dgst.Encoded()
	return fmt.Sprintf("%s/%s/blobs/%s/%s/%s", root, escapeNamespace(ns), dgst.Algorithm(), hx[:2], hx), nil
}

// escapeNamespace maps a namespace (an upstream's configured name, e.g. "registry:5000") onto
// the characters a driver path may hold, one-to-one: every byte outside [A-Za-z0-9.-] becomes
// _xx (its hex), '_' included, so two names never share a directory.
func escapeNamespace(ns string) string {
	var b strings.Builder
	for i := 0; i < len(ns); i++ {
		c := ns[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.' && i > 0, c == '-':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "_%02x", c)
		}
	}
	return b.String()
}

// available reports whether the store may be asked now.
func (s *Store) available() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.opts.Now().Before(s.downUntil)
}

// failed records a store failure: logged, counted, and the store left alone for RetryAfter.
func (s *Store) failed(op string, err error) error {
	s.m.errors.WithLabelValues(op).Inc()
	s.mu.Lock()
	first := s.downUntil.IsZero()
	switch {
	case first:
		s.backoff = s.opts.RetryAfter
	case !s.opts.Now().Before(s.downUntil):
		s.backoff = min(2*s.backoff, max(maxBackoff, s.opts.RetryAfter))
	}
	s.downUntil = s.opts.Now().Add(s.backoff)
	s.lastErr = op + ": " + err.Error()
	wait := s.backoff
	s.mu.Unlock()
	s.m.up.Set(0)
	if first {
		s.log.Warn("blob store unavailable; serving from upstream", "op", op, "retry_after", wait, "err", err)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

// Status reports whether the store's last operation succeeded and, if not, the failure; while
// it is false the store is skipped (see Unavailability).
func (s *Store) Status() (up bool, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.downUntil.IsZero() {
		return true, ""
	}
	return false, s.lastErr
}

// ok records a store success after failures.
func (s *Store) ok() {
	s.mu.Lock()
	was := !s.downUntil.IsZero()
	s.downUntil = time.Time{}
	s.mu.Unlock()
	if was {
		s.m.up.Set(1)
		s.log.Info("blob store available again")
	}
}

func isNotFound(err error) bool {
	var nf storagedriver.PathNotFoundError
	return errors.As(err, &nf)
}

// Stat returns the size of stored blob dgst of namespace ns: ErrNotFound if it is not stored,
// ErrUnavailable if the store failed.
func (s *Store) Stat(ctx context.Context, ns string, dgst digest.Digest) (int64, error) {
	p, err := blobPath(ns, dgst)
	if err != nil {
		return 0, err
	}
	if !s.available() {
		return 0, ErrUnavailable
	}
	sctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	fi, err := s.driver.Stat(sctx, p)
	switch {
	case isNotFound(err):
		s.ok()
		return 0, ErrNotFound
	case err != nil:
		return 0, s.failed("stat", err)
	case fi.IsDir():
		return 0, ErrNotFound
	}
	s.ok()
	return fi.Size(), nil
}

// Open returns stored blob dgst of namespace ns from offset on, and the blob's whole size. want
// >= 0 is the blob's verified size: an object of another size is deleted and ErrCorrupt
// returned. A miss is counted and ErrNotFound returned; a failing store ErrUnavailable. The
// bytes are the store's: the caller must verify the digest before completing a response.
func (s *Store) Open(ctx context.Context, ns string, dgst digest.Digest, offset, want int64) (io.ReadCloser, int64, error) {
	size, err := s.Stat(ctx, ns, dgst)
	switch {
	case errors.Is(err, ErrNotFound):
		if offset == 0 {
			s.m.misses.Inc()
		}
		return nil, 0, err
	case err != nil:
		return nil, 0, err
	case want >= 0 && size != want:
		s.Discard(ctx, ns, dgst, fmt.Sprintf("stored size %d, verified size %d", size, want))
		return nil, 0, fmt.Errorf("%w: stored size %d, verified size %d", ErrCorrupt, size, want)
	case offset > size:
		return nil, 0, fmt.Errorf("blobstore: offset %d beyond size %d", offset, size)
	}
	p, _ := blobPath(ns, dgst)
	// The driver's reader lives as long as the body is read; only getting it is bounded here.
	rctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(s.opts.Timeout, cancel)
	rc, err := s.driver.Reader(rctx, p, offset)
	if !timer.Stop() && err == nil {
		rc.Close()
		err = context.DeadlineExceeded
	}
	switch {
	case isNotFound(err):
		cancel()
		s.m.misses.Inc()
		return nil, 0, ErrNotFound
	case err != nil:
		cancel()
		return nil, 0, s.failed("read", err)
	}
	if offset == 0 {
		s.m.hits.Inc()
	}
	return &countingReader{rc: rc, cancel: cancel, add: s.m.servedBytes.Add}, size, nil
}

type countingReader struct {
	rc     io.ReadCloser
	cancel context.CancelFunc
	add    func(float64)
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if n > 0 {
		r.add(float64(n))
	}
	return n, err
}

func (r *countingReader) Close() error {
	err := r.rc.Close()
	r.cancel()
	return err
}

// Put stores blob, whose bytes the caller verified to hash to dgst, as dgst of namespace ns. It
// writes a temporary key and moves it to the digest's key, so the digest's key holds either
// nothing or the whole blob. A blob already stored at the same size is left as it is; one
// larger than MaxBytes is not stored.
func (s *Store) Put(ctx context.Context, ns string, dgst digest.Digest, blob *io.SectionReader) error {
	p, err := blobPath(ns, dgst)
	if err != nil {
		return err
	}
	size := blob.Size()
	if s.opts.MaxBytes > 0 && size > s.opts.MaxBytes {
		return nil
	}
	switch n, err := s.Stat(ctx, ns, dgst); {
	case err == nil && n == size:
		return nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return err
	}
	var rnd [16]byte
	_, _ = rand.Read(rnd[:])
	tmp := uploadsDir + "/" + hex.EncodeToString(rnd[:])
	// A store slower than 1 MiB/s is treated as down: the write holds the download's spool
	// open, so it must end.
	wctx, cancel := context.WithTimeout(ctx, s.opts.Timeout+time.Duration(size>>20)*time.Second)
	defer cancel()
	if err := s.write(wctx, tmp, blob); err != nil {
		s.cleanup(tmp)
		return s.failed("write", err)
	}
	if err := s.driver.Move(wctx, tmp, p); err != nil {
		s.cleanup(tmp)
		return s.failed("move", err)
	}
	s.ok()
	s.m.writes.Inc()
	s.m.writtenBytes.Add(float64(size))
	s.log.Debug("blob stored", "namespace", ns, "digest", dgst, "size", size)
	return nil
}

func (s *Store) write(ctx context.Context, path string, blob *io.SectionReader) error {
	w, err := s.driver.Writer(ctx, path, false)
	if err != nil {
		return err
	}
	n, err := io.Copy(w, io.NewSectionReader(blob, 0, blob.Size()))
	if err == nil && n != blob.Size() {
		err = fmt.Errorf("wrote %d of %d bytes", n, blob.Size())
	}
	if err != nil {
		_ = w.Cancel(ctx)
		w.Close()
		return err
	}
	if err := w.Commit(ctx); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// cleanup removes what a failed write may have left; Sweep removes it later otherwise.
func (s *Store) cleanup(path string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	_ = s.driver.Delete(ctx, path)
}

// Discard deletes stored blob dgst of namespace ns because it is not the verified blob (why);
// the next request for it goes upstream and stores it afresh.
func (s *Store) Discard(ctx context.Context, ns string, dgst digest.Digest, why string) {
	p, err := blobPath(ns, dgst)
	if err != nil {
		return
	}
	s.m.corrupt.Inc()
	s.log.Warn("discarding corrupt blob from the blob store", "namespace", ns, "digest", dgst, "why", why)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout)
	defer cancel()
	if err := s.driver.Delete(ctx, p); err != nil && !isNotFound(err) {
		s.failed("delete", err)
	}
}
