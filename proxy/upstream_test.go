package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/trustgate/trustgate/internal/peers"
	"github.com/trustgate/trustgate/policy"
)

// liar is a reverse proxy in front of the real registry that alters what it relays.
type liar struct {
	corruptManifests atomic.Bool // flip one byte of every manifest body
	corruptBlobs     atomic.Bool // flip one byte of every blob body
	hugeManifests    atomic.Bool // replace manifest bodies with 5 MiB
	url              string
	requests         atomic.Int64
}

func startLiar(t *testing.T, upstream string) *liar {
	t.Helper()
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	l := &liar{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		l.requests.Add(1)
		if resp.Request.Method != http.MethodGet || resp.StatusCode != http.StatusOK {
			return nil
		}
		isManifest := strings.Contains(resp.Request.URL.Path, "/manifests/")
		isBlob := strings.Contains(resp.Request.URL.Path, "/blobs/")
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		switch {
		case isManifest && l.hugeManifests.Load():
			body = bytes.Repeat([]byte(" "), 5<<20)
		case (isManifest && l.corruptManifests.Load()) || (isBlob && l.corruptBlobs.Load()):
			body = bytes.Clone(body)
			body[len(body)/2] ^= 0x20
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	l.url = srv.URL
	return l
}

// TestLyingUpstream: bytes that don't hash to the requested digest are never served, whatever the
// upstream's Docker-Content-Digest says.
func TestLyingUpstream(t *testing.T) {
	reg := peers.StartRegistry(t)
	l := startLiar(t, reg.URL)
	e := newEnv(t, reg, envConfig{upstreamURL: l.url, rules: []policy.RuleConfig{{Match: "docker.io/off/**", Mode: policy.Off}}})
	img := peers.PushImage(t, reg, "library/alpine", "1")
	peers.PushImage(t, reg, "off/x", "1")
	e.trust.sign("docker.io/library/alpine", "1", img, "targets")

	l.corruptManifests.Store(true)
	r := e.get("/v2/alpine/manifests/1")
	expectError(t, r, http.StatusServiceUnavailable, "UNAVAILABLE", "does not match", "not served")
	if r.header.Get("Docker-Content-Digest") != "" {
		t.Errorf("error carries a digest header")
	}
	l.corruptManifests.Store(false)

	l.hugeManifests.Store(true)
	expectError(t, e.get("/v2/alpine/manifests/1"), http.StatusServiceUnavailable, "UNAVAILABLE", "larger than")
	expectError(t, e.get("/v2/off/x/manifests/1"), http.StatusServiceUnavailable, "UNAVAILABLE", "larger than")
	l.hugeManifests.Store(false)

	// The honest answer is served and cached; then blobs lie.
	r = e.get("/v2/alpine/manifests/1")
	if r.status != 200 || sha(r.body) != img.Digest {
		t.Fatalf("honest: %d", r.status)
	}
	l.corruptBlobs.Store(true)
	layer := img.Layers[0]
	// Acceptable: an error status, or an aborted connection (before or during the body). Not
	// acceptable: a complete 200.
	if resp, err := http.Get(e.http.URL + "/v2/alpine/blobs/" + layer.Digest); err == nil {
		body, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && rerr == nil {
			t.Fatalf("corrupted blob served completely (%d bytes, sha %s, want %s)", len(body), sha(body), layer.Digest)
		}
	}
	// With the cached manifest, a corrupting upstream can't alter the tag either.
	l.corruptManifests.Store(true)
	if r := e.get("/v2/alpine/manifests/1"); r.status != 200 || sha(r.body) != img.Digest {
		t.Errorf("cached manifest: %d %s", r.status, sha(r.body))
	}
}

// TestNamespaceRouting: ?ns= selects the upstream and is not forwarded; an unknown ns is never
// dialled.
func TestNamespaceRouting(t *testing.T) {
	reg := peers.StartRegistry(t)
	other := peers.StartRegistry(t)
	ou, _ := url.Parse(other.URL)
	otherTrust := newFakeTrust()
	e := newEnv(t, reg, envConfig{noDefault: true, extra: []*Upstream{{Name: "ghcr.io", URL: ou, GUNPrefix: "ghcr.io", Trust: otherTrust}}})
	hub := peers.PushImage(t, reg, "library/alpine", "1")
	gh := peers.PushImage(t, other, "owner/tool", "2")
	e.trust.sign("docker.io/library/alpine", "1", hub, "targets")
	otherTrust.sign("ghcr.io/owner/tool", "2", gh, "targets")

	for _, c := range []struct{ path, digest string }{
		{"/v2/library/alpine/manifests/1?ns=docker.io", hub.Digest},
		{"/v2/alpine/manifests/1?ns=docker.io", hub.Digest},
		{"/v2/docker.io/alpine/manifests/1", hub.Digest},
		{"/v2/docker.io/library/alpine/manifests/1?ns=docker.io", hub.Digest},
		{"/v2/owner/tool/manifests/2?ns=ghcr.io", gh.Digest},
		{"/v2/ghcr.io/owner/tool/manifests/2", gh.Digest},
	} {
		r := e.get(c.path)
		if r.status != 200 || sha(r.body) != c.digest {
			t.Errorf("%s: %d %s", c.path, r.status, r.body)
		}
	}
	// Blobs are reachable only in the upstream they were resolved in.
	if r := e.get("/v2/owner/tool/blobs/" + gh.Layers[0].Digest + "?ns=ghcr.io"); r.status != 200 {
		t.Errorf("ghcr blob: %d", r.status)
	}
	expectError(t, e.get("/v2/owner/tool/blobs/"+gh.Layers[0].Digest+"?ns=docker.io"), 404, "BLOB_UNKNOWN")
	expectError(t, e.get("/v2/alpine/manifests/1"), 404, "NAME_UNKNOWN", "no upstream selected")
	expectError(t, e.get("/v2/alpine/manifests/1?ns="+url.QueryEscape(reg.Host)), 404, "NAME_UNKNOWN", "not an upstream")

	for _, r := range append(reg.Requests(), other.Requests()...) {
		if strings.Contains(r.Path, "ns=") {
			t.Errorf("ns forwarded upstream: %s", r.Path)
		}
	}
}

func TestTagsAndReferrers(t *testing.T) {
	reg := peers.StartRegistry(t)
	e := newEnv(t, reg, envConfig{rules: []policy.RuleConfig{{Match: "docker.io/off/**", Mode: policy.Off}}})
	img := peers.PushImage(t, reg, "library/alpine", "unsigned")
	for _, tag := range []string{"c", "a", "b"} {
		e.trust.sign("docker.io/library/alpine", tag, img, "targets")
	}
	peers.PushImage(t, reg, "off/app", "y")
	peers.PushImage(t, reg, "off/app", "x")

	list := func(path string) (tagList, http.Header) {
		t.Helper()
		r := e.get(path)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
		var tl tagList
		if err := json.Unmarshal(r.body, &tl); err != nil {
			t.Fatal(err)
		}
		return tl, r.header
	}
	tl, h := list("/v2/alpine/tags/list")
	if tl.Name != "alpine" || strings.Join(tl.Tags, ",") != "a,b,c" || h.Get("Link") != "" {
		t.Errorf("enforce list: %+v %q", tl, h.Get("Link"))
	}
	tl, h = list("/v2/alpine/tags/list?n=2")
	if strings.Join(tl.Tags, ",") != "a,b" || h.Get("Link") != `</v2/alpine/tags/list?last=b&n=2>; rel="next"` {
		t.Errorf("page 1: %+v %q", tl, h.Get("Link"))
	}
	tl, h = list("/v2/alpine/tags/list?n=2&last=b")
	if strings.Join(tl.Tags, ",") != "c" || h.Get("Link") != "" {
		t.Errorf("page 2: %+v %q", tl, h.Get("Link"))
	}
	tl, _ = list("/v2/alpine/tags/list?last=zzz")
	if tl.Tags == nil || len(tl.Tags) != 0 {
		t.Errorf("past the end: %+v", tl)
	}
	tl, _ = list("/v2/off/app/tags/list")
	if strings.Join(tl.Tags, ",") != "x,y" {
		t.Errorf("off list: %+v", tl)
	}
	expectError(t, e.get("/v2/off/none/tags/list"), 404, "NAME_UNKNOWN")
	e.trust.fail("docker.io/library/down", errTrustDown)
	expectError(t, e.get("/v2/down/tags/list"), 503, "UNAVAILABLE", "trust server unavailable")

	for _, p := range []string{"/v2/alpine/referrers/" + img.Digest, "/v2/off/app/referrers/" + img.Digest} {
		r := e.get(p)
		var idx v1.Index
		if r.status != 200 || r.header.Get("Content-Type") != v1.MediaTypeImageIndex || json.Unmarshal(r.body, &idx) != nil || idx.Manifests == nil || len(idx.Manifests) != 0 {
			t.Errorf("%s: %d %q %s", p, r.status, r.header.Get("Content-Type"), r.body)
		}
	}
	expectError(t, e.get("/v2/alpine/referrers/nope"), 400, "DIGEST_INVALID")
}

// TestBlobRange: a signed image's blob honours Range (docker's resume needs 206).
func TestBlobRange(t *testing.T) {
	reg := peers.StartRegistry(t)
	e := newEnv(t, reg, envConfig{})
	img := peers.PushImage(t, reg, "library/alpine", "1")
	e.trust.sign("docker.io/library/alpine", "1", img, "targets")
	if r := e.get("/v2/alpine/manifests/1"); r.status != 200 {
		t.Fatal(r.status)
	}
	layer := img.Layers[0]
	// HEAD is answered by an upstream HEAD: the blob is not downloaded.
	mark := reg.Log.Len()
	h := e.do(http.MethodHead, "/v2/alpine/blobs/"+layer.Digest, nil)
	if h.status != 200 || h.header.Get("Content-Length") != strconv.FormatInt(layer.Size, 10) {
		t.Fatalf("HEAD: %d %v", h.status, h.header)
	}
	for _, r := range reg.RequestsSince(mark) {
		if r.Method == http.MethodGet && strings.Contains(r.Path, layer.Digest) {
			t.Errorf("HEAD downloaded the blob: %+v", r)
		}
	}
	full := e.get("/v2/alpine/blobs/" + layer.Digest)
	r := e.do(http.MethodGet, "/v2/alpine/blobs/"+layer.Digest, http.Header{"Range": {"bytes=10-"}})
	if r.status != http.StatusPartialContent || !bytes.Equal(r.body, full.body[10:]) || r.header.Get("Content-Range") != "bytes 10-"+strconv.FormatInt(layer.Size-1, 10)+"/"+strconv.FormatInt(layer.Size, 10) {
		t.Errorf("range: %d %q %d bytes", r.status, r.header.Get("Content-Range"), len(r.body))
	}
	r = e.do(http.MethodGet, "/v2/alpine/blobs/"+layer.Digest, http.Header{"Range": {"bytes=999999999-"}})
	if r.status != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("unsatisfiable range: %d", r.status)
	}
}

// TestConcurrentManifestFetch: concurrent pulls of one signed tag cost one upstream manifest GET.
func TestConcurrentManifestFetch(t *testing.T) {
	reg := peers.StartRegistry(t)
	e := newEnv(t, reg, envConfig{})
	img := peers.PushImage(t, reg, "library/alpine", "1")
	e.trust.sign("docker.io/library/alpine", "1", img, "targets")
	mark := reg.Log.Len()
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(e.http.URL + "/v2/alpine/manifests/1")
			if err != nil {
				bad.Add(1)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || sha(b) != img.Digest {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d requests failed", bad.Load())
	}
	if reqs := manifestRequests(reg, mark); len(reqs) != 1 {
		t.Errorf("upstream manifest requests: %d, want 1: %+v", len(reqs), reqs)
	}
}

// TestBlobSpoolsAreNotSharedAcrossUpstreams: a blob fetched (and kept) for one upstream must not
// be served to a request addressed to another upstream that does not have it; the first may hold
// private content its credentials can read.
func TestBlobSpoolsAreNotSharedAcrossUpstreams(t *testing.T) {
	reg := peers.StartRegistry(t)
	other := peers.StartRegistry(t)
	ou, _ := url.Parse(other.URL)
	e := newEnv(t, reg, envConfig{def: policy.Off, spoolBytes: 64 << 20,
		extra: []*Upstream{{Name: "ghcr.io", URL: ou, GUNPrefix: "ghcr.io", Trust: newFakeTrust()}}})
	img := peers.PushImage(t, reg, "library/alpine", "1")
	layer := img.Layers[0].Digest
	if r := e.get("/v2/library/alpine/blobs/" + layer + "?ns=docker.io"); r.status != 200 || sha(r.body) != layer {
		t.Fatalf("blob from its own upstream: %d", r.status)
	}
	r := e.get("/v2/owner/tool/blobs/" + layer + "?ns=ghcr.io")
	if r.status == 200 {
		t.Fatalf("a blob kept for docker.io was served for ghcr.io, which does not have it")
	}
	expectError(t, r, 404, "BLOB_UNKNOWN")
}
