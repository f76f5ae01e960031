package blobstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// drivers are the real drivers the unit tests run against: the store's contract must hold on
// each (the e2e tests add s3 against a real S3 server).
func drivers(t *testing.T) map[string]storagedriver.StorageDriver {
	return map[string]storagedriver.StorageDriver{
		"filesystem": filesystem.New(filesystem.DriverParameters{RootDirectory: t.TempDir(), MaxThreads: 10}),
		"inmemory":   inmemory.New(),
	}
}

func blob(seed uint64, n int) ([]byte, digest.Digest) {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b, digest.FromBytes(b)
}

func digestOf(b []byte) digest.Digest { return digest.FromBytes(b) }

func section(b []byte) *io.SectionReader {
	return io.NewSectionReader(bytes.NewReader(b), 0, int64(len(b)))
}

func newStore(t *testing.T, d storagedriver.StorageDriver, opts Options) (*Store, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Metrics = reg
	s, err := New(d, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, reg
}

func readAll(t *testing.T, s *Store, ns string, dgst digest.Digest, off, want int64) ([]byte, int64, error) {
	t.Helper()
	rc, size, err := s.Open(context.Background(), ns, dgst, off, want)
	if err != nil {
		return nil, 0, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return b, size, err
}

func TestPutOpen(t *testing.T) {
	for name, d := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			s, _ := newStore(t, d, Options{})
			ctx := context.Background()
			b, dgst := blob(1, 3<<20+5)
			if _, _, err := readAll(t, s, "docker.io", dgst, 0, -1); !errors.Is(err, ErrNotFound) {
				t.Fatalf("before Put: %v, want ErrNotFound", err)
			}
			if err := s.Put(ctx, "docker.io", dgst, section(b)); err != nil {
				t.Fatal(err)
			}
			got, size, err := readAll(t, s, "docker.io", dgst, 0, int64(len(b)))
			if err != nil || size != int64(len(b)) || !bytes.Equal(got, b) {
				t.Fatalf("Open: err %v size %d, %d bytes equal %v", err, size, len(got), bytes.Equal(got, b))
			}
			got, _, err = readAll(t, s, "docker.io", dgst, 1<<20, -1)
			if err != nil || !bytes.Equal(got, b[1<<20:]) {
				t.Fatalf("Open at offset: err %v, %d bytes", err, len(got))
			}
			// Namespaces are apart: another upstream's request does not see the blob.
			if _, _, err := readAll(t, s, "registry.example:5000", dgst, 0, -1); !errors.Is(err, ErrNotFound) {
				t.Fatalf("other namespace: %v, want ErrNotFound", err)
			}
			if n := testutil.ToFloat64(s.m.hits); n != 1 { // a read at an offset resumes a download: not another hit
				t.Errorf("hits = %v, want 1", n)
			}
			if n := testutil.ToFloat64(s.m.misses); n != 2 {
				t.Errorf("misses = %v, want 2", n)
			}
			if n := testutil.ToFloat64(s.m.servedBytes); n != float64(2*len(b)-1<<20) {
				t.Errorf("served bytes = %v", n)
			}
			if n := testutil.ToFloat64(s.m.writes); n != 1 {
				t.Errorf("writes = %v", n)
			}
			// Nothing is left under the upload prefix.
			if ups, err := d.List(ctx, uploadsDir); err == nil && len(ups) > 0 {
				t.Errorf("uploads left behind: %v", ups)
			}
		})
	}
}

// An object whose size is not the verified size is not served, and is deleted.
func TestOpenWrongSizeIsDiscarded(t *testing.T) {
	for name, d := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			s, _ := newStore(t, d, Options{})
			ctx := context.Background()
			b, dgst := blob(2, 1000)
			p, _ := blobPath("docker.io", dgst)
			if err := d.PutContent(ctx, p, b[:999]); err != nil { // truncated behind trustgate's back
				t.Fatal(err)
			}
			if _, _, err := readAll(t, s, "docker.io", dgst, 0, 1000); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v, want ErrCorrupt", err)
			}
			if _, err := d.Stat(ctx, p); !isNotFound(err) {
				t.Errorf("corrupt object still stored: %v", err)
			}
			if n := testutil.ToFloat64(s.m.corrupt); n != 1 {
				t.Errorf("corrupt = %v", n)
			}
		})
	}
}

// failingReaderAt fails after n bytes, as a spool read error would.
type failingReaderAt struct {
	b []byte
	n int64
}

func (f failingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.n {
		return 0, errors.New("disk on fire")
	}
	return copy(p, f.b[off:]), nil
}

