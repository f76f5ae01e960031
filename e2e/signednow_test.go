package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/trustgate/trustgate/internal/peers"
)

// timestampTamperer is a reverse proxy in front of notary-server that, when switched on, alters the
// signed part of every timestamp.json it relays (as an attacker on the path, or a corrupted
// server, would): the signature no longer verifies.
type timestampTamperer struct {
	URL    string
	tamper atomic.Bool
}

func startTimestampTamperer(t *testing.T, notaryURL string) *timestampTamperer {
	t.Helper()
	target, err := url.Parse(notaryURL)
	if err != nil {
		t.Fatal(err)
	}
	f := &timestampTamperer{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		if !f.tamper.Load() || !strings.HasSuffix(resp.Request.URL.Path, "/timestamp.json") || resp.StatusCode != http.StatusOK {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		// The signature covers the canonical form of "signed", so the change must be to its
		// content: a higher version number.
		body = versionRE.ReplaceAllFunc(body, func(m []byte) []byte {
			n, _ := strconv.Atoi(string(versionRE.FindSubmatch(m)[1]))
			return []byte(`"version":` + strconv.Itoa(n+1))
		})
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

var versionRE = regexp.MustCompile(`"version":\s*([0-9]+)`)

// blobDigests returns the config and layer digests of an image manifest.
func blobDigests(t *testing.T, manifest []byte) []string {
	t.Helper()
	var m v1.Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		t.Fatal(err)
	}
	out := []string{m.Config.Digest.String()}
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
	}
	return out
}

// TestServeOnlyWhatIsSignedNow (issue #8): by-digest content follows the trust state. A revoked
// tag's manifest and layers are refused by digest (404) within trust_ttl; trust data that stops
// verifying refuses by digest with 503, like the tag; content still signed is untouched.
func TestServeOnlyWhatIsSignedNow(t *testing.T) {
	w := newWorld(t)
	const repo = "library/alpine"
	keep := w.pushSigned(t, repo, "v1")
	revoke := w.pushSigned(t, repo, "v2")
	front := startTimestampTamperer(t, w.notary.URL)
	const ttl = time.Second
	g := peers.StartTrustgate(t, trustgateBin, peers.GateConfig{RegistryURL: w.reg.URL, NotaryURL: front.URL, TrustTTL: ttl})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("trustgate log, last lines:\n%s", g.Log.Tail(40))
		}
	})
	status := func(method, path string) int { return get(t, method, g.URL+path, manifestAccept...).code }

	pulled := map[string][]string{}
	for _, p := range []peers.Pushed{keep, revoke} {
		got := getManifest(t, g, repo, p.Tag)
		if got.code != http.StatusOK || got.digest() != p.Digest {
			t.Fatalf("%s: %d %s", p.Tag, got.code, got.body)
		}
		pulled[p.Tag] = blobDigests(t, got.body)
		for _, d := range pulled[p.Tag] {
			if c := status(http.MethodGet, "/v2/"+repo+"/blobs/"+d); c != http.StatusOK {
				t.Fatalf("%s blob %s while signed: %d", p.Tag, d, c)
			}
		}
	}

	t.Run("revoked", func(t *testing.T) {
		w.cli.Remove(gun(repo), "v2")
		w.cli.Publish(gun(repo))
		start := time.Now()
		eventually(t, 30*time.Second, "revoked tag refused by digest", func() (bool, string) {
			c := status(http.MethodGet, "/v2/"+repo+"/manifests/"+revoke.Digest)
			return c == http.StatusNotFound, strconv.Itoa(c)
		})
		t.Logf("revocation took effect by digest after %v (trust_ttl %v)", time.Since(start).Round(time.Millisecond), ttl)
		got := get(t, http.MethodGet, g.URL+"/v2/"+repo+"/manifests/"+revoke.Digest, manifestAccept...)
		if !bytes.Contains(got.body, []byte(revoke.Digest)) || !bytes.Contains(got.body, []byte(gun(repo))) {
			t.Errorf("404 body does not name digest and repository: %s", got.body)
		}
		if c := status(http.MethodGet, "/v2/"+repo+"/manifests/v2"); c != http.StatusNotFound {
			t.Errorf("revoked tag: %d", c)
		}
		for _, d := range pulled["v2"] {
			for _, m := range []string{http.MethodGet, http.MethodHead} {
				if c := status(m, "/v2/"+repo+"/blobs/"+d); c != http.StatusNotFound {
					t.Errorf("%s revoked blob %s: %d, want 404", m, d, c)
				}
			}
		}
		for _, d := range append([]string{keep.Digest}, pulled["v1"]...) {
			kind := "blobs"
			if d == keep.Digest {
				kind = "manifests"
			}
			if c := status(http.MethodGet, "/v2/"+repo+"/"+kind+"/"+d); c != http.StatusOK {
				t.Errorf("still-signed %s %s: %d", kind, d, c)
			}
		}
	})

	t.Run("unverifiable", func(t *testing.T) {
		front.tamper.Store(true)
		eventually(t, 30*time.Second, "tampered trust refuses by digest with 503", func() (bool, string) {
			c := status(http.MethodGet, "/v2/"+repo+"/manifests/"+keep.Digest)
			return c == http.StatusServiceUnavailable, strconv.Itoa(c)
		})
		for _, p := range []string{"/manifests/v1", "/blobs/" + pulled["v1"][1]} {
			for _, m := range []string{http.MethodGet, http.MethodHead} {
				if c := status(m, "/v2/"+repo+p); c != http.StatusServiceUnavailable {
					t.Errorf("%s %s with tampered trust: %d, want 503", m, p, c)
				}
			}
		}
		got := get(t, http.MethodGet, g.URL+"/v2/"+repo+"/blobs/"+pulled["v1"][1])
		for _, leak := range []string{w.notary.Host, strings.TrimPrefix(front.URL, "http://"), strings.TrimPrefix(w.reg.URL, "http://"), g.TrustDir} {
			if bytes.Contains(got.body, []byte(leak)) {
				t.Errorf("503 body leaks %q: %s", leak, got.body)
			}
		}
		front.tamper.Store(false)
		eventually(t, 30*time.Second, "verified again", func() (bool, string) {
			c := status(http.MethodGet, "/v2/"+repo+"/blobs/"+pulled["v1"][1])
			return c == http.StatusOK, strconv.Itoa(c)
		})
	})
}

