package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/trustgate/trustgate/internal/peers"
	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/resolver"
)

// blobsOf returns the config and layer digests of an image manifest.
func blobsOf(t *testing.T, body []byte) []string {
	t.Helper()
	var m v1.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	out := []string{m.Config.Digest.String()}
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
	}
	return out
}

// TestRevokedDigest: once a tag's signature is removed, its manifest and layers are refused by
// digest too, with a 404 that names the digest and the repository.
func TestRevokedDigest(t *testing.T) {
	reg := peers.StartRegistry(t)
	e := newEnv(t, reg, envConfig{})
	img := peers.PushImage(t, reg, "library/alpine", "v2")
	const g = "docker.io/library/alpine"
	e.trust.sign(g, "v2", img, "targets")
	r := e.get("/v2/alpine/manifests/v2")
	if r.status != http.StatusOK {
		t.Fatalf("signed tag: %d %s", r.status, r.body)
	}
	blobs := blobsOf(t, r.body)
	for _, d := range blobs {
		if r := e.get("/v2/alpine/blobs/" + d); r.status != http.StatusOK {
			t.Fatalf("blob %s while signed: %d", d, r.status)
		}
	}

	e.trust.unsign(g, "v2")
	expectError(t, e.get("/v2/alpine/manifests/v2"), http.StatusNotFound, "MANIFEST_UNKNOWN", g+":v2")
	expectError(t, e.get("/v2/alpine/manifests/"+img.Digest), http.StatusNotFound, "MANIFEST_UNKNOWN", img.Digest, g)
	for _, d := range blobs {
		expectError(t, e.get("/v2/alpine/blobs/"+d), http.StatusNotFound, "BLOB_UNKNOWN", d, g)
		if h := e.do(http.MethodHead, "/v2/alpine/blobs/"+d, nil); h.status != http.StatusNotFound {
			t.Errorf("HEAD revoked blob %s: %d", d, h.status)
		}
	}
	// Re-signing makes it servable again.
	e.trust.sign(g, "v3", img, "targets")
	if r := e.get("/v2/alpine/blobs/" + blobs[1]); r.status != http.StatusOK {
		t.Errorf("blob after re-sign: %d %s", r.status, r.body)
	}
}

// TestUnverifiableTrustByDigest: when the tag would get 503 (trust expired, rolled back, server
// down), content by digest is refused with 503 as well, never served.
func TestUnverifiableTrustByDigest(t *testing.T) {
	reg := peers.StartRegistry(t)
	e := newEnv(t, reg, envConfig{})
	img := peers.PushImage(t, reg, "library/alpine", "1")
	const g = "docker.io/library/alpine"
	e.trust.sign(g, "1", img, "targets")
	r := e.get("/v2/alpine/manifests/1")
	if r.status != http.StatusOK {
		t.Fatalf("signed tag: %d", r.status)
	}
	blobs := blobsOf(t, r.body)
	for _, sentinel := range []error{resolver.ErrExpired, resolver.ErrRollback, resolver.ErrUnavailable, resolver.ErrInvalid} {
		e.trust.fail(g, fmt.Errorf("timestamp: %w", sentinel))
		expectError(t, e.get("/v2/alpine/manifests/1"), http.StatusServiceUnavailable, "UNAVAILABLE", g)
		expectError(t, e.get("/v2/alpine/manifests/"+img.Digest), http.StatusServiceUnavailable, "UNAVAILABLE", g, sentinel.Error())
		expectError(t, e.get("/v2/alpine/blobs/"+blobs[1]), http.StatusServiceUnavailable, "UNAVAILABLE", g, sentinel.Error())
		if h := e.do(http.MethodHead, "/v2/alpine/blobs/"+blobs[1], nil); h.status != http.StatusServiceUnavailable {
			t.Errorf("%v: HEAD blob: %d", sentinel, h.status)
		}
	}
	e.trust.fail(g, nil)
	if r := e.get("/v2/alpine/blobs/" + blobs[1]); r.status != http.StatusOK {
		t.Errorf("blob after recovery: %d %s", r.status, r.body)
	}
}

