package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/trustgate/trustgate/internal/peers"
	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/resolver"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestSignedTag: a signed tag is served as the bytes of the signed digest, fetched upstream by
// digest only, with identical headers on HEAD and GET, and the tag is never asked upstream.
func TestSignedTag(t *testing.T) {
	reg := peers.StartRegistry(t)
	e := newEnv(t, reg, envConfig{})
	img := peers.PushImage(t, reg, "library/alpine", "3.20")
	e.trust.sign("docker.io/library/alpine", "3.20", img, "targets/releases")
	// Move the tag upstream: trustgate must keep serving the signed digest.
	moved := peers.PushImage(t, reg, "library/alpine", "3.20")
	mark := reg.Log.Len()

	get := e.get("/v2/alpine/manifests/3.20")
	if get.status != http.StatusOK {
		t.Fatalf("GET: %d %s", get.status, get.body)
	}
	if sha(get.body) != img.Digest || sha(get.body) == moved.Digest {
		t.Fatalf("served %s, want the signed %s (tag upstream now %s)", sha(get.body), img.Digest, moved.Digest)
	}
	head := e.do(http.MethodHead, "/v2/library/alpine/manifests/3.20", nil)
	for _, h := range []string{"Docker-Content-Digest", "Content-Type", "Content-Length", "Etag", HeaderDecision, HeaderRole, HeaderSignedDigest, "Docker-Distribution-Api-Version"} {
		if get.header.Get(h) == "" || get.header.Get(h) != head.header.Get(h) {
			t.Errorf("%s: GET %q, HEAD %q", h, get.header.Get(h), head.header.Get(h))
		}
	}
	if len(head.body) != 0 {
		t.Errorf("HEAD body: %q", head.body)
	}
	want := map[string]string{
		"Docker-Content-Digest":           img.Digest,
		"Content-Type":                    img.MediaType,
		"Content-Length":                  strconv.FormatInt(img.Size, 10),
		HeaderDecision:                    "allow",
		HeaderRole:                        "targets/releases",
		HeaderSignedDigest:                img.Digest,
		"Docker-Distribution-Api-Version": "registry/2.0",
	}
	for h, v := range want {
		if got := get.header.Get(h); got != v {
			t.Errorf("%s = %q, want %q", h, got, v)
		}
	}
	reqs := manifestRequests(reg, mark)
	if len(reqs) != 1 || !strings.HasSuffix(reqs[0].Path, "/manifests/"+img.Digest) {
		t.Errorf("upstream manifest requests = %+v, want exactly one GET by the signed digest", reqs)
	}
	// Once cached, by digest too: no upstream request at all.
	mark = reg.Log.Len()
	if r := e.get("/v2/library/alpine/manifests/" + img.Digest); r.status != http.StatusOK || sha(r.body) != img.Digest {
		t.Fatalf("by digest: %d", r.status)
	}
	if reqs := manifestRequests(reg, mark); len(reqs) != 0 {
		t.Errorf("cached manifest fetched again: %+v", reqs)
	}

	// The layers and config of the signed manifest are reachable.
	var m v1.Manifest
	if err := json.Unmarshal(get.body, &m); err != nil {
		t.Fatal(err)
	}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		r := e.get("/v2/alpine/blobs/" + d.Digest.String())
		if r.status != http.StatusOK || sha(r.body) != d.Digest.String() || int64(len(r.body)) != d.Size {
			t.Errorf("blob %s: %d, %d bytes", d.Digest, r.status, len(r.body))
		}
		h := e.do(http.MethodHead, "/v2/alpine/blobs/"+d.Digest.String(), nil)
		if h.status != http.StatusOK || h.header.Get("Content-Length") != strconv.FormatInt(d.Size, 10) || h.header.Get("Docker-Content-Digest") != d.Digest.String() {
			t.Errorf("HEAD blob %s: %d %v", d.Digest, h.status, h.header)
		}
	}
	// The moved tag's manifest is not reachable from any signed tag.
	r := e.get("/v2/alpine/manifests/" + moved.Digest)
	expectError(t, r, http.StatusNotFound, "MANIFEST_UNKNOWN", "not reachable from any signed tag", "docker.io/library/alpine")
	r = e.get("/v2/alpine/blobs/" + moved.Layers[0].Digest)
	expectError(t, r, http.StatusNotFound, "BLOB_UNKNOWN", "not reachable from any signed tag")

	// Every manifest decision is logged with the required attributes.
	var found bool
	for _, d := range e.decisions() {
		if d["tag"] == "3.20" && d["decision"] == "allow" {
			found = true
			for _, k := range []string{"repo", "tag", "digest", "role", "decision", "reason", "latency", "upstream", "method"} {
				if _, ok := d[k]; !ok {
					t.Errorf("decision log lacks %q: %v", k, d)
				}
			}
			if d["digest"] != img.Digest || d["repo"] != "docker.io/library/alpine" || d["role"] != "targets/releases" {
				t.Errorf("decision log: %v", d)
			}
		}
	}
	if !found {
		t.Errorf("no allow decision logged: %v", e.decisions())
	}
}

