package fanout

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestServeFullBody(t *testing.T) {
	blob, dgst := randomBlob(t, 1, 3<<20+17)
	up := newUpstream(t, honest(blob))
	g := newGroup(t, Options{})
	px := proxyFor(t, g, dgst, httpOpener(up.URL))

	res := get(t, px.URL, nil)
	if res.err != nil || res.status != http.StatusOK {
		t.Fatalf("status %d, err %v", res.status, res.err)
	}
	if !bytes.Equal(res.body, blob) {
		t.Fatalf("body differs: got %d bytes, want %d", len(res.body), len(blob))
	}
	for k, want := range map[string]string{
		"Content-Length":        fmt.Sprint(len(blob)),
		"Content-Type":          "application/octet-stream",
		"Docker-Content-Digest": dgst.String(),
		"Accept-Ranges":         "bytes",
		"Etag":                  `"` + dgst.String() + `"`,
	} {
		if got := res.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if s := g.Stats(); s.Fetches != 1 || s.Opens != 1 || s.UpstreamBytes != int64(len(blob)) || s.Failures != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestServeRange(t *testing.T) {
	blob, dgst := randomBlob(t, 2, 1<<20)
	size := int64(len(blob))
	tests := []struct {
		name, rng, ifRange string
		status             int
		start, end         int64 // expected body = blob[start:end+1]
	}{
		{"resume", "bytes=1000-", "", 206, 1000, size - 1},
		{"closed", "bytes=10-99", "", 206, 10, 99},
		{"first byte", "bytes=0-0", "", 206, 0, 0},
		{"last byte", "bytes=-1", "", 206, size - 1, size - 1},
		{"suffix", "bytes=-4096", "", 206, size - 4096, size - 1},
		{"suffix beyond size", "bytes=-99999999", "", 206, 0, size - 1},
		{"end clamped", "bytes=5-99999999", "", 206, 5, size - 1},
		{"spaces and case", "Bytes = 7 - 8", "", 206, 7, 8},
		{"if-range match", "bytes=10-19", `"` + dgst.String() + `"`, 206, 10, 19},
		{"if-range mismatch", "bytes=10-19", `"sha256:other"`, 200, 0, size - 1},
		{"multi range", "bytes=0-1,5-6", "", 200, 0, size - 1},
		{"other unit", "items=0-1", "", 200, 0, size - 1},
		{"reversed", "bytes=9-1", "", 200, 0, size - 1},
		{"garbage", "bytes=a-b", "", 200, 0, size - 1},
		{"signed", "bytes=+1-2", "", 200, 0, size - 1},
		{"start at size", fmt.Sprintf("bytes=%d-", size), "", 416, 0, 0},
		{"zero suffix", "bytes=-0", "", 416, 0, 0},
	}
	for _, warm := range []bool{false, true} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("warm=%v/%s", warm, tc.name), func(t *testing.T) {
				up := newUpstream(t, honest(blob))
				g := newGroup(t, Options{MaxSpoolBytes: 1 << 30})
				px := proxyFor(t, g, dgst, httpOpener(up.URL))
				if warm {
					if res := get(t, px.URL, nil); res.err != nil || !bytes.Equal(res.body, blob) {
						t.Fatalf("warm-up: status %d err %v", res.status, res.err)
					}
				}
				hdr := map[string]string{"Range": tc.rng}
				if tc.ifRange != "" {
					hdr["If-Range"] = tc.ifRange
				}
				res := get(t, px.URL, hdr)
				if res.err != nil || res.status != tc.status {
					t.Fatalf("status %d (want %d), err %v, body %q", res.status, tc.status, res.err, trunc(res.body))
				}
				switch tc.status {
				case 416:
					if got, want := res.header.Get("Content-Range"), fmt.Sprintf("bytes */%d", size); got != want {
						t.Errorf("Content-Range = %q, want %q", got, want)
					}
					if !strings.Contains(string(res.body), "RANGE_INVALID") {
						t.Errorf("body %q lacks RANGE_INVALID", res.body)
					}
				case 206:
					if got, want := res.header.Get("Content-Range"), fmt.Sprintf("bytes %d-%d/%d", tc.start, tc.end, size); got != want {
						t.Errorf("Content-Range = %q, want %q", got, want)
					}
					fallthrough
				default:
					if !bytes.Equal(res.body, blob[tc.start:tc.end+1]) {
						t.Errorf("body: got %d bytes, want [%d,%d]", len(res.body), tc.start, tc.end)
					}
					if n := contentLength(t, res.header); n != int64(len(res.body)) {
						t.Errorf("Content-Length %d, body %d", n, len(res.body))
					}
				}
				s := g.Stats()
				if s.Fetches != 1 || up.requests.Load() != 1 {
					t.Errorf("fetches %d, upstream requests %d; want 1 (a range starts the full download)", s.Fetches, up.requests.Load())
				}
				if warm && s.Hits != 1 {
					t.Errorf("warm range did not hit the retained spool: %+v", s)
				}
			})
		}
	}
}

