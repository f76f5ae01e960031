package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/opencontainers/go-digest"
	"github.com/trustgate/trustgate/internal/peers"
	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/resolver"
)

// recordingEdges is an in-memory EdgeStore that remembers which digests were recorded.
type recordingEdges struct {
	mu  sync.Mutex
	rec map[digest.Digest]Edges
}

func (s *recordingEdges) Edges(_ context.Context, d digest.Digest) (Edges, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.rec[d]
	return e, ok, nil
}

func (s *recordingEdges) Record(_ context.Context, d digest.Digest, e Edges) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec == nil {
		s.rec = map[digest.Digest]Edges{}
	}
	s.rec[d] = e
	return nil
}

func (s *recordingEdges) has(d string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.rec[digest.Digest(d)]
	return ok
}

// TestUnverifiedManifestsLeaveNoEdges: manifests served unverified (off mode, warn mode's
// unsigned tags and digests) add nothing to the edge store. Their edges are only needed once a
// signature reaches them, and the walk fetches them then; recording them would let anyone who can
// push to an off-mode repository fill the bounded store (and the memory in front of it) with
// junk, so the edges of signed images would no longer persist.
func TestUnverifiedManifestsLeaveNoEdges(t *testing.T) {
	reg := peers.StartRegistry(t)
	store := &recordingEdges{}
	e := newEnv(t, reg, envConfig{edges: store, rules: []policy.RuleConfig{
		{Match: "docker.io/off/**", Mode: policy.Off},
		{Match: "docker.io/warn/**", Mode: policy.Warn},
	}})
	off := peers.PushImage(t, reg, "off/junk", "1")
	warn := peers.PushImage(t, reg, "warn/junk", "1")
	warnByDigest := peers.PushImage(t, reg, "warn/junk", "2")
	signed := peers.PushImage(t, reg, "warn/junk", "signed")
	e.trust.sign("docker.io/warn/junk", "signed", signed, "targets")

	for _, p := range []string{
		"/v2/off/junk/manifests/1", "/v2/off/junk/manifests/" + off.Digest,
		"/v2/warn/junk/manifests/1", "/v2/warn/junk/manifests/" + warnByDigest.Digest,
		"/v2/warn/junk/manifests/signed",
	} {
		if r := e.get(p); r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", p, r.status, r.body)
		}
	}
	for name, d := range map[string]string{"off mode": off.Digest, "warn mode by tag": warn.Digest, "warn mode by digest": warnByDigest.Digest} {
		if store.has(d) || e.srv.graph["docker.io"].mem.Contains(digest.Digest(d)) {
			t.Errorf("%s: edges of an unverified manifest were recorded", name)
		}
	}
	if !store.has(signed.Digest) {
		t.Errorf("edges of the signed manifest were not recorded")
	}
}

// TestWalkStopsAtMaxReachable: once a repository's set passes maxReachable, further requests do
// not walk (and remember) more of its graph: the set is bounded, not grown by one manifest's
// children per request.
func TestWalkStopsAtMaxReachable(t *testing.T) {
	reg := peers.StartRegistry(t)
	store := &recordingEdges{}
	fake := func(s string) digest.Digest { return digest.FromString(s) }
	const perManifest = maxReachable / 2
	root := fake("root")
	var children []digest.Digest
	for i := range 4 {
		c := fake("child" + strconv.Itoa(i))
		children = append(children, c)
		var e Edges
		for j := range perManifest {
			e.Blobs = append(e.Blobs, fake(c.String()+strconv.Itoa(j)))
			e.Sizes = append(e.Sizes, 1)
		}
		_ = store.Record(context.Background(), c, e)
	}
	_ = store.Record(context.Background(), root, Edges{Manifests: children})
	e := newEnv(t, reg, envConfig{edges: store})
	e.trust.sign("docker.io/library/alpine", "1", peers.Pushed{Digest: root.String(), Size: 100}, "targets")

	seen := func() int {
		e.srv.reach.mu.Lock()
		m, ok := e.srv.reach.memos.Peek("docker.io\x00library/alpine")
		e.srv.reach.mu.Unlock()
		if !ok {
			t.Fatal("no reachability memo")
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.seen)
	}
	expectError(t, e.get("/v2/alpine/blobs/"+fake("elsewhere").String()), http.StatusServiceUnavailable, "UNAVAILABLE", "more than")
	first := seen()
	if first <= maxReachable {
		t.Fatalf("set of %d digests after the first walk, want over %d", first, maxReachable)
	}
	for range 3 {
		expectError(t, e.get("/v2/alpine/blobs/"+fake("elsewhere").String()), http.StatusServiceUnavailable, "UNAVAILABLE", "more than")
	}
	if n := seen(); n != first {
		t.Errorf("set grew from %d to %d digests after it passed %d", first, n, maxReachable)
	}
	// What was reached is still served as reachable.
	if r := e.get("/v2/alpine/manifests/" + children[0].String()); r.header.Get(HeaderDecision) == decisionRefuse {
		t.Errorf("reached child refused: %d %s", r.status, r.body)
	}
}

