package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

// blobTamperFront is the upstream trustgate talks to: a reverse proxy in front of the real registry
// that, while armed, flips one byte (at absolute offset at) of one blob's body, whether the blob
// is fetched whole or with a Range. Everything else passes through untouched.
type blobTamperFront struct {
	*httptest.Server
	path  string // /v2/<repo>/blobs/<digest>
	at    atomic.Int64
	armed atomic.Bool
	flips atomic.Int64 // bodies in which the byte was flipped
	gets  atomic.Int64 // GETs of the blob, armed or not
}

func newBlobTamperFront(t *testing.T, registryURL, repo, digest string) *blobTamperFront {
	t.Helper()
	target, err := url.Parse(registryURL)
	if err != nil {
		t.Fatal(err)
	}
	f := &blobTamperFront{path: "/v2/" + repo + "/blobs/" + digest}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method == http.MethodGet && resp.Request.URL.Path == f.path {
			f.gets.Add(1)
		}
		if !f.armed.Load() || resp.Request.Method != http.MethodGet || resp.Request.URL.Path != f.path {
			return nil
		}
		var start int64
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusPartialContent:
			var last, size int64
			if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &start, &last, &size); err != nil {
				return err
			}
		default:
			return nil
		}
		resp.Body = &flipReader{rc: resp.Body, pos: start, at: f.at.Load(), flipped: &f.flips}
		return nil
	}
	f.Server = httptest.NewServer(rp)
	t.Cleanup(f.Close)
	return f
}

// flipReader flips the byte at absolute offset at of a body that starts at offset pos.
type flipReader struct {
	rc      io.ReadCloser
	pos, at int64
	flipped *atomic.Int64
}

func (r *flipReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if r.at >= r.pos && r.at < r.pos+int64(n) {
		p[r.at-r.pos] ^= 0x01
		r.flipped.Add(1)
	}
	r.pos += int64(n)
	return n, err
}

func (r *flipReader) Close() error { return r.rc.Close() }

// blobFetch is one blob GET as a client sees it: the status, headers and the body it could read,
// with the error that ended the body early (nil for a complete one).
type blobFetch struct {
	code    int
	header  http.Header
	body    []byte
	err     error
	declare int64 // Content-Length
}

// complete reports whether the response was delivered in full, as a client would accept it.
func (f blobFetch) complete() bool {
	return f.err == nil && (f.code == 200 || f.code == 206) && int64(len(f.body)) == f.declare
}

func (f blobFetch) String() string {
	return fmt.Sprintf("status %d, %d of %d bytes, err %v, Content-Range %q", f.code, len(f.body), f.declare, f.err, f.header.Get("Content-Range"))
}