// TestFreshProcessByDigest: a process that never saw the tag serves a signed image by digest
// (manifest first, or a layer first as a resumed pull does), and the children of a signed index.
func TestFreshProcessByDigest(t *testing.T) {
	reg := peers.StartRegistry(t)
	img := peers.PushImage(t, reg, "library/alpine", "1")
	idx := peers.PushIndex(t, reg, "team/app", "v1")
	unsigned := peers.PushImage(t, reg, "library/alpine", "unsigned")

	e := newEnv(t, reg, envConfig{})
	e.trust.sign("docker.io/library/alpine", "1", img, "targets")
	e.trust.sign("docker.io/team/app", "v1", idx, "targets")

	// A layer before anything else.
	r := e.get("/v2/alpine/blobs/" + img.Layers[0].Digest)
	if r.status != http.StatusOK || sha(r.body) != img.Layers[0].Digest {
		t.Errorf("layer of a signed image on a fresh process: %d %s", r.status, r.body)
	}
	// It says which signature it rests on, in headers and log.
	if r.header.Get(HeaderSignedDigest) != img.Digest || r.header.Get(HeaderRole) != "targets" || r.header.Get(HeaderDecision) != "allow" {
		t.Errorf("headers: %v", r.header)
	}
	// The handler logs after the response is out: poll (the bound only guards against a hang).
	var logged bool
	for deadline := time.Now().Add(10 * time.Second); !logged && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, d := range e.decisions() {
			if d["digest"] == img.Layers[0].Digest {
				logged = d["role"] == "targets" && strings.Contains(d["reason"].(string), "reachable from docker.io/library/alpine:1 ("+img.Digest+")")
			}
		}
	}
	if !logged {
		t.Errorf("decision log does not say which signature the layer rests on: %v", e.decisions())
	}
	if r := e.get("/v2/alpine/manifests/" + img.Digest); r.status != http.StatusOK || sha(r.body) != img.Digest {
		t.Errorf("signed manifest by digest: %d %s", r.status, r.body)
	}
	c := idx.Children[1]
	if r := e.do(http.MethodGet, "/v2/team/app/manifests/"+c.Digest, http.Header{"Accept": {"*/*"}}); r.status != http.StatusOK || sha(r.body) != c.Digest {
		t.Errorf("child of a signed index by digest: %d %s", r.status, r.body)
	}
	if r := e.get("/v2/team/app/blobs/" + c.Layers[0].Digest); r.status != http.StatusOK {
		t.Errorf("layer of a child of a signed index: %d %s", r.status, r.body)
	}
	// Unsigned content stays refused.
	expectError(t, e.get("/v2/alpine/manifests/"+unsigned.Digest), http.StatusNotFound, "MANIFEST_UNKNOWN", unsigned.Digest, "docker.io/library/alpine")
	expectError(t, e.get("/v2/alpine/blobs/"+unsigned.Layers[0].Digest), http.StatusNotFound, "BLOB_UNKNOWN", unsigned.Layers[0].Digest)
	// No trust data at all: 404 naming digest and repository.
	e.trust.fail("docker.io/library/nodata", fmt.Errorf("root.json: %w", resolver.ErrNoTrustData))
	expectError(t, e.get("/v2/nodata/blobs/"+img.Layers[0].Digest), http.StatusNotFound, "BLOB_UNKNOWN", img.Layers[0].Digest, "docker.io/library/nodata")
}

// policyFunc is a Policy with a computed answer, for modes policy.New would reject.
type policyFunc func(string) policy.Decision

func (f policyFunc) Decide(name string) policy.Decision { return f(name) }

// TestUnknownModeFailsClosed: a mode this trustgate does not know refuses every endpoint with 503,
// the tag list included.
func TestUnknownModeFailsClosed(t *testing.T) {
	reg := peers.StartRegistry(t)
	img := peers.PushImage(t, reg, "library/alpine", "1")
	e := newEnv(t, reg, envConfig{})
	e.trust.sign("docker.io/library/alpine", "1", img, "targets")
	e.srv.policy = policyFunc(func(string) policy.Decision {
		return policy.Decision{Mode: "audit", Rule: "future", Notary: &policy.NotaryRule{Roles: policy.DefaultRoles()}}
	})
	for _, p := range []string{"/v2/alpine/manifests/1", "/v2/alpine/manifests/" + img.Digest, "/v2/alpine/blobs/" + img.Layers[0].Digest,
		"/v2/alpine/tags/list", "/v2/alpine/referrers/" + img.Digest} {
		expectError(t, e.get(p), http.StatusServiceUnavailable, "UNAVAILABLE", "audit", "docker.io/library/alpine")
	}
}

// TestBlobHeadFromSpool: a HEAD for a verified blob kept on disk is answered without upstream.
func TestBlobHeadFromSpool(t *testing.T) {
	reg := peers.StartRegistry(t)
	e := newEnv(t, reg, envConfig{spoolBytes: 1 << 20})
	img := peers.PushImage(t, reg, "library/alpine", "1")
	e.trust.sign("docker.io/library/alpine", "1", img, "targets")
	l := img.Layers[0]
	if r := e.get("/v2/alpine/manifests/1"); r.status != http.StatusOK {
		t.Fatalf("tag: %d", r.status)
	}
	if r := e.get("/v2/alpine/blobs/" + l.Digest); r.status != http.StatusOK {
		t.Fatalf("GET: %d", r.status)
	}
	mark := reg.Log.Len()
	h := e.do(http.MethodHead, "/v2/alpine/blobs/"+l.Digest, nil)
	if h.status != http.StatusOK || h.header.Get("Content-Length") != fmt.Sprint(l.Size) || h.header.Get("Docker-Content-Digest") != l.Digest {
		t.Fatalf("HEAD: %d %v", h.status, h.header)
	}
	for _, r := range reg.RequestsSince(mark) {
		if strings.Contains(r.Path, "/blobs/") {
			t.Errorf("HEAD of a retained verified blob went upstream: %+v", r)
		}
	}
}

