package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustgate/trustgate/internal/peers"
	"github.com/trustgate/trustgate/proxy/blobstore"
)

// replica is one trustgate Server sharing a blob store with the others (its own Store on the
// same driver, as a replica in another process has).
func replica(t *testing.T, reg *peers.Registry, d storagedriver.StorageDriver, img peers.Pushed, spool int64) *env {
	t.Helper()
	return replicaWith(t, reg, d, blobstore.Options{}, img, spool)
}

func replicaWith(t *testing.T, reg *peers.Registry, d storagedriver.StorageDriver, opts blobstore.Options, img peers.Pushed, spool int64) *env {
	t.Helper()
	st, err := blobstore.New(d, opts)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, reg, envConfig{store: st, spoolBytes: spool})
	e.trust.sign("docker.io/library/app", "1", img, "targets")
	if r := e.get("/v2/library/app/manifests/1"); r.status != http.StatusOK {
		t.Fatalf("signed tag: %d %s", r.status, r.body)
	}
	return e
}

func blobGETs(reg *peers.Registry, mark int) int {
	n := 0
	for _, e := range reg.RequestsSince(mark) {
		if e.Method == http.MethodGet && strings.Contains(e.Path, "/blobs/") {
			n++
		}
	}
	return n
}

// storedLayer pushes an image to a new upstream and has a replica on d pull its first layer,
// then waits until the store holds it: what every test of another replica's pulls starts from.
func storedLayer(t *testing.T, d storagedriver.StorageDriver) (*peers.Registry, peers.Pushed, peers.Blob) {
	t.Helper()
	reg := peers.StartRegistry(t)
	img := peers.PushImage(t, reg, "library/app", "1")
	a := replica(t, reg, d, img, 0)
	layer := img.Layers[0]
	if r := a.get("/v2/library/app/blobs/" + layer.Digest); r.status != http.StatusOK || sha(r.body) != layer.Digest {
		t.Fatalf("A: %d", r.status)
	}
	waitStored(t, a.srv.store, layer.Digest)
	return reg, img, layer
}

// waitStored waits until the store holds dgst (a replica writes it after its responses).
func waitStored(t *testing.T, st *blobstore.Store, dgst string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := st.Stat(context.Background(), "docker.io", digest.Digest(dgst)); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never stored", dgst)
		}
	}
}

// A blob one replica verified is served by another from the store, without going upstream,
// GET, Range and HEAD alike; the authority to serve it is still the verdict's.
func TestBlobStoreSharedByReplicas(t *testing.T) {
	for name, d := range map[string]storagedriver.StorageDriver{
		"filesystem": filesystem.New(filesystem.DriverParameters{RootDirectory: t.TempDir(), MaxThreads: 10}),
		"inmemory":   inmemory.New(),
	} {
		t.Run(name, func(t *testing.T) {
			reg, img, layer := storedLayer(t, d)
			b := replica(t, reg, d, img, 0)

			mark := reg.Log.Len()
			if r := b.get("/v2/library/app/blobs/" + layer.Digest); r.status != http.StatusOK || sha(r.body) != layer.Digest {
				t.Fatalf("B: %d", r.status)
			}
			r := b.do(http.MethodGet, "/v2/library/app/blobs/"+layer.Digest, http.Header{"Range": {"bytes=10-19"}})
			if r.status != http.StatusPartialContent || len(r.body) != 10 {
				t.Fatalf("B, range: %d, %d bytes", r.status, len(r.body))
			}
			if h := b.do(http.MethodHead, "/v2/library/app/blobs/"+layer.Digest, nil); h.status != http.StatusOK {
				t.Fatalf("B, HEAD: %d", h.status)
			}
			time.Sleep(100 * time.Millisecond) // the registry logs after its response
			if n := blobGETs(reg, mark); n != 0 {
				t.Errorf("B sent %d blob GETs upstream, want 0 (served from the store)", n)
			}
			for _, e := range reg.RequestsSince(mark) {
				if strings.Contains(e.Path, "/blobs/") {
					t.Errorf("B asked upstream: %s %s", e.Method, e.Path)
				}
			}

			// The store never decides: a digest the verdict refuses is not served from it.
			b.trust.unsign("docker.io/library/app", "1")
			expectError(t, b.get("/v2/library/app/blobs/"+layer.Digest), http.StatusNotFound, "BLOB_UNKNOWN", layer.Digest)
			if h := b.do(http.MethodHead, "/v2/library/app/blobs/"+layer.Digest, nil); h.status != http.StatusNotFound {
				t.Errorf("HEAD of a stored blob no signature reaches: %d", h.status)
			}
		})
	}
}