func trunc(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}

func TestServeEmptyBlob(t *testing.T) {
	dgst := digest.FromBytes(nil)
	up := newUpstream(t, honest(nil))
	dir := t.TempDir()
	g := newGroup(t, Options{Dir: dir})
	px := proxyFor(t, g, dgst, httpOpener(up.URL))
	res := get(t, px.URL, nil)
	if res.err != nil || res.status != 200 || len(res.body) != 0 || res.header.Get("Content-Length") != "0" {
		t.Fatalf("status %d err %v len %d CL %q", res.status, res.err, len(res.body), res.header.Get("Content-Length"))
	}
	if res := get(t, px.URL, map[string]string{"Range": "bytes=0-"}); res.status != 416 {
		t.Fatalf("range on empty blob: status %d, want 416", res.status)
	}
	// Nothing is retained with MaxSpoolBytes 0, not even a blob of 0 bytes.
	waitFor(t, "spools to be closed", func() bool { return openSpools(t, dir) == 0 })
	if s := g.Stats(); s.Retained != 0 || s.Fetches != 2 {
		t.Errorf("stats %+v", s)
	}
}

// An upstream without Content-Length: the blob is spooled and verified
// before anything is sent, then served with an exact Content-Length.
func TestServeUnknownSize(t *testing.T) {
	blob, dgst := randomBlob(t, 3, 2<<20)
	tests := []struct {
		name    string
		body    []byte
		status  int
		failure bool
	}{
		{"honest", blob, 200, false},
		{"wrong bytes", append([]byte{blob[0] ^ 1}, blob[1:]...), 502, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newGroup(t, Options{})
			open := func(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
				return io.NopCloser(bytes.NewReader(tc.body[off:])), -1, nil
			}
			px := proxyFor(t, g, dgst, open)
			res := get(t, px.URL, nil)
			if res.err != nil || res.status != tc.status {
				t.Fatalf("status %d (want %d), err %v", res.status, tc.status, res.err)
			}
			if tc.status == 200 {
				if !bytes.Equal(res.body, blob) || contentLength(t, res.header) != int64(len(blob)) {
					t.Fatalf("body %d bytes, Content-Length %s", len(res.body), res.header.Get("Content-Length"))
				}
			}
			if got := g.Stats().Failures; (got == 1) != tc.failure {
				t.Errorf("failures %d", got)
			}
		})
	}
}

func TestServeHead(t *testing.T) {
	blob, dgst := randomBlob(t, 4, 1<<20)
	up := newUpstream(t, honest(blob))
	g := newGroup(t, Options{MaxSpoolBytes: 1 << 30})
	px := proxyFor(t, g, dgst, httpOpener(up.URL))

	head := func() *http.Response {
		resp, err := http.Head(px.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := head()
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(blob)) || resp.Header.Get("Docker-Content-Digest") != dgst.String() {
		t.Fatalf("cold HEAD: %d, length %d, digest %q", resp.StatusCode, resp.ContentLength, resp.Header.Get("Docker-Content-Digest"))
	}
	if s := g.Stats(); s.Fetches != 0 || s.UpstreamBytes != 0 {
		t.Fatalf("cold HEAD started a download: %+v", s)
	}
	if res := get(t, px.URL, nil); !bytes.Equal(res.body, blob) {
		t.Fatal("GET body differs")
	}
	before := up.requests.Load()
	if resp := head(); resp.StatusCode != 200 || resp.ContentLength != int64(len(blob)) {
		t.Fatalf("warm HEAD: %d, length %d", resp.StatusCode, resp.ContentLength)
	}
	if up.requests.Load() != before {
		t.Error("warm HEAD went upstream")
	}
}

func TestServeErrorsBeforeHeaders(t *testing.T) {
	blob, dgst := randomBlob(t, 5, 1024)
	tests := []struct {
		name   string
		dgst   digest.Digest
		h      http.HandlerFunc
		status int
		code   string
	}{
		{"upstream 404", dgst, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, 502, "UNKNOWN"},
		{"invalid digest", "sha256:xyz", honest(blob), 400, "DIGEST_INVALID"},
		{"unknown algorithm", "md5:d41d8cd98f00b204e9800998ecf8427e", honest(blob), 400, "DIGEST_INVALID"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, tc.h)
			g := newGroup(t, Options{})
			px := proxyFor(t, g, tc.dgst, httpOpener(up.URL))
			res := get(t, px.URL, nil)
			if res.status != tc.status || !strings.Contains(string(res.body), tc.code) {
				t.Fatalf("status %d body %q, want %d %s", res.status, res.body, tc.status, tc.code)
			}
		})
	}
}