// TestSignedIndex: the children of a signed index, and their blobs, become reachable when served.
func TestSignedIndex(t *testing.T) {
	reg := peers.StartRegistry(t)
	e := newEnv(t, reg, envConfig{})
	idx := peers.PushIndex(t, reg, "team/app", "v1")
	e.trust.sign("docker.io/team/app", "v1", idx, "targets")

	// A child before the index was resolved: reachable from the signature all the same.
	r := e.do(http.MethodGet, "/v2/team/app/manifests/"+idx.Children[0].Digest, http.Header{"Accept": {"*/*"}})
	if r.status != http.StatusOK || sha(r.body) != idx.Children[0].Digest {
		t.Fatalf("child before its index: %d %s", r.status, r.body)
	}

	r = e.get("/v2/team/app/manifests/v1")
	if r.status != http.StatusOK || sha(r.body) != idx.Digest || r.header.Get("Content-Type") != v1.MediaTypeImageIndex {
		t.Fatalf("index: %d %s %q", r.status, r.header.Get("Content-Type"), r.body)
	}
	for _, c := range idx.Children {
		r := e.do(http.MethodGet, "/v2/team/app/manifests/"+c.Digest, http.Header{"Accept": {c.MediaType + ", */*"}})
		if r.status != http.StatusOK || sha(r.body) != c.Digest {
			t.Fatalf("child %s: %d %s", c.Digest, r.status, r.body)
		}
		for _, l := range c.Layers {
			if r := e.get("/v2/team/app/blobs/" + l.Digest); r.status != http.StatusOK || sha(r.body) != l.Digest {
				t.Errorf("layer %s: %d", l.Digest, r.status)
			}
		}
	}
	// Reachability is per repository.
	peers.PushIndex(t, reg, "team/other", "v1")
	r = e.get("/v2/team/other/blobs/" + idx.Children[0].Layers[0].Digest)
	expectError(t, r, http.StatusNotFound, "BLOB_UNKNOWN", "docker.io/team/other")
}

