package fanout

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// randomBlob returns n deterministic pseudo-random bytes and their digest.
func randomBlob(t testing.TB, seed uint64, n int) ([]byte, digest.Digest) {
	t.Helper()
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b, digest.FromBytes(b)
}

// upstream is a real HTTP server playing the registry's blob endpoint; the
// handler decides how honest it is.
type upstream struct {
	*httptest.Server
	requests atomic.Int64
}

func newUpstream(t testing.TB, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.requests.Add(1)
		h(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

// honest serves blob with Range support, like a registry.
func honest(blob []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
	}
}

// httpOpener is the Opener a proxy would write: GET, Range for offsets,
// size from Content-Length or Content-Range.
func httpOpener(url string) Opener {
	return func(ctx context.Context, offset int64) (io.ReadCloser, int64, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, 0, err
		}
		req.Header.Set("Accept-Encoding", "identity")
		if offset > 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, 0, err
		}
		want := http.StatusOK
		if offset > 0 {
			want = http.StatusPartialContent
		}
		if resp.StatusCode != want {
			resp.Body.Close()
			return nil, 0, fmt.Errorf("upstream status %d", resp.StatusCode)
		}
		if offset == 0 {
			return resp.Body, resp.ContentLength, nil
		}
		var a, b, size int64
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &a, &b, &size); err != nil || a != offset {
			resp.Body.Close()
			return nil, 0, fmt.Errorf("bad Content-Range %q", resp.Header.Get("Content-Range"))
		}
		return resp.Body, size, nil
	}
}

// proxyFor serves every request through g for dgst with open.
func proxyFor(t testing.TB, g *Group, dgst digest.Digest, open Opener) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.Serve(w, r, dgst, open)
	}))
	t.Cleanup(s.Close)
	return s
}

func newGroup(t testing.TB, opts Options) *Group {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	g := New(opts)
	t.Cleanup(func() { g.Close() })
	return g
}

type result struct {
	status int
	header http.Header
	body   []byte
	err    error // error reading the body
}

func get(t testing.TB, url string, hdr map[string]string) result {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: body, err: err}
}

// waitFor polls cond. The bound is a liveness guard against a hang (far
// beyond any plausible run time), not an assertion about speed.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	give := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(give) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// openSpools counts this process's descriptors on files under dir: one per
// download or retained spool, plus one per response sending it by sendfile.
func openSpools(t testing.TB, dir string) int {
	t.Helper()
	n := 0
	for range spoolDescriptors(t, dir) {
		n++
	}
	return n
}

// spoolFiles counts the distinct files under dir this process has open.
func spoolFiles(t testing.TB, dir string) int {
	t.Helper()
	files := map[string]bool{}
	for _, target := range spoolDescriptors(t, dir) {
		files[target] = true
	}
	return len(files)
}

// spoolDescriptors maps this process's descriptors on files under dir to
// the files' paths.
func spoolDescriptors(t testing.TB, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	fds := map[string]string{}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && strings.HasPrefix(target, dir+string(filepath.Separator)) {
			fds[e.Name()] = target
		}
	}
	return fds
}

func contentLength(t testing.TB, h http.Header) int64 {
	t.Helper()
	n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64)
	if err != nil {
		t.Fatalf("Content-Length %q: %v", h.Get("Content-Length"), err)
	}
	return n
}

func httptestServer(t testing.TB, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func digestOf(s string) digest.Digest { return digest.Digest(s) }

// writerKind is how a test's server hands the fan-out its ResponseWriter:
// net/http's own, whose ReadFrom sends the spool with sendfile(2), or one
// that hides ReadFrom, so the fan-out copies through its buffer. The
// verification tests run on both paths.
type writerKind struct {
	name string
	wrap func(http.ResponseWriter) http.ResponseWriter
}

var writerKinds = []writerKind{
	{"sendfile", func(w http.ResponseWriter) http.ResponseWriter { return w }},
	{"buffered", func(w http.ResponseWriter) http.ResponseWriter { return bufferedWriter{w} }},
}

// bufferedWriter hides the ReadFrom of the writer it wraps; Unwrap still
// lets http.ResponseController reach it for deadlines and flushes.
type bufferedWriter struct{ w http.ResponseWriter }

func (b bufferedWriter) Header() http.Header         { return b.w.Header() }
func (b bufferedWriter) Write(p []byte) (int, error) { return b.w.Write(p) }
func (b bufferedWriter) WriteHeader(code int)        { b.w.WriteHeader(code) }
func (b bufferedWriter) Unwrap() http.ResponseWriter { return b.w }

// proxyWith is proxyFor with the writer of kind wk.
func proxyWith(t testing.TB, wk writerKind, g *Group, dgst digest.Digest, open Opener) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.Serve(wk.wrap(w), r, dgst, open)
	}))
	t.Cleanup(s.Close)
	return s
}