// A stored object altered to the same size is not served complete: the replica hashes what it
// reads from the store, deletes the object and only then aborts the response, so the client's
// retry is served from upstream and stores the blob again.
func TestBlobStoreTamperedSameSize(t *testing.T) {
	dir := t.TempDir()
	d := filesystem.New(filesystem.DriverParameters{RootDirectory: dir, MaxThreads: 10})
	reg := peers.StartRegistry(t)
	img := peers.PushImage(t, reg, "library/app", "1")
	am := prometheus.NewRegistry()
	a := replicaWith(t, reg, d, blobstore.Options{Metrics: am}, img, 0)
	layer := img.Layers[0]
	if r := a.get("/v2/library/app/blobs/" + layer.Digest); r.status != http.StatusOK {
		t.Fatalf("A: %d", r.status)
	}
	// A's Put has returned: the object is in place and nothing writes it again.
	waitMetric(t, am, "trustgate_blobstore_writes_total", 1)
	var file string
	filepath.WalkDir(dir, func(p string, de os.DirEntry, err error) error {
		if err == nil && !de.IsDir() && de.Name() == digest.Digest(layer.Digest).Encoded() {
			file = p
		}
		return nil
	})
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("tampered"), layer.Size/2); err != nil {
		t.Fatal(err)
	}
	f.Close()

	bm := prometheus.NewRegistry()
	b := replicaWith(t, reg, d, blobstore.Options{Metrics: bm}, img, 0)
	mark := reg.Log.Len()
	status, body, complete := b.tryGet("/v2/library/app/blobs/" + layer.Digest)
	if complete && status == http.StatusOK {
		t.Fatalf("a tampered stored blob was served complete (%d bytes, digest %s, layer %s)", len(body), sha(body), layer.Digest)
	}
	if _, err := b.srv.store.Stat(context.Background(), "docker.io", digest.Digest(layer.Digest)); !errors.Is(err, blobstore.ErrNotFound) {
		t.Errorf("tampered object still stored when the response was aborted: %v", err)
	}
	if n := metricValue(t, bm, "trustgate_blobstore_corrupt_total"); n != 1 {
		t.Errorf("%v stored objects discarded, want 1", n)
	}
	if r := b.get("/v2/library/app/blobs/" + layer.Digest); r.status != http.StatusOK || sha(r.body) != layer.Digest {
		t.Fatalf("retry: %d", r.status)
	}
	if hits, misses := metricValue(t, bm, "trustgate_blobstore_hits_total"), metricValue(t, bm, "trustgate_blobstore_misses_total"); hits != 1 || misses != 1 {
		t.Errorf("store reads: %v hits, %v misses; want the tampered read and the retry's miss", hits, misses)
	}
	waitMetric(t, bm, "trustgate_blobstore_writes_total", 1)
	// Both GETs have answered; the registry's access log may lag its responses.
	for deadline := time.Now().Add(10 * time.Second); blobGETs(reg, mark) < 1 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
	}
	if n := blobGETs(reg, mark); n != 1 {
		t.Errorf("%d upstream blob GETs, want 1 (the retry's)", n)
	}
}

// waitMetric waits until counter name of g reaches want.
func waitMetric(t *testing.T, g prometheus.Gatherer, name string, want float64) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if metricValue(t, g, name) >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached %v", name, want)
		}
	}
}

// downDriver is a store that cannot be reached.
type downDriver struct{ storagedriver.StorageDriver }

var errDown = errors.New("dial tcp 127.0.0.1:9: connect: connection refused")

func (downDriver) Stat(context.Context, string) (storagedriver.FileInfo, error) { return nil, errDown }
func (downDriver) Reader(context.Context, string, int64) (io.ReadCloser, error) {
	return nil, errDown
}
func (downDriver) Writer(context.Context, string, bool) (storagedriver.FileWriter, error) {
	return nil, errDown
}