// TestWalkUpstreamTrouble: a signed manifest the upstream can't deliver right now does not stop
// the rest of the repository from being served by digest, and makes an unknown digest a 503
// (trustgate can't tell whether it is signed), not a 404, until the upstream recovers.
func TestWalkUpstreamTrouble(t *testing.T) {
	reg := peers.StartRegistry(t)
	a := peers.PushImage(t, reg, "library/alpine", "a")
	b := peers.PushImage(t, reg, "library/alpine", "b")
	unsigned := peers.PushImage(t, reg, "library/alpine", "u")
	target, _ := url.Parse(reg.URL)
	var failPath atomic.Value
	failPath.Store("/v2/library/alpine/manifests/" + a.Digest)
	rp := httputil.NewSingleHostReverseProxy(target)
	front := newTestHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == failPath.Load().(string) {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	e := newEnv(t, reg, envConfig{upstreamURL: front.URL})
	e.trust.sign("docker.io/library/alpine", "a", a, "targets")
	e.trust.sign("docker.io/library/alpine", "b", b, "targets")

	if r := e.get("/v2/alpine/blobs/" + b.Layers[0].Digest); r.status != http.StatusOK {
		t.Errorf("layer of the deliverable signed image: %d %s", r.status, r.body)
	}
	expectError(t, e.get("/v2/alpine/blobs/"+unsigned.Layers[0].Digest), http.StatusServiceUnavailable, "UNAVAILABLE",
		"cannot tell whether docker.io/library/alpine@"+unsigned.Layers[0].Digest+" is signed", "500")
	failPath.Store("")
	if r := e.get("/v2/alpine/blobs/" + a.Layers[0].Digest); r.status != http.StatusOK {
		t.Errorf("layer after recovery: %d %s", r.status, r.body)
	}
	expectError(t, e.get("/v2/alpine/blobs/"+unsigned.Layers[0].Digest), http.StatusNotFound, "BLOB_UNKNOWN", unsigned.Layers[0].Digest)
}

// TestReachabilityBudget: the digests remembered over all repositories stay within the budget;
// a repository whose set was dropped is derived again when asked for.
func TestReachabilityBudget(t *testing.T) {
	reg := peers.StartRegistry(t)
	e := newEnv(t, reg, envConfig{})
	repos := []string{"team/a", "team/b", "team/c"}
	imgs := map[string]peers.Pushed{}
	for _, r := range repos {
		imgs[r] = peers.PushImage(t, reg, r, "1")
		e.trust.sign("docker.io/"+r, "1", imgs[r], "targets")
	}
	e.srv.reach.budget = 5 // one image is 4 digests: manifest, config, two layers
	for range 2 {
		for _, r := range repos {
			if got := e.get("/v2/" + r + "/blobs/" + imgs[r].Layers[1].Digest); got.status != http.StatusOK {
				t.Fatalf("%s: %d %s", r, got.status, got.body)
			}
			e.srv.reach.mu.Lock()
			total, n := e.srv.reach.total, e.srv.reach.memos.Len()
			e.srv.reach.mu.Unlock()
			if total > 5 || n != 1 {
				t.Errorf("after %s: %d digests in %d sets, budget 5", r, total, n)
			}
		}
	}
}

// TestUnverifiableSignatureByDigest: when one tag's signature does not verify (its digest can't be
// known), a digest no verified signature reaches is 503, not 404: it may be that tag's. What the
// verified signatures reach is still served.
func TestUnverifiableSignatureByDigest(t *testing.T) {
	reg := peers.StartRegistry(t)
	e := newEnv(t, reg, envConfig{})
	good := peers.PushImage(t, reg, "library/alpine", "good")
	bad := peers.PushImage(t, reg, "library/alpine", "bad")
	const g = "docker.io/library/alpine"
	e.trust.sign(g, "good", good, "targets")
	e.trust.sign(g, "bad", bad, "targets")
	e.trust.fail(g+":bad", fmt.Errorf("targets: %w", resolver.ErrInvalid))

	expectError(t, e.get("/v2/alpine/manifests/bad"), http.StatusServiceUnavailable, "UNAVAILABLE", g+":bad")
	expectError(t, e.get("/v2/alpine/blobs/"+bad.Layers[0].Digest), http.StatusServiceUnavailable, "UNAVAILABLE", g, resolver.ErrInvalid.Error())
	if r := e.get("/v2/alpine/blobs/" + good.Layers[0].Digest); r.status != http.StatusOK {
		t.Errorf("layer of the verified tag: %d %s", r.status, r.body)
	}
	e.trust.fail(g+":bad", nil)
	e.trust.unsign(g, "bad")
	expectError(t, e.get("/v2/alpine/blobs/"+bad.Layers[0].Digest), http.StatusNotFound, "BLOB_UNKNOWN", bad.Layers[0].Digest)
}
