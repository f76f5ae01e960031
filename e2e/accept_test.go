package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/peers"
)

// TestAcceptLikeDistribution is issue #8's content negotiation: for narrow Accept headers,
// trustgate answers every signed manifest with the status the real registry (distribution v3.1.2)
// gives for the same request, and what it serves is always the signed bytes, never converted.
func TestAcceptLikeDistribution(t *testing.T) {
	w := newWorld(t)
	const repo = "library/alpine"
	manifests := []struct {
		tag string
		p   peers.Pushed
	}{
		{"schema2", peers.PushImage(t, w.reg, repo, "schema2")},
		{"oci", peers.PushOCIImage(t, w.reg, repo, "oci")},
		{"index", peers.PushIndex(t, w.reg, repo, "index")},
		{"list", peers.PushDockerList(t, w.reg, repo, "list")},
	}
	for _, m := range manifests {
		w.sign(t, repo, m.tag, m.p)
	}
	g := w.gate(t, peers.GateConfig{})

	const (
		ociManifest = "application/vnd.oci.image.manifest.v1+json"
		ociIndex    = "application/vnd.oci.image.index.v1+json"
		schema2     = "application/vnd.docker.distribution.manifest.v2+json"
		list        = "application/vnd.docker.distribution.manifest.list.v2+json"
	)
	accepts := []struct {
		name   string
		accept []string
	}{
		{"only OCI", []string{ociManifest + ", " + ociIndex}},
		{"only OCI manifest", []string{ociManifest}},
		{"only application/json", []string{"application/json"}},
		{"only schema2", []string{schema2}},
		{"only index", []string{ociIndex}},
		{"only list", []string{list}},
		{"none", nil},
		{"*/*", []string{"*/*"}},
		{"docker", manifestAccept},
	}
	// Prime reachability with a full Accept, so by-digest requests below are decided by Accept alone.
	for _, m := range manifests {
		if r := getManifest(t, g, repo, m.tag); r.code != http.StatusOK || r.digest() != m.p.Digest {
			t.Fatalf("%s with docker's Accept: %d %s", m.tag, r.code, r.body)
		}
	}
	refused := 0
	for _, a := range accepts {
		for _, m := range manifests {
			for _, ref := range []string{m.tag, m.p.Digest} {
				for _, method := range []string{http.MethodGet, http.MethodHead} {
					path := "/v2/" + repo + "/manifests/" + ref
					want := get(t, method, w.reg.URL+path, a.accept...)
					got := get(t, method, g.URL+path, a.accept...)
					what := method + " " + m.tag + "@" + ref + " Accept " + a.name
					if got.code == http.StatusOK && method == http.MethodGet && got.digest() != m.p.Digest {
						t.Errorf("%s: trustgate served bytes hashing to %s, not the signed %s", what, got.digest(), m.p.Digest)
					}
					if m.tag == "list" && ref == m.tag && want.code == http.StatusOK && want.header.Get("Docker-Content-Digest") != m.p.Digest {
						// distribution rewrites a list, by tag, to its linux/amd64 image for a client
						// not listing the list type; trustgate never converts and serves the list.
						if got.code != http.StatusOK || got.header.Get("Docker-Content-Digest") != m.p.Digest {
							t.Errorf("%s: trustgate %d %s, want the signed list", what, got.code, got.header.Get("Docker-Content-Digest"))
						}
						continue
					}
					if m.tag == "list" && ref == m.tag && want.code != http.StatusOK {
						// distribution wanted to rewrite the list and could not (the linux/amd64 child
						// is schema2 and the client listed neither type): trustgate still serves the list.
						if got.code != http.StatusOK {
							t.Errorf("%s: trustgate %d, want the signed list", what, got.code)
						}
						continue
					}
					if got.code != want.code {
						t.Errorf("%s: trustgate %d, registry %d; trustgate body %s", what, got.code, want.code, got.body)
					}
					if got.code == http.StatusNotFound {
						refused++
						if method == http.MethodGet && !strings.Contains(string(got.body), "MANIFEST_UNKNOWN") {
							t.Errorf("%s: refusal body %s", what, got.body)
						}
					}
				}
			}
		}
	}
	if refused == 0 {
		t.Error("no request was refused: the Accept headers did not exercise distribution's refusals")
	}
}