// A store that is down costs nothing but itself: blobs are served from upstream, GET and HEAD.
func TestBlobStoreDown(t *testing.T) {
	reg := peers.StartRegistry(t)
	img := peers.PushImage(t, reg, "library/app", "1")
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	e := replicaWith(t, reg, downDriver{inmemory.New()}, blobstore.Options{Logger: log}, img, 0)
	for _, l := range img.Layers {
		if r := e.get("/v2/library/app/blobs/" + l.Digest); r.status != http.StatusOK || sha(r.body) != l.Digest {
			t.Fatalf("GET with the store down: %d %s", r.status, r.body)
		}
		if h := e.do(http.MethodHead, "/v2/library/app/blobs/"+l.Digest, nil); h.status != http.StatusOK {
			t.Fatalf("HEAD with the store down: %d", h.status)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "blob store unavailable") {
		t.Errorf("the log does not say the store is unavailable")
	}
}

// gatedDriver holds every Reader until release is closed.
type gatedDriver struct {
	storagedriver.StorageDriver
	release chan struct{}
}

func (g gatedDriver) Reader(ctx context.Context, path string, offset int64) (io.ReadCloser, error) {
	<-g.release
	return g.StorageDriver.Reader(ctx, path, offset)
}

// Concurrent pulls of a stored blob on one replica read the store once: the fan-out's one
// download per digest holds for the store as for upstream.
func TestBlobStoreOneReadPerReplica(t *testing.T) {
	d := inmemory.New()
	reg, img, layer := storedLayer(t, d)

	metrics := prometheus.NewRegistry()
	gd := gatedDriver{StorageDriver: d, release: make(chan struct{})}
	b := replicaWith(t, reg, gd, blobstore.Options{Metrics: metrics}, img, 0)
	blobs := b.srv.upstreams["docker.io"].blobs
	const clients = 8
	mark := reg.Log.Len()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			if r := b.get("/v2/library/app/blobs/" + layer.Digest); r.status != http.StatusOK || sha(r.body) != layer.Digest {
				t.Errorf("B: %d", r.status)
			}
		})
	}
	for deadline := time.Now().Add(30 * time.Second); blobs.Stats().Joins < clients-1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("clients did not join one download: %+v", blobs.Stats())
		}
	}
	close(gd.release)
	wg.Wait()
	if hits := metricValue(t, metrics, "trustgate_blobstore_hits_total"); hits != 1 {
		t.Errorf("%d concurrent clients caused %v store reads, want 1", clients, hits)
	}
	if served := metricValue(t, metrics, "trustgate_blobstore_served_bytes_total"); served != float64(layer.Size) {
		t.Errorf("served %v bytes from the store, want %d", served, layer.Size)
	}
	time.Sleep(100 * time.Millisecond)
	if n := blobGETs(reg, mark); n != 0 {
		t.Errorf("%d blob GETs upstream, want 0", n)
	}
}

func metricValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// A stored object of the wrong size is never read: the pull is served from upstream at once,
// complete, and the object deleted.
func TestBlobStoreWrongSize(t *testing.T) {
	d := inmemory.New()
	reg, img, layer := storedLayer(t, d)
	hx := digest.Digest(layer.Digest).Encoded()
	path := "/trustgate/v1/docker.io/blobs/sha256/" + hx[:2] + "/" + hx
	stored, err := d.GetContent(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.PutContent(context.Background(), path, append(stored, "trailing junk"...)); err != nil {
		t.Fatal(err)
	}
	b := replica(t, reg, d, img, 0)
	if r := b.get("/v2/library/app/blobs/" + layer.Digest); r.status != http.StatusOK || sha(r.body) != layer.Digest {
		t.Fatalf("B with a padded stored object: %d", r.status)
	}
	if h := b.do(http.MethodHead, "/v2/library/app/blobs/"+layer.Digest, nil); h.status != http.StatusOK || h.header.Get("Content-Length") != fmt.Sprint(layer.Size) {
		t.Errorf("HEAD: %d, Content-Length %s", h.status, h.header.Get("Content-Length"))
	}
	// Deleted, then stored again from B's verified download.
	waitStored(t, b.srv.store, layer.Digest)
	if got, err := d.GetContent(context.Background(), path); err != nil || sha(got) != layer.Digest {
		t.Errorf("stored again: %v, digest %s", err, sha(got))
	}
}

// droppingDriver's readers break off half-way through, as a store connection reset would.
type droppingDriver struct{ storagedriver.StorageDriver }

func (d droppingDriver) Reader(ctx context.Context, path string, offset int64) (io.ReadCloser, error) {
	fi, err := d.Stat(ctx, path)
	if err != nil {
		return nil, err
	}
	rc, err := d.StorageDriver.Reader(ctx, path, offset)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(rc, max(fi.Size()/2-offset, 0)), errReader{}), rc}, nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) {
	return 0, errors.New("read tcp: connection reset by peer")
}

// A store read that breaks off is resumed from upstream (a Range request), not from the store
// again: the pull completes whatever the store does.
func TestBlobStoreDroppedReadResumesUpstream(t *testing.T) {
	d := inmemory.New()
	reg, img, layer := storedLayer(t, d)

	b := replica(t, reg, droppingDriver{d}, img, 0)
	mark := reg.Log.Len()
	if r := b.get("/v2/library/app/blobs/" + layer.Digest); r.status != http.StatusOK || sha(r.body) != layer.Digest {
		t.Fatalf("B: %d, %d bytes", r.status, len(r.body))
	}
	time.Sleep(100 * time.Millisecond)
	if n := blobGETs(reg, mark); n != 1 {
		t.Errorf("%d upstream blob GETs, want 1 (the resume)", n)
	}
	if st := b.srv.upstreams["docker.io"].blobs.Stats(); st.Resumes != 1 {
		t.Errorf("resumes = %d, want 1", st.Resumes)
	}
}