// TestDigestPullAfterRestart (issue #8): after a restart, a digest-pinned pull by crane, skopeo and
// containerd (name:tag@digest) works without the tag being pulled first and costs no tag
// resolution — on the same trust_dir, and on a trust_dir as the previous version left it (no
// graph/), which is upgraded in place without repeating trust on first use.
func TestDigestPullAfterRestart(t *testing.T) {
	w := newWorld(t)
	const repo = "library/alpine"
	img := w.pushSigned(t, repo, "signed")
	multi := peers.PushIndex(t, w.reg, "library/multi", "v1")
	w.sign(t, "library/multi", "v1", multi)
	trustDir := filepath.Join(t.TempDir(), "trust")
	cfg := peers.GateConfig{TrustDir: trustDir}

	first := w.gate(t, cfg)
	if got := getManifest(t, first, repo, "signed"); got.code != http.StatusOK {
		t.Fatalf("first process: %d %s", got.code, got.body)
	}
	if got := getManifest(t, first, "library/multi", "v1"); got.code != http.StatusOK {
		t.Fatalf("first process: %d %s", got.code, got.body)
	}
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	isRoot := func(r peers.NotaryRequest) bool { return strings.Contains(r.URI, "/_trust/tuf/root") }

	for _, variant := range []string{"same trust_dir", "previous version's trust_dir"} {
		t.Run(variant, func(t *testing.T) {
			if variant != "same trust_dir" {
				if err := os.RemoveAll(filepath.Join(trustDir, "docker.io", "graph")); err != nil {
					t.Fatal(err)
				}
			}
			roots := w.notary.CountRequests(isRoot)
			g := w.gate(t, cfg)
			defer g.Stop()
			mark := w.reg.Log.Len()
			out := filepath.Join(t.TempDir(), "img.tar")
			if r := peers.Crane(t, "pull", g.Host+"/"+repo+"@"+img.Digest, out); r.Err != nil {
				t.Errorf("crane pull by digest after restart: %v\n%s", r.Err, r.Stderr)
			}
			for _, e := range w.reg.RequestsSince(mark) {
				if strings.Contains(e.Path, "/manifests/") && !strings.HasSuffix(e.Path, img.Digest) {
					t.Errorf("restarted trustgate fetched another manifest upstream: %+v", e)
				}
			}
			r := peers.Skopeo(t, "--insecure-policy", "copy", "--src-tls-verify=false",
				"docker://"+g.Host+"/library/multi@"+multi.Children[0].Digest, "dir:"+t.TempDir())
			if r.Err != nil {
				t.Errorf("skopeo copy of a signed index's child by digest: %v\n%s", r.Err, r.Stderr)
			}
			c := peers.StartContainerd(t, g.URL)
			ref := "docker.io/" + repo + ":signed@" + img.Digest
			if err := c.Pull(context.Background(), ref); err != nil {
				t.Errorf("ctr pull %s: %v", ref, err)
			}
			served := map[string]bool{}
			for _, d := range g.Decisions() {
				served[d.Digest] = true
				if d.Tag != "" {
					t.Errorf("a digest-pinned pull resolved a tag: %+v", d)
				}
				if d.Decision != "allow" {
					t.Errorf("decision: %+v", d)
				}
			}
			for _, d := range []string{img.Digest, img.Layers[0].Digest, multi.Children[0].Digest, multi.Children[0].Layers[0].Digest} {
				if !served[d] {
					t.Errorf("no decision for %s: the pulls did not go through the restarted trustgate", d)
				}
			}
			time.Sleep(300 * time.Millisecond) // notary-server logs a request after answering it
			if n := w.notary.CountRequests(isRoot) - roots; n != 0 {
				t.Errorf("restart fetched root.json %d times: trust on first use repeated", n)
			}
		})
	}
}