func fetchBlob(t *testing.T, url, rng string) blobFetch {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	c := &http.Client{Timeout: 2 * time.Minute}
	resp, err := c.Do(req)
	if err != nil {
		return blobFetch{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return blobFetch{code: resp.StatusCode, header: resp.Header, body: body, err: err, declare: resp.ContentLength}
}

// TestRangeTamperedUpstream (issue #8): the upstream sends a signed image's layer with one byte
// flipped. No response through trustgate — a full GET or a Range at the start, middle or end of
// the blob, a suffix range, several ranges — completes: each ends short of its Content-Length (or
// is an error status), whether the flipped byte is inside the requested range or not. Once the
// upstream is honest again, the same requests complete with the right bytes, cold and from the
// retained spool.
func TestRangeTamperedUpstream(t *testing.T) {
	const repo = "library/tamper"
	w := newWorld(t)
	img := peers.PushBigImage(t, w.reg, repo, "v1", 4<<20, 7)
	w.sign(t, repo, "v1", img)
	layer := img.Layers[0]
	direct := get(t, http.MethodGet, w.reg.URL+"/v2/"+repo+"/blobs/"+layer.Digest)
	if direct.code != 200 || direct.digest() != layer.Digest {
		t.Fatalf("layer straight from the registry: %d, digest %s", direct.code, direct.digest())
	}
	blob := direct.body
	size := int64(len(blob))

	front := newBlobTamperFront(t, w.reg.URL, repo, layer.Digest)
	g := peers.StartTrustgate(t, trustgateBin, peers.GateConfig{RegistryURL: front.URL, NotaryURL: w.notary.URL})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("trustgate log (%s), last lines:\n%s", g.Log.Path(), g.Log.Tail(60))
		}
	})
	if got := getManifest(t, g, repo, "v1"); got.code != 200 || got.digest() != img.Digest {
		t.Fatalf("GET %s:v1 = %d %s", repo, got.code, got.body)
	}
	blobURL := g.URL + "/v2/" + repo + "/blobs/" + layer.Digest

	type req struct {
		name       string
		rng        string
		start, end int64 // the bytes a correct answer carries
	}
	reqs := []req{
		{"full", "", 0, size - 1},
		{"start", "bytes=0-2047", 0, 2047},
		{"middle", fmt.Sprintf("bytes=%d-%d", size/2, size/2+65535), size / 2, size/2 + 65535},
		{"end", fmt.Sprintf("bytes=%d-%d", size-4096, size-1), size - 4096, size - 1},
		{"resume", fmt.Sprintf("bytes=%d-", size/3), size / 3, size - 1},
		{"suffix", "bytes=-4096", size - 4096, size - 1},
		{"multi", "bytes=0-9,100-109", 0, size - 1}, // answered with the whole blob
	}

	front.armed.Store(true)
	for _, rq := range reqs {
		for _, at := range []int64{(rq.start + rq.end) / 2, 0, size - 1} {
			t.Run(fmt.Sprintf("tampered/%s/flip@%d", rq.name, at), func(t *testing.T) {
				front.at.Store(at)
				before := front.flips.Load()
				got := fetchBlob(t, blobURL, rq.rng)
				if front.flips.Load() == before {
					t.Fatalf("the front flipped no byte (%s): the test did not reach the tampered blob", got)
				}
				if got.complete() {
					t.Fatalf("%s completed with a tampered upstream: %s; matches upstream bytes: %v",
						rq.name, got, bytes.Equal(got.body, blob[rq.start:rq.end+1]))
				}
				switch {
				case got.code == 0 && got.err != nil: // reset before the headers arrived
				case got.code == http.StatusServiceUnavailable: // verdict before the headers
				case got.code == 200 || got.code == 206:
					if got.err == nil {
						t.Errorf("short body without a transport error: %s", got)
					}
				default:
					t.Errorf("unexpected answer: %s", got)
				}
				t.Logf("%s", got)
			})
		}
	}

	front.armed.Store(false)
	for _, warm := range []bool{false, true} {
		for _, rq := range reqs {
			t.Run(fmt.Sprintf("honest/warm=%v/%s", warm, rq.name), func(t *testing.T) {
				got := fetchBlob(t, blobURL, rq.rng)
				want := 206
				if rq.rng == "" || strings.Contains(rq.rng, ",") {
					want = 200
				}
				if !got.complete() || got.code != want || !bytes.Equal(got.body, blob[rq.start:rq.end+1]) {
					t.Fatalf("%s: %s, want %d with the upstream's bytes", rq.name, got, want)
				}
				if want == 206 {
					if cr, exp := got.header.Get("Content-Range"), "bytes "+strconv.FormatInt(rq.start, 10)+"-"+strconv.FormatInt(rq.end, 10)+"/"+strconv.FormatInt(size, 10); cr != exp {
						t.Errorf("Content-Range %q, want %q", cr, exp)
					}
				}
			})
		}
		if !warm {
			// The honest cold requests above left the blob verified and retained
			// (blob_spool_bytes defaults to 1 GiB): the warm round must not go upstream.
			gets := front.gets.Load()
			t.Cleanup(func() {
				if n := front.gets.Load() - gets; n != 0 {
					t.Errorf("warm round: %d upstream GETs of the layer, want 0", n)
				}
			})
		}
	}
}
