package proxy

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
	"github.com/trustgate/trustgate/frozen"
	"github.com/trustgate/trustgate/internal/peers"
	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/resolver"
)

// TestFrozenTrust: a frozen trust file answers for the repositories it holds, in place of Notary,
// with Notary down or answering otherwise: the frozen tag at the frozen digest, everything that
// digest reaches by digest, nothing else; every decision names the file; past the file's expiry
// the repository fails closed. A repository the file does not hold is still Notary's.
func TestFrozenTrust(t *testing.T) {
	reg := peers.StartRegistry(t)
	frozenImg := peers.PushImage(t, reg, "myorg/app", "")
	notaryImg := peers.PushImage(t, reg, "myorg/app", "v1") // what Notary (and the upstream tag) say now
	unsigned := peers.PushImage(t, reg, "myorg/app", "v2")
	other := peers.PushImage(t, reg, "myorg/other", "v1")

	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	f := &frozen.File{Version: frozen.FormatVersion, FrozenAt: t0, Expires: t0.AddDate(0, 6, 0),
		Repositories: []frozen.Repository{{
			GUN: "docker.io/myorg/app", Source: frozen.SourceTrustDir, VerifiedAt: t0.AddDate(0, 0, -30),
			TrustExpires: t0.AddDate(0, 0, -16), Roles: []string{"targets/releases", "targets"},
			Tags: []frozen.Tag{{Tag: "v1", Digest: digest.Digest(frozenImg.Digest), Size: frozenImg.Size, Role: "targets"}},
		}}}
	if _, err := f.Marshal(); err != nil {
		t.Fatal(err)
	}
	rule := policy.FrozenRule{File: "/etc/trustgate/frozen.json", SHA256: strings.Repeat("ab", 32)}
	var mu sync.Mutex
	now := t0.AddDate(0, 1, 0) // long after the Notary metadata expired, before the file does
	e := newEnv(t, reg, envConfig{
		rules: []policy.RuleConfig{{Match: "docker.io/myorg/**", Mode: policy.Enforce,
			Frozen: &policy.FrozenConfig{File: rule.File, SHA256: rule.SHA256}}},
		frozen: map[policy.FrozenRule]*frozen.File{rule: f},
		now:    func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
	})
	e.trust.fail("docker.io/myorg/app", fmt.Errorf("%w: notary retired", resolver.ErrUnavailable))
	e.trust.sign("docker.io/myorg/other", "v1", other, "targets")
	desc := "frozen: /etc/trustgate/frozen.json (frozen at 2026-12-03T10:00:00Z, expires 2027-06-03T10:00:00Z)"

	r := e.get("/v2/myorg/app/manifests/v1")
	if r.status != http.StatusOK || r.header.Get("Docker-Content-Digest") != frozenImg.Digest {
		t.Fatalf("v1 = %d %s, want 200 at the frozen digest %s (not Notary's %s)", r.status, r.header.Get("Docker-Content-Digest"), frozenImg.Digest, notaryImg.Digest)
	}
	if got := r.header.Get(HeaderVerifier); got != "frozen" {
		t.Errorf("%s = %q, want frozen", HeaderVerifier, got)
	}
	if got := r.header.Get(HeaderExpires); got != "2027-06-03T10:00:00Z" {
		t.Errorf("%s = %q", HeaderExpires, got)
	}
	if got := r.header.Get(HeaderRole); got != "targets" {
		t.Errorf("%s = %q", HeaderRole, got)
	}
	if r := e.get("/v2/myorg/app/blobs/" + frozenImg.Layers[0].Digest); r.status != http.StatusOK {
		t.Errorf("layer of the frozen image = %d, want 200", r.status)
	}
	expectError(t, e.get("/v2/myorg/app/manifests/v2"), http.StatusNotFound, errcode.ErrorCodeManifestUnknown.String(), "myorg/app:v2")
	expectError(t, e.get("/v2/myorg/app/manifests/"+notaryImg.Digest), http.StatusNotFound, errcode.ErrorCodeManifestUnknown.String())
	expectError(t, e.get("/v2/myorg/app/blobs/"+unsigned.Layers[0].Digest), http.StatusNotFound, errcode.ErrorCodeBlobUnknown.String())
	if r := e.get("/v2/myorg/app/tags/list"); r.status != http.StatusOK || !strings.Contains(string(r.body), `"tags":["v1"]`) {
		t.Errorf("tags/list = %d %s, want only v1", r.status, r.body)
	}
	// A repository the file does not hold is Notary's.
	if r := e.get("/v2/myorg/other/manifests/v1"); r.status != http.StatusOK || r.header.Get(HeaderVerifier) != "notary" {
		t.Errorf("myorg/other:v1 = %d, verifier %q; want 200 from notary", r.status, r.header.Get(HeaderVerifier))
	}

	reasons := map[string]string{}
	for _, d := range e.decisions() {
		if d["repo"] == "docker.io/myorg/app" {
			key := fmt.Sprint(d["tag"], d["digest"])
			if d["tag"] != "" {
				key = fmt.Sprint(d["tag"])
			}
			reasons[key] = fmt.Sprint(d["decision"], ": ", d["reason"])
		}
	}
	for key, want := range map[string]string{
		"v1": "allow: signed; " + desc,
		"v2": "refuse: tag is not signed: docker.io/myorg/app:v2 is not in the frozen trust; " + desc,
	} {
		if reasons[key] != want {
			t.Errorf("decision for %s = %q, want %q", key, reasons[key], want)
		}
	}
	for key, got := range reasons {
		if !strings.Contains(got, desc) {
			t.Errorf("decision for %s does not name the frozen file: %q", key, got)
		}
	}

	// Past the operator's expiry: 503, not Notary, not 404.
	mu.Lock()
	now = f.Expires
	mu.Unlock()
	for _, path := range []string{"/v2/myorg/app/manifests/v1", "/v2/myorg/app/blobs/" + frozenImg.Layers[0].Digest} {
		r := e.get(path)
		expectError(t, r, http.StatusServiceUnavailable, errcode.ErrorCodeUnavailable.String(), "frozen trust expired")
		if r.header.Get(HeaderVerifier) != "frozen" {
			t.Errorf("%s: %s = %q, want frozen", path, HeaderVerifier, r.header.Get(HeaderVerifier))
		}
	}
	last := e.decisions()[len(e.decisions())-1]
	if !strings.Contains(fmt.Sprint(last["reason"]), "frozen trust expired: "+desc) {
		t.Errorf("expired decision reason = %q", last["reason"])
	}
}

