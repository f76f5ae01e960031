package proxy

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/peers"
	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/resolver"
)

// TestErrorBodiesLeakNothing: error bodies name the repository and the reason, never an upstream
// or trust-server URL, an address or a file path (those are for the log).
func TestErrorBodiesLeakNothing(t *testing.T) {
	reg := peers.StartRegistry(t)
	img := peers.PushImage(t, reg, "library/alpine", "1")
	dead := deadURL(t)
	deadHost := strings.TrimPrefix(dead, "http://")
	// A file where the spool directory should be: it can be neither used nor recreated.
	spoolFile := filepath.Join(t.TempDir(), "spool-is-a-file")
	if err := os.WriteFile(spoolFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	spool := filepath.Join(spoolFile, "spool")
	const trustURL, trustPath = "notary.internal.example:4443", "/var/lib/trustgate/tuf"

	secret := []string{deadHost, strings.TrimPrefix(reg.URL, "http://"), trustURL, trustPath, spool, "127.0.0.1"}
	check := func(t *testing.T, r response, status int, mustName ...string) {
		t.Helper()
		if r.status != status {
			t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
		}
		_, msg := registryError(t, r)
		for _, s := range secret {
			if strings.Contains(string(r.body), s) {
				t.Errorf("body leaks %q: %s", s, r.body)
			}
		}
		for _, s := range mustName {
			if !strings.Contains(msg, s) {
				t.Errorf("message %q does not name %q", msg, s)
			}
		}
	}

	t.Run("upstream down", func(t *testing.T) {
		e := newEnv(t, reg, envConfig{upstreamURL: dead, rules: []policy.RuleConfig{{Match: "docker.io/off/**", Mode: policy.Off}}})
		e.trust.sign("docker.io/library/alpine", "1", img, "targets")
		check(t, e.get("/v2/alpine/manifests/1"), http.StatusServiceUnavailable, "docker.io/library/alpine", "unreachable")
		check(t, e.get("/v2/off/x/manifests/1"), http.StatusServiceUnavailable, "docker.io/off/x")
		check(t, e.get("/v2/off/x/blobs/"+img.Layers[0].Digest), http.StatusServiceUnavailable, "docker.io/off/x")
		check(t, e.get("/v2/off/x/tags/list"), http.StatusServiceUnavailable, "docker.io/off/x")
		check(t, e.get("/v2/off/x/referrers/"+img.Digest), http.StatusServiceUnavailable, "docker.io/off/x")
	})
	t.Run("trust error", func(t *testing.T) {
		e := newEnv(t, reg, envConfig{})
		e.trust.fail("docker.io/library/alpine", fmt.Errorf("GET https://%s/v2/docker.io/library/alpine/_trust/tuf/timestamp.json: open %s/x: permission denied: %w", trustURL, trustPath, resolver.ErrUnavailable))
		check(t, e.get("/v2/alpine/manifests/1"), http.StatusServiceUnavailable, "docker.io/library/alpine", resolver.ErrUnavailable.Error())
		check(t, e.get("/v2/alpine/blobs/"+img.Layers[0].Digest), http.StatusServiceUnavailable, "docker.io/library/alpine", resolver.ErrUnavailable.Error())
		check(t, e.get("/v2/alpine/tags/list"), http.StatusServiceUnavailable, "docker.io/library/alpine")
	})
	t.Run("spool unwritable", func(t *testing.T) {
		u, _ := url.Parse(reg.URL)
		pol, err := policy.New(policy.Config{Default: policy.RuleConfig{Mode: policy.Off}})
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(Options{Upstreams: []*Upstream{{Name: "docker.io", URL: u, DockerHub: true, Trust: newFakeTrust()}},
			Default: "docker.io", Policy: pol, TempDir: spool})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		e := &env{t: t, srv: s, http: newTestHTTP(t, s)}
		check(t, e.get("/v2/alpine/blobs/"+img.Layers[0].Digest), http.StatusServiceUnavailable, "docker.io/library/alpine", "not a directory")
	})
}