// TestRefusals covers every way a manifest request is refused or fails, and that none of them
// serves a byte of manifest.
func TestRefusals(t *testing.T) {
	reg := peers.StartRegistry(t)
	img := peers.PushImage(t, reg, "library/busybox", "1")
	e := newEnv(t, reg, envConfig{rules: []policy.RuleConfig{{Match: "docker.io/blocked/**", Mode: policy.Deny}}})

	t.Run("unsigned", func(t *testing.T) {
		mark := reg.Log.Len()
		r := e.get("/v2/busybox/manifests/1")
		expectError(t, r, http.StatusNotFound, "MANIFEST_UNKNOWN", "docker.io/library/busybox:1", "no valid signature")
		if r.header.Get(HeaderDecision) != "refuse" {
			t.Errorf("decision header %q", r.header.Get(HeaderDecision))
		}
		if reqs := manifestRequests(reg, mark); len(reqs) != 0 {
			t.Errorf("unsigned tag caused upstream manifest requests: %+v", reqs)
		}
		h := e.do(http.MethodHead, "/v2/busybox/manifests/1", nil)
		if h.status != http.StatusNotFound || len(h.body) != 0 {
			t.Errorf("HEAD unsigned: %d %q", h.status, h.body)
		}
	})
	t.Run("no trust data", func(t *testing.T) {
		e.trust.fail("docker.io/library/nodata:1", fmt.Errorf("GET root.json: %w", resolver.ErrNoTrustData))
		r := e.get("/v2/nodata/manifests/1")
		expectError(t, r, http.StatusNotFound, "MANIFEST_UNKNOWN", "docker.io/library/nodata:1", "no valid signature", "no trust data")
	})
	for _, sentinel := range []error{resolver.ErrUnavailable, resolver.ErrExpired, resolver.ErrRollback, resolver.ErrThreshold, resolver.ErrInvalid} {
		t.Run("resolver "+sentinel.Error(), func(t *testing.T) {
			e.trust.fail("docker.io/library/busybox:1", fmt.Errorf("timestamp: %w", sentinel))
			defer e.trust.fail("docker.io/library/busybox:1", nil)
			r := e.get("/v2/busybox/manifests/1")
			expectError(t, r, http.StatusServiceUnavailable, "UNAVAILABLE", sentinel.Error())
			if r.header.Get(HeaderDecision) != "error" {
				t.Errorf("decision header %q", r.header.Get(HeaderDecision))
			}
		})
	}
	t.Run("signed digest missing upstream", func(t *testing.T) {
		ghost := peers.Pushed{Digest: sha([]byte("never pushed")), Size: 12}
		e.trust.sign("docker.io/library/busybox", "ghost", ghost, "targets")
		r := e.get("/v2/busybox/manifests/ghost")
		expectError(t, r, http.StatusNotFound, "MANIFEST_UNKNOWN", "signed to "+ghost.Digest, "no manifest with that digest")
		if r.header.Get(HeaderSignedDigest) != ghost.Digest {
			t.Errorf("signed digest header %q", r.header.Get(HeaderSignedDigest))
		}
	})
	t.Run("size mismatch", func(t *testing.T) {
		wrong := img
		wrong.Size++
		e.trust.sign("docker.io/library/busybox", "size", wrong, "targets")
		r := e.get("/v2/busybox/manifests/size")
		expectError(t, r, http.StatusServiceUnavailable, "UNAVAILABLE", "not served")
	})
	t.Run("expired", func(t *testing.T) {
		e.trust.sign("docker.io/library/busybox", "old", img, "targets")
		e.trust.mu.Lock()
		tgt := e.trust.targets["docker.io/library/busybox:old"]
		tgt.Expires = time.Now().Add(-time.Minute)
		e.trust.targets["docker.io/library/busybox:old"] = tgt
		e.trust.mu.Unlock()
		expectError(t, e.get("/v2/busybox/manifests/old"), http.StatusServiceUnavailable, "UNAVAILABLE", "expired")
	})
	t.Run("signed too large", func(t *testing.T) {
		big := img
		big.Size = maxManifestSize + 1
		e.trust.sign("docker.io/library/busybox", "big", big, "targets")
		r := e.get("/v2/busybox/manifests/big")
		expectError(t, r, http.StatusServiceUnavailable, "UNAVAILABLE", "more than")
	})
	t.Run("deny", func(t *testing.T) {
		for _, p := range []string{"/v2/blocked/x/manifests/1", "/v2/blocked/x/blobs/" + img.Layers[0].Digest, "/v2/blocked/x/tags/list", "/v2/blocked/x/referrers/" + img.Digest} {
			r := e.get(p)
			expectError(t, r, http.StatusForbidden, "DENIED", "docker.io/blocked/x", "not allowed by trustgate policy")
		}
	})
	t.Run("bad input", func(t *testing.T) {
		cases := []struct {
			path, code string
			status     int
		}{
			{"/v2/Upper/manifests/1", "NAME_INVALID", 400},
			{"/v2/a//b/manifests/1", "NAME_INVALID", 400},
			{"/v2/a/../b/manifests/1", "NAME_INVALID", 400},
			{"/v2/" + strings.Repeat("a/", 200) + "a/manifests/1", "NAME_INVALID", 400},
			{"/v2/busybox/manifests/sha256:zz", "DIGEST_INVALID", 400},
			{"/v2/busybox/manifests/md5:" + strings.Repeat("0", 32), "DIGEST_INVALID", 400},
			{"/v2/busybox/manifests/-tag", "TAG_INVALID", 400},
			{"/v2/busybox/blobs/latest", "DIGEST_INVALID", 400},
			{"/v2/busybox/tags/list?n=-1", "PAGINATION_NUMBER_INVALID", 400},
			{"/v2/busybox/manifests/1?ns=evil.example", "NAME_UNKNOWN", 404},
			{"/v2/busybox/manifests/1?ns=", "NAME_INVALID", 400},
			{"/v2/nothing/here", "UNSUPPORTED", 404},
		}
		for _, c := range cases {
			expectError(t, e.get(c.path), c.status, c.code)
		}
	})
	t.Run("methods", func(t *testing.T) {
		for _, c := range []struct{ method, path string }{
			{http.MethodPut, "/v2/busybox/manifests/1"},
			{http.MethodDelete, "/v2/busybox/manifests/" + img.Digest},
			{http.MethodPost, "/v2/busybox/blobs/uploads/"},
			{http.MethodPatch, "/v2/busybox/blobs/uploads/x"},
			{http.MethodPost, "/v2/"},
			{http.MethodDelete, "/v2/busybox/tags/list"},
		} {
			r := e.do(c.method, c.path, nil)
			expectError(t, r, http.StatusMethodNotAllowed, "UNSUPPORTED", c.method)
			if r.header.Get("Docker-Distribution-Api-Version") != "registry/2.0" {
				t.Errorf("%s %s: no API version header", c.method, c.path)
			}
		}
	})
}

