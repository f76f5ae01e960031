package e2e

import (
	"bytes"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

// TestCrane is issue #3 "How it is shown" with crane as the client.
func TestCrane(t *testing.T) {
	w := newWorld(t)
	const repo = "library/alpine"
	signed := w.pushSigned(t, repo, "signed")
	unsigned := w.push(t, repo, "unsigned")
	multi := peers.PushIndex(t, w.reg, "library/multi", "v1")
	w.sign(t, "library/multi", "v1", multi)
	unrelated := peers.PushImage(t, w.reg, "library/multi", "") // by digest only, never signed
	team := w.push(t, "team/app", "unsigned")

	g := w.gate(t, peers.GateConfig{
		TrustTTL: 2 * time.Second,
		Rules:    []peers.GateRule{{Match: "docker.io/team/**", Mode: "warn"}},
	})
	ref := func(s string) string { return g.Host + "/" + s }

	t.Run("signed tag resolves to the signed digest", func(t *testing.T) {
		r := peers.Crane(t, "digest", ref("library/alpine:signed"))
		if r.Err != nil || strings.TrimSpace(r.Stdout) != signed.Digest {
			t.Errorf("crane digest = %q, %v; want %s", r.Stdout, r.Err, signed.Digest)
		}
		out := filepath.Join(t.TempDir(), "img.tar")
		if r := peers.Crane(t, "pull", ref("library/alpine:signed"), out); r.Err != nil {
			t.Errorf("crane pull: %v", r.Err)
		}
		ds := findDecision(g, gun(repo), "signed")
		if len(ds) == 0 || ds[len(ds)-1].Decision != "allow" || ds[len(ds)-1].Digest != signed.Digest {
			t.Errorf("decision log for alpine:signed:\n%s", decisionsString(ds))
		}
	})

	t.Run("unsigned tag is refused with 404 naming repo and tag", func(t *testing.T) {
		if r := peers.Crane(t, "digest", ref("library/alpine:unsigned")); r.Err == nil {
			t.Errorf("crane digest of an unsigned tag succeeded: %s", r.Stdout)
		}
		got := getManifest(t, g, repo, "unsigned")
		if got.code != http.StatusNotFound || !bytes.Contains(got.body, []byte("MANIFEST_UNKNOWN")) ||
			!bytes.Contains(got.body, []byte("unsigned")) || !bytes.Contains(got.body, []byte("library/alpine")) {
			t.Errorf("GET alpine:unsigned = %d %s", got.code, got.body)
		}
		if got.digest() == unsigned.Digest {
			t.Error("unsigned manifest bytes were served")
		}
		ds := findDecision(g, gun(repo), "unsigned")
		if len(ds) == 0 || ds[len(ds)-1].Decision != "refuse" {
			t.Errorf("decision log for alpine:unsigned:\n%s", decisionsString(ds))
		}
	})

	t.Run("tag moved upstream after signing still serves the signed content", func(t *testing.T) {
		moved := w.push(t, repo, "signed") // upstream tag now points elsewhere; trust data unchanged
		r := peers.Crane(t, "digest", ref("library/alpine:signed"))
		if r.Err != nil || strings.TrimSpace(r.Stdout) != signed.Digest {
			t.Errorf("crane digest after upstream move = %q, %v; want %s (upstream has %s)",
				r.Stdout, r.Err, signed.Digest, moved.Digest)
		}
		got := getManifest(t, g, repo, "signed")
		if got.code != 200 || got.digest() != signed.Digest {
			t.Errorf("GET alpine:signed = %d, body hashes to %s; want %s", got.code, got.digest(), signed.Digest)
		}
		r = peers.Crane(t, "config", ref("library/alpine:signed"))
		if r.Err != nil {
			t.Errorf("crane config: %v", r.Err)
		}
	})

	t.Run("multi-arch index: children by digest, unrelated digest refused", func(t *testing.T) {
		r := peers.Crane(t, "digest", ref("library/multi:v1"))
		if r.Err != nil || strings.TrimSpace(r.Stdout) != multi.Digest {
			t.Fatalf("crane digest multi:v1 = %q, %v; want %s", r.Stdout, r.Err, multi.Digest)
		}
		for _, c := range multi.Children {
			got := getManifest(t, g, "library/multi", c.Digest)
			if got.code != 200 || got.digest() != c.Digest {
				t.Errorf("GET child %s: %d %s", c.Digest, got.code, got.body)
			}
			if r := peers.Crane(t, "blob", ref("library/multi@"+c.Layers[0].Digest)); r.Err != nil {
				t.Errorf("crane blob of child layer: %v", r.Err)
			}
		}
		for _, p := range []string{"linux/amd64", "linux/arm64"} {
			if r := peers.Crane(t, "manifest", "--platform", p, ref("library/multi:v1")); r.Err != nil {
				t.Errorf("crane manifest --platform %s: %v", p, r.Err)
			}
		}
		got := getManifest(t, g, "library/multi", unrelated.Digest)
		if got.code != http.StatusNotFound {
			t.Errorf("GET unrelated digest %s = %d %s; want 404", unrelated.Digest, got.code, got.body)
		}
		if r := peers.Crane(t, "manifest", unrelated.Ref(g.Host)); r.Err == nil {
			t.Error("crane manifest of an unsigned digest succeeded")
		}
	})

	t.Run("enforced repositories are never fetched by tag upstream", func(t *testing.T) {
		// trustgate rewrites tag → signed digest; upstream's tag is never consulted. The test's own
		// pushes (go-containerregistry checks for an existing manifest by tag) are the only by-tag
		// requests the registry may have seen.
		proxied := 0
		for _, e := range w.reg.Requests() {
			if e.Method != http.MethodGet && e.Method != http.MethodHead || strings.Contains(e.UserAgent, "go-containerregistry") {
				continue
			}
			proxied++
			for _, p := range []string{"/v2/library/alpine/manifests/", "/v2/library/multi/manifests/"} {
				if ref, ok := strings.CutPrefix(e.Path, p); ok && !strings.HasPrefix(ref, "sha256:") {
					t.Errorf("upstream saw %s %s", e.Method, e.Path)
				}
			}
		}
		if proxied == 0 {
			t.Error("the registry's access log shows no request from trustgate at all")
		}
	})

	t.Run("warn mode serves unsigned and logs warn", func(t *testing.T) {
		r := peers.Crane(t, "digest", ref("team/app:unsigned"))
		if r.Err != nil || strings.TrimSpace(r.Stdout) != team.Digest {
			t.Errorf("crane digest team/app:unsigned = %q, %v; want %s", r.Stdout, r.Err, team.Digest)
		}
		ds := findDecision(g, gun("team/app"), "unsigned")
		if len(ds) == 0 || ds[len(ds)-1].Decision != "warn" {
			t.Errorf("decision log for team/app:unsigned:\n%s", decisionsString(ds))
		}
	})
}

// TestNotaryDown: with the trust server unreachable, a tag whose trust data trustgate has not
// verified yet is a 503 — never a 404, never an unverified manifest.
func TestNotaryDown(t *testing.T) {
	w := newWorld(t)
	cached := w.pushSigned(t, "library/cached", "v1")
	fresh := w.pushSigned(t, "library/fresh", "v1")
	g := w.gate(t, peers.GateConfig{TrustTTL: time.Second})
	if got := getManifest(t, g, "library/cached", "v1"); got.code != 200 || got.digest() != cached.Digest {
		t.Fatalf("GET cached:v1 with notary up: %d %s", got.code, got.body)
	}
	if err := w.notary.Stop(); err != nil {
		t.Fatal(err)
	}

	for _, method := range []string{http.MethodGet, http.MethodHead} {
		got := get(t, method, g.URL+"/v2/library/fresh/manifests/v1", manifestAccept...)
		if got.code != http.StatusServiceUnavailable {
			t.Errorf("%s fresh:v1 with notary down = %d %s; want 503", method, got.code, got.body)
		}
		if bytes.Contains(got.body, []byte("schemaVersion")) || got.digest() == fresh.Digest {
			t.Errorf("%s fresh:v1 with notary down returned a manifest body: %s", method, got.body)
		}
	}
	// crane retries 503s with backoff (~8 s) before giving up: the client-visible outcome.
	if r := peers.Crane(t, "digest", g.Host+"/library/fresh:v1"); r.Err == nil {
		t.Error("crane digest with notary down succeeded")
	}
	ds := findDecision(g, gun("library/fresh"), "v1")
	if len(ds) == 0 || ds[len(ds)-1].Decision != "error" {
		t.Errorf("decision log for fresh:v1:\n%s", decisionsString(ds))
	}

	// Already-verified trust data whose timestamp is still valid keeps serving once trust_ttl has
	// passed, as the notary client does offline.
	time.Sleep(1500 * time.Millisecond)
	if got := getManifest(t, g, "library/cached", "v1"); got.code != 200 || got.digest() != cached.Digest {
		t.Errorf("GET cached:v1 past trust_ttl with notary down = %d %s; want 200 from verified state",
			got.code, got.body)
	}
}

// TestUpstreamDown: a signed tag whose manifest trustgate has not fetched yet cannot be served
// while the registry is down — 503, not 404 (the tag is signed; only the content is unavailable).
func TestUpstreamDown(t *testing.T) {
	w := newWorld(t)
	w.pushSigned(t, "library/alpine", "signed")
	g := w.gate(t, peers.GateConfig{})
	if err := w.reg.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		got := get(t, method, g.URL+"/v2/library/alpine/manifests/signed", manifestAccept...)
		if got.code != http.StatusServiceUnavailable && got.code != http.StatusBadGateway {
			t.Errorf("%s alpine:signed with the registry down = %d %s; want 503 (or 502)", method, got.code, got.body)
		}
	}
}