// TestFrozenNotLoaded: a rule naming frozen trust the server was not given fails closed.
func TestFrozenNotLoaded(t *testing.T) {
	reg := peers.StartRegistry(t)
	img := peers.PushImage(t, reg, "myorg/app", "v1")
	e := newEnv(t, reg, envConfig{rules: []policy.RuleConfig{{Match: "docker.io/myorg/**", Mode: policy.Enforce,
		Frozen: &policy.FrozenConfig{File: "/x.json", SHA256: strings.Repeat("ab", 32)}}}})
	e.trust.sign("docker.io/myorg/app", "v1", img, "targets")
	expectError(t, e.get("/v2/myorg/app/manifests/v1"), http.StatusServiceUnavailable, errcode.ErrorCodeUnavailable.String())
}

// TestFrozenSignaturesRoles: a rule's notary.roles filter the frozen bindings as they filter
// Notary's; without them, every frozen role counts. Tags, All and Signed agree with Tag.
func TestFrozenSignaturesRoles(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	d1, d2 := digest.FromString("one"), digest.FromString("two")
	f := &frozen.File{Version: frozen.FormatVersion, FrozenAt: t0, Expires: t0.AddDate(1, 0, 0),
		Repositories: []frozen.Repository{{GUN: "docker.io/myorg/app", Source: frozen.SourceNotary, VerifiedAt: t0,
			Roles: []string{"targets/releases", "targets"},
			Tags: []frozen.Tag{
				{Tag: "a", Digest: d1, Size: 1, Role: "targets"},
				{Tag: "b", Digest: d2, Size: 2, Role: "targets/releases"},
				{Tag: "c", Digest: d2, Size: 2, Role: "targets"},
			}}}}
	v := newFrozenVerifier("f.json", f, func() time.Time { return t0 })
	for _, tc := range []struct {
		roles  []string
		tags   string
		signed map[digest.Digest]bool
	}{
		{nil, "a b c", map[digest.Digest]bool{d1: true, d2: true}},
		{[]string{"targets/releases"}, "b", map[digest.Digest]bool{d1: false, d2: true}},
		{[]string{"targets"}, "a c", map[digest.Digest]bool{d1: true, d2: true}},
	} {
		dec := policy.Decision{Mode: policy.Enforce}
		if tc.roles != nil {
			dec.Notary = &policy.NotaryRule{Roles: tc.roles}
		}
		sigs, err := v.Signatures(context.Background(), "docker.io/myorg/app", dec)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(sigs.Tags(), " "); got != tc.tags {
			t.Errorf("roles %v: tags %q, want %q", tc.roles, got, tc.tags)
		}
		all, err := sigs.All()
		if err != nil || len(all) != len(sigs.Tags()) {
			t.Errorf("roles %v: All = %d, %v", tc.roles, len(all), err)
		}
		for _, tag := range []string{"a", "b", "c"} {
			_, err := sigs.Tag(tag)
			want := strings.Contains(" "+tc.tags+" ", " "+tag+" ")
			if (err == nil) != want || (err != nil && !resolver.IsNotSigned(err)) {
				t.Errorf("roles %v: Tag(%s) = %v, want signed=%v", tc.roles, tag, err, want)
			}
		}
		for d, want := range tc.signed {
			if _, ok := sigs.Signed(d); ok != want {
				t.Errorf("roles %v: Signed(%s) = %v, want %v", tc.roles, d, ok, want)
			}
		}
	}
	if _, err := v.Signatures(context.Background(), "docker.io/myorg/none", policy.Decision{}); !resolver.IsNotSigned(err) {
		t.Errorf("a repository the file does not hold: %v", err)
	}
}