// TestUpstreamDown: a signed tag whose upstream is unreachable is a 503, never a 404.
func TestUpstreamDown(t *testing.T) {
	reg := peers.StartRegistry(t)
	img := peers.PushImage(t, reg, "library/alpine", "1")
	dead := deadURL(t)
	e := newEnv(t, reg, envConfig{upstreamURL: dead, rules: []policy.RuleConfig{{Match: "docker.io/off/**", Mode: policy.Off}}})
	e.trust.sign("docker.io/library/alpine", "1", img, "targets")
	for _, p := range []string{"/v2/alpine/manifests/1", "/v2/off/x/manifests/1", "/v2/off/x/blobs/" + img.Layers[0].Digest, "/v2/off/x/tags/list"} {
		expectError(t, e.get(p), http.StatusServiceUnavailable, "UNAVAILABLE", "upstream docker.io")
	}
	if r := e.do(http.MethodHead, "/v2/off/x/blobs/"+img.Layers[0].Digest, nil); r.status != http.StatusServiceUnavailable {
		t.Errorf("HEAD blob upstream down: %d", r.status)
	}
}

// TestModes: warn serves unverified content marked as such; off is a pull-through; both still
// report the digest of the bytes actually served.
func TestModes(t *testing.T) {
	reg := peers.StartRegistry(t)
	e := newEnv(t, reg, envConfig{rules: []policy.RuleConfig{
		{Match: "docker.io/warn/**", Mode: policy.Warn},
		{Match: "docker.io/off/**", Mode: policy.Off},
	}})
	wimg := peers.PushImage(t, reg, "warn/app", "1")
	oimg := peers.PushImage(t, reg, "off/app", "1")
	signed := peers.PushImage(t, reg, "warn/app", "signed")
	e.trust.sign("docker.io/warn/app", "signed", signed, "targets")

	r := e.get("/v2/warn/app/manifests/1")
	if r.status != 200 || sha(r.body) != wimg.Digest || r.header.Get("Docker-Content-Digest") != wimg.Digest {
		t.Fatalf("warn unsigned: %d %s", r.status, r.body)
	}
	if r.header.Get(HeaderDecision) != "warn" || !strings.HasPrefix(r.header.Get("Warning"), `299 - "trustgate: `) || !strings.Contains(r.header.Get("Warning"), "not signed") {
		t.Errorf("warn headers: %v", r.header)
	}
	// Resolver down in warn mode: still served, with the reason.
	e.trust.fail("docker.io/warn/app:1", fmt.Errorf("x: %w", resolver.ErrUnavailable))
	r = e.get("/v2/warn/app/manifests/1")
	if r.status != 200 || !strings.Contains(r.header.Get("Warning"), "unavailable") {
		t.Errorf("warn unavailable: %d %v", r.status, r.header)
	}
	// Signed in warn mode: like enforce.
	r = e.get("/v2/warn/app/manifests/signed")
	if r.status != 200 || sha(r.body) != signed.Digest || r.header.Get(HeaderDecision) != "allow" || r.header.Get("Warning") != "" {
		t.Errorf("warn signed: %d %v", r.status, r.header)
	}
	// By digest, unreachable: served with a warning.
	r = e.get("/v2/warn/app/blobs/" + wimg.Layers[0].Digest)
	if r.status != 200 || sha(r.body) != wimg.Layers[0].Digest || r.header.Get("Warning") == "" {
		t.Errorf("warn blob: %d %v", r.status, r.header)
	}

	r = e.get("/v2/off/app/manifests/1")
	if r.status != 200 || sha(r.body) != oimg.Digest || r.header.Get(HeaderDecision) != "allow" || r.header.Get("Warning") != "" {
		t.Errorf("off: %d %v", r.status, r.header)
	}
	// Repeated pulls of an unchanged tag: HEAD upstream, bytes from the cache.
	mark := reg.Log.Len()
	for range 3 {
		if r := e.get("/v2/off/app/manifests/1"); r.status != 200 || sha(r.body) != oimg.Digest {
			t.Fatalf("off again: %d", r.status)
		}
	}
	for _, r := range manifestRequests(reg, mark) {
		if r.Method != http.MethodHead {
			t.Errorf("cached off-mode tag fetched again: %+v", r)
		}
	}
	// The tag moves upstream: the new content is served.
	moved := peers.PushImage(t, reg, "off/app", "1")
	if r := e.get("/v2/off/app/manifests/1"); r.status != 200 || sha(r.body) != moved.Digest {
		t.Errorf("moved tag: %d %s", r.status, sha(r.body))
	}
	if r := e.get("/v2/off/app/manifests/nope"); r.status != 404 {
		t.Errorf("off missing tag: %d", r.status)
	}
	if r := e.get("/v2/off/app/blobs/" + oimg.Layers[1].Digest); r.status != 200 || sha(r.body) != oimg.Layers[1].Digest {
		t.Errorf("off blob: %d", r.status)
	}
	if r := e.get("/v2/off/app/blobs/" + sha([]byte("none"))); r.status != 404 {
		t.Errorf("off missing blob: %d %s", r.status, r.body)
	}
}

// deadURL is a loopback URL nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	l := listenLoopback(t)
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}