// OnError lets the proxy map upstream failures (e.g. 404 → BLOB_UNKNOWN).
func TestServeOnError(t *testing.T) {
	_, dgst := randomBlob(t, 6, 10)
	g := newGroup(t, Options{OnError: func(w http.ResponseWriter, r *http.Request, err error) {
		http.Error(w, "custom: "+err.Error(), http.StatusTeapot)
	}})
	open := func(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
		return nil, 0, fmt.Errorf("nope")
	}
	px := proxyFor(t, g, dgst, open)
	res := get(t, px.URL, nil)
	if res.status != http.StatusTeapot || !strings.Contains(string(res.body), "nope") {
		t.Fatalf("status %d body %q", res.status, res.body)
	}
}

// sendfileRecorder passes ReadFrom to net/http's writer and records what it
// was handed: the zero-copy path must give it the spool itself (an
// *os.File under an io.LimitedReader, which net/http sends with sendfile),
// never a reader that copies through user space.
type sendfileRecorder struct {
	http.ResponseWriter
	mu    sync.Mutex
	bytes int64
	other []string // types handed to ReadFrom other than a limited *os.File
}

func (s *sendfileRecorder) ReadFrom(src io.Reader) (int64, error) {
	lr, ok := src.(*io.LimitedReader)
	if _, isFile := lr.R.(*os.File); !ok || !isFile {
		s.mu.Lock()
		s.other = append(s.other, fmt.Sprintf("%T", src))
		s.mu.Unlock()
	}
	n, err := s.ResponseWriter.(io.ReaderFrom).ReadFrom(src)
	s.mu.Lock()
	s.bytes += n
	s.mu.Unlock()
	return n, err
}

func (s *sendfileRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Cold and warm, full and ranged, every body byte of a plain HTTP/1
// response goes to the socket by sendfile from the spool.
func TestServeZeroCopy(t *testing.T) {
	blob, dgst := randomBlob(t, 90, 3<<20+17)
	up := newUpstream(t, honest(blob))
	g := newGroup(t, Options{MaxSpoolBytes: 1 << 30})
	var rec *sendfileRecorder
	px := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
		rec = &sendfileRecorder{ResponseWriter: w}
		g.Serve(rec, r, dgst, httpOpener(up.URL))
	})
	for _, tc := range []struct {
		name, rng  string
		start, end int
	}{
		{"cold", "", 0, len(blob) - 1},
		{"warm", "", 0, len(blob) - 1},
		{"warm range", "bytes=1000-2000000", 1000, 2000000},
	} {
		hdr := map[string]string{}
		if tc.rng != "" {
			hdr["Range"] = tc.rng
		}
		res := get(t, px.URL, hdr)
		if res.err != nil || !bytes.Equal(res.body, blob[tc.start:tc.end+1]) {
			t.Fatalf("%s: status %d, %d bytes, err %v", tc.name, res.status, len(res.body), res.err)
		}
		if rec.bytes != int64(len(res.body)) || len(rec.other) > 0 {
			t.Errorf("%s: %d of %d bytes by ReadFrom, other readers %v", tc.name, rec.bytes, len(res.body), rec.other)
		}
	}
	if s := g.Stats(); s.Fetches != 1 || s.Hits != 2 || up.requests.Load() != 1 {
		t.Errorf("stats %+v, upstream requests %d", s, up.requests.Load())
	}
}