// stickyTrust returns one trust state for as long as a cache would (within trust_ttl and before
// the state's own expiry), however its delegations' expiries pass meanwhile.
type stickyTrust struct{ st TrustState }

func (s stickyTrust) State(context.Context, string) (TrustState, error) { return s.st, nil }

// TestExpiredDelegationByDigest: a delegation may expire before the state that holds it does (a
// state's expiry is that of root, timestamp, snapshot and targets). Once it has, its tag is 503,
// and so is its content by digest: the signatures remembered for an unchanged state do not keep
// an expired signature as a root.
func TestExpiredDelegationByDigest(t *testing.T) {
	reg := peers.StartRegistry(t)
	img := peers.PushImage(t, reg, "team/app", "1")
	other := peers.PushImage(t, reg, "team/app", "2")
	u, err := url.Parse(reg.URL)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	const g = "sticky.io/team/app"
	st := &fakeState{gun: g, errs: map[string]error{}, targets: map[string]resolver.Target{
		"1": {GUN: g, Tag: "1", Digest: digest.Digest(img.Digest), Size: img.Size, Role: "targets/releases", Expires: now.Add(time.Hour)},
		"2": {GUN: g, Tag: "2", Digest: digest.Digest(other.Digest), Size: other.Size, Role: "targets", Expires: now.Add(48 * time.Hour)},
	}}
	e := newEnv(t, reg, envConfig{now: clock, extra: []*Upstream{{Name: "sticky.io", URL: u, Trust: stickyTrust{st}}}})
	layer := "/v2/sticky.io/team/app/blobs/" + img.Layers[0].Digest
	if r := e.get(layer); r.status != http.StatusOK {
		t.Fatalf("layer while the delegation is valid: %d %s", r.status, r.body)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	expectError(t, e.get("/v2/sticky.io/team/app/manifests/1"), http.StatusServiceUnavailable, "UNAVAILABLE", resolver.ErrExpired.Error())
	expectError(t, e.get(layer), http.StatusServiceUnavailable, "UNAVAILABLE", resolver.ErrExpired.Error())
	expectError(t, e.get("/v2/sticky.io/team/app/manifests/"+img.Digest), http.StatusServiceUnavailable, "UNAVAILABLE")
	if r := e.get("/v2/sticky.io/team/app/blobs/" + other.Layers[0].Digest); r.status != http.StatusOK {
		t.Errorf("layer of the tag still valid: %d %s", r.status, r.body)
	}
}

// TestSlowWalkDoesNotBlockReached: a walk waiting on a slow upstream manifest (an attacker's
// upstream, or one under load) does not hold up requests for digests already known to be
// reachable in the same repository, nor a request whose client gives up waiting.
func TestSlowWalkDoesNotBlockReached(t *testing.T) {
	reg := peers.StartRegistry(t)
	a := peers.PushImage(t, reg, "library/alpine", "a")
	b := peers.PushImage(t, reg, "library/alpine", "b")
	unsigned := peers.PushImage(t, reg, "library/alpine", "u")
	target, _ := url.Parse(reg.URL)
	slow := "/v2/library/alpine/manifests/" + b.Digest
	var mode atomic.Int32 // 0: fail b's manifest, 1: hold it until release
	release := make(chan struct{})
	held := make(chan struct{}, 16)
	rp := httputil.NewSingleHostReverseProxy(target)
	front := newTestHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == slow {
			if mode.Load() == 0 {
				http.Error(w, "down", http.StatusInternalServerError)
				return
			}
			held <- struct{}{}
			<-release
		}
		rp.ServeHTTP(w, r)
	}))
	e := newEnv(t, reg, envConfig{upstreamURL: front.URL})
	t.Cleanup(func() { close(release) }) // before e's cleanup, which waits for the held request
	e.trust.sign("docker.io/library/alpine", "a", a, "targets")
	e.trust.sign("docker.io/library/alpine", "b", b, "targets")
	if r := e.get("/v2/alpine/blobs/" + a.Layers[0].Digest); r.status != http.StatusOK {
		t.Fatalf("layer of a: %d %s", r.status, r.body)
	}

	mode.Store(1)
	go func() { _ = e.get("/v2/alpine/blobs/" + unsigned.Layers[0].Digest) }() // walks into b
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the walk did not ask for b's manifest")
	}
	get := func(path string) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.http.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, err
	}
	for _, p := range []string{"manifests/" + a.Digest, "blobs/" + a.Layers[0].Digest, "blobs/" + a.Layers[1].Digest} {
		if status, err := get("/v2/alpine/" + p); err != nil || status != http.StatusOK {
			t.Errorf("%s, reached before the slow walk: status %d, %v", p, status, err)
		}
	}
	// A request that needs the walk waits for it no longer than its client does: its decision
	// is logged when the client gives up, not when the walk ends.
	if _, err := get("/v2/alpine/blobs/" + unsigned.Layers[1].Digest); err == nil {
		t.Errorf("unknown digest answered while the walk was held")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(e.logText(), "waiting for another request deriving what is signed") {
		if time.Now().After(deadline) {
			t.Fatalf("the waiting request was not given up with its client")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCrossRepositoryConfusion: the same image in two repositories of one upstream, signed in
// one, is refused by digest in the other, though its edges are known and its blobs spooled; and
// a second upstream whose GUNs coincide with the first's (same GUN prefix) gets nothing from the
// first's signatures or derivations.
func TestCrossRepositoryConfusion(t *testing.T) {
	reg := peers.StartRegistry(t)
	img := peers.PushImage(t, reg, "team/a", "1")
	host := strings.TrimPrefix(reg.URL, "http://")
	if err := crane.Copy(host+"/team/a@"+img.Digest, host+"/team/b:1", crane.Insecure); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(reg.URL)
	mirrorTrust := newFakeTrust()
	e := newEnv(t, reg, envConfig{spoolBytes: 1 << 30, extra: []*Upstream{{Name: "mirror.io", URL: u, GUNPrefix: "docker.io", Trust: mirrorTrust}}})
	e.trust.sign("docker.io/team/a", "1", img, "targets")
	mirrorTrust.sign("docker.io/team/other", "1", peers.PushImage(t, reg, "team/other", "1"), "targets")

	paths := []string{"manifests/" + img.Digest}
	for _, l := range img.Layers {
		paths = append(paths, "blobs/"+l.Digest)
	}
	for _, p := range paths {
		if r := e.get("/v2/team/a/" + p); r.status != http.StatusOK {
			t.Fatalf("signed repository, %s: %d %s", p, r.status, r.body)
		}
	}
	for _, prefix := range []string{"/v2/team/b/", "/v2/docker.io/team/b/", "/v2/mirror.io/team/a/", "/v2/team/a/"} {
		for _, p := range paths {
			path := prefix + p
			if prefix == "/v2/team/a/" {
				path += "?ns=mirror.io"
			}
			for _, m := range []string{http.MethodGet, http.MethodHead} {
				r := e.do(m, path, nil)
				if r.status != http.StatusNotFound || r.header.Get(HeaderDecision) != decisionRefuse {
					t.Errorf("%s %s: %d %s, want 404 refused", m, path, r.status, r.body)
				}
			}
		}
	}
}

// TestSignedManifestBackUpstream: a signed manifest the upstream answered 404 for (replication
// lag, an upstream that flaps or lies once) reaches nothing only for a while: once it is back,
// its layers are served by digest again without the trust state having to change.
func TestSignedManifestBackUpstream(t *testing.T) {
	reg := peers.StartRegistry(t)
	a := peers.PushImage(t, reg, "library/alpine", "a")
	target, _ := url.Parse(reg.URL)
	var gone atomic.Bool
	gone.Store(true)
	rp := httputil.NewSingleHostReverseProxy(target)
	front := newTestHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gone.Load() && strings.HasSuffix(r.URL.Path, "/manifests/"+a.Digest) {
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnv(t, reg, envConfig{upstreamURL: front.URL, now: clock})
	e.trust.sign("docker.io/library/alpine", "a", a, "targets")
	layer := "/v2/alpine/blobs/" + a.Layers[0].Digest
	expectError(t, e.get(layer), http.StatusNotFound, "BLOB_UNKNOWN")

	gone.Store(false)
	if r := e.get("/v2/alpine/manifests/a"); r.status != http.StatusOK {
		t.Fatalf("tag once the manifest is back: %d %s", r.status, r.body)
	}
	mu.Lock()
	now = now.Add(missingRetry)
	mu.Unlock()
	if r := e.get(layer); r.status != http.StatusOK {
		t.Errorf("layer once the manifest is back: %d %s", r.status, r.body)
	}
}

// TestManifestCacheBytesBounded: the manifest cache is bounded in bytes, not only in entries, so
// pulling large manifests from an off-mode repository cannot make it hold entries × 4 MiB.
func TestManifestCacheBytesBounded(t *testing.T) {
	reg := peers.StartRegistry(t)
	e := newEnv(t, reg, envConfig{rules: []policy.RuleConfig{{Match: "docker.io/off/**", Mode: policy.Off}}})
	var imgs []peers.Pushed
	for i := range 4 {
		imgs = append(imgs, peers.PushImage(t, reg, "off/junk", strconv.Itoa(i)))
	}
	c := e.srv.manifests
	c.maxBytes = 2*imgs[0].Size + imgs[0].Size/2
	for _, img := range imgs {
		if r := e.get("/v2/off/junk/manifests/" + img.Digest); r.status != http.StatusOK || sha(r.body) != img.Digest {
			t.Fatalf("%s: %d", img.Digest, r.status)
		}
		if n := c.bytes.Load(); n > c.maxBytes || n <= 0 {
			t.Errorf("cache holds %d bytes, bound %d", n, c.maxBytes)
		}
	}
	if n := c.lru.Len(); n != 2 {
		t.Errorf("cache holds %d manifests, want the 2 that fit", n)
	}
	var sum int64
	for _, k := range c.lru.Keys() {
		m, _ := c.lru.Peek(k)
		sum += int64(len(m.body))
	}
	if sum != c.bytes.Load() {
		t.Errorf("accounted %d bytes, cache holds %d", c.bytes.Load(), sum)
	}
}

// valueSignatures is a Signatures that is a struct value holding a slice: not comparable with ==.
type valueSignatures struct{ sigs []Signature }

func (v valueSignatures) Tag(tag string) (Signature, error) {
	for _, s := range v.sigs {
		if s.Tag == tag {
			return s, nil
		}
	}
	return Signature{}, resolver.ErrTagNotSigned
}
func (v valueSignatures) Tags() []string            { return nil }
func (v valueSignatures) All() ([]Signature, error) { return v.sigs, nil }
func (v valueSignatures) Signed(d digest.Digest) (Signature, bool) {
	for _, s := range v.sigs {
		if s.Digest == d {
			return s, true
		}
	}
	return Signature{}, false
}

type valueVerifier struct{ sigs valueSignatures }

func (v valueVerifier) Signatures(context.Context, string, policy.Decision) (Signatures, error) {
	return v.sigs, nil
}

// TestUncomparableSignatures: a Verifier may return Signatures that are not comparable values;
// reachability then compares what they sign instead of panicking on ==.
func TestUncomparableSignatures(t *testing.T) {
	reg := peers.StartRegistry(t)
	img := peers.PushImage(t, reg, "library/alpine", "1")
	e := newEnv(t, reg, envConfig{})
	e.srv.notary["docker.io"] = valueVerifier{valueSignatures{[]Signature{{Tag: "1", Digest: digest.Digest(img.Digest), Size: img.Size, Signer: "targets"}}}}
	for range 2 {
		if r := e.get("/v2/alpine/blobs/" + img.Layers[0].Digest); r.status != http.StatusOK {
			t.Fatalf("layer: %d %s", r.status, r.body)
		}
	}
}