// A write that fails half-way leaves nothing under the digest's key, nor an upload.
func TestPutFailureNeverVisible(t *testing.T) {
	for name, d := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			s, _ := newStore(t, d, Options{})
			ctx := context.Background()
			b, dgst := blob(3, 2<<20)
			err := s.Put(ctx, "docker.io", dgst, io.NewSectionReader(failingReaderAt{b, 1 << 20}, 0, int64(len(b))))
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Put: %v, want ErrUnavailable", err)
			}
			p, _ := blobPath("docker.io", dgst)
			if _, err := d.Stat(ctx, p); !isNotFound(err) {
				t.Errorf("partial blob visible under its digest: %v", err)
			}
			if ups, err := d.List(ctx, uploadsDir); err == nil && len(ups) > 0 {
				t.Errorf("upload left behind: %v", ups)
			}
		})
	}
}

// brokenDriver fails every call, like an unreachable store, and counts them.
type brokenDriver struct {
	storagedriver.StorageDriver
	calls atomic.Int64
}

func (b *brokenDriver) Stat(context.Context, string) (storagedriver.FileInfo, error) {
	b.calls.Add(1)
	return nil, errors.New("dial tcp 127.0.0.1:9: connection refused")
}

func TestUnavailableStoreIsSkipped(t *testing.T) {
	d := &brokenDriver{StorageDriver: inmemory.New()}
	now := time.Now()
	s, _ := newStore(t, d, Options{RetryAfter: 5 * time.Second, Now: func() time.Time { return now }})
	_, dgst := blob(4, 10)
	for range 3 {
		if _, _, err := s.Open(context.Background(), "docker.io", dgst, 0, -1); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Open: %v, want ErrUnavailable", err)
		}
	}
	if n := d.calls.Load(); n != 1 {
		t.Errorf("driver asked %d times within RetryAfter, want 1", n)
	}
	if testutil.ToFloat64(s.m.up) != 0 || testutil.ToFloat64(s.m.errors.WithLabelValues("stat")) != 1 {
		t.Errorf("up = %v, errors = %v", testutil.ToFloat64(s.m.up), testutil.ToFloat64(s.m.errors.WithLabelValues("stat")))
	}
	// Failing again and again, it is left alone twice as long each time, up to a minute.
	calls := d.calls.Load()
	for _, wait := range []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, time.Minute, time.Minute} {
		now = now.Add(wait - time.Millisecond)
		s.Open(context.Background(), "docker.io", dgst, 0, -1)
		if n := d.calls.Load(); n != calls {
			t.Fatalf("asked again %v into a wait of %v", wait-time.Millisecond, wait)
		}
		now = now.Add(time.Millisecond)
		s.Open(context.Background(), "docker.io", dgst, 0, -1)
		if calls++; d.calls.Load() != calls {
			t.Fatalf("not asked again after a wait of %v", wait)
		}
	}
}

func TestSweep(t *testing.T) {
	for name, d := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Now()
			s, _ := newStore(t, d, Options{MaxBytes: 2500, Now: func() time.Time { return now }})
			var dgsts []digest.Digest
			for i := range 3 {
				b, dgst := blob(uint64(10+i), 1000)
				if err := s.Put(ctx, "docker.io", dgst, section(b)); err != nil {
					t.Fatal(err)
				}
				dgsts = append(dgsts, dgst)
				time.Sleep(20 * time.Millisecond) // distinct modification times
			}
			// An upload abandoned by a dead replica.
			if err := d.PutContent(ctx, uploadsDir+"/deadbeef", []byte("partial")); err != nil {
				t.Fatal(err)
			}
			res, err := s.Sweep(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if res.Deleted != 1 || res.Blobs != 2 || res.Bytes != 2000 || res.AbandonedUploads != 0 {
				t.Errorf("size sweep: %+v", res)
			}
			if _, err := s.Stat(ctx, "docker.io", dgsts[0]); !errors.Is(err, ErrNotFound) {
				t.Errorf("oldest blob not evicted: %v", err)
			}
			for _, dg := range dgsts[1:] {
				if _, err := s.Stat(ctx, "docker.io", dg); err != nil {
					t.Errorf("younger blob evicted: %v", err)
				}
			}
			// Two hours later, with a one-hour age bound: everything goes, the upload too.
			now = now.Add(2 * time.Hour)
			s.opts.MaxAge = time.Hour
			if res, err = s.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
			if res.Deleted != 2 || res.Blobs != 0 || res.AbandonedUploads != 1 {
				t.Errorf("age sweep: %+v", res)
			}
			if n := testutil.ToFloat64(s.m.evictions); n != 3 {
				t.Errorf("evictions = %v", n)
			}
		})
	}
}

func TestEscapeNamespace(t *testing.T) {
	seen := map[string]string{}
	for _, ns := range []string{"docker.io", "registry:5000", "registry_3a5000", "a_b", "a-b", ".hidden", "127.0.0.1:5000"} {
		e := escapeNamespace(ns)
		if !storagedriver.PathRegexp.MatchString("/" + e) {
			t.Errorf("%q → %q is not a valid path component", ns, e)
		}
		if strings.HasPrefix(e, ".") {
			t.Errorf("%q → %q starts with a dot", ns, e)
		}
		if prev, dup := seen[e]; dup {
			t.Errorf("%q and %q both map to %q", prev, ns, e)
		}
		seen[e] = ns
	}
}
