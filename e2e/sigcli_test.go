package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

// signer runs a signing CLI (cosign, cosign2, notation) in its own home, so no developer
// configuration or key leaks in and nothing is written outside the test's directory.
type signer struct {
	bin, dir string
	env      []string
}

func newSigner(t *testing.T, name string) *signer {
	t.Helper()
	dir := t.TempDir()
	env := []string{"HOME=" + dir, "XDG_CONFIG_HOME=" + filepath.Join(dir, ".config"), "PATH=" + os.Getenv("PATH"),
		"COSIGN_PASSWORD=", "COSIGN_YES=true", "TUF_ROOT=" + filepath.Join(dir, "tuf")}
	return &signer{bin: peers.Binary(t, name), dir: dir, env: env}
}

// run runs the CLI and fails the test if it fails.
func (s *signer) run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := s.try(args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(s.bin), strings.Join(args, " "), err, out)
	}
	return out
}

func (s *signer) try(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Dir, cmd.Env = s.dir, s.env
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return b.String(), err
}

// rawManifest reads a manifest straight from the registry (not through trustgate).
func rawManifest(t *testing.T, reg *peers.Registry, repo, ref string) []byte {
	t.Helper()
	r := get(t, http.MethodGet, reg.URL+"/v2/"+repo+"/manifests/"+ref, "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json")
	if r.code != http.StatusOK {
		t.Fatalf("registry GET %s:%s = %d %s", repo, ref, r.code, r.body)
	}
	return r.body
}

// sigTag is cosign's legacy signature tag, and indexTag the referrers tag schema's.
func sigTag(digest string) string   { return indexTag(digest) + ".sig" }
func indexTag(digest string) string { return strings.Replace(digest, ":", "-", 1) }

// putRaw pushes manifest bytes to the registry under ref.
func putRaw(t *testing.T, reg *peers.Registry, repo, ref, mediaType string, body []byte) {
	t.Helper()
	if _, err := peers.PutManifest(context.Background(), reg.URL, repo, ref, mediaType, body); err != nil {
		t.Fatalf("put %s:%s: %v", repo, ref, err)
	}
}

// expectServed asserts trustgate serves repo:tag at want, saying which verifier signed.
func expectServed(t *testing.T, g *peers.Trustgate, repo, tag, want, verifier string) {
	t.Helper()
	r := getManifest(t, g, repo, tag)
	if r.code != http.StatusOK || r.digest() != want {
		t.Fatalf("GET %s:%s = %d (%s), body hashes to %s; want 200 at %s", repo, tag, r.code, r.body, r.digest(), want)
	}
	if got := r.header.Get("X-Trustgate-Verifier"); got != verifier {
		t.Errorf("X-Trustgate-Verifier = %q, want %q", got, verifier)
	}
	if r.header.Get("X-Trustgate-Signer") == "" || (verifier != "notary" && r.header.Get("X-Trustgate-Expires") == "") {
		t.Errorf("signer/expiry headers missing: %v", r.header)
	}
}

// expectRefused asserts repo:tag is answered with code and no manifest bytes.
func expectRefused(t *testing.T, g *peers.Trustgate, repo, tag string, code int, notDigest string) response {
	t.Helper()
	r := getManifest(t, g, repo, tag)
	if r.code != code {
		t.Errorf("GET %s:%s = %d %s; want %d", repo, tag, r.code, r.body, code)
	}
	if notDigest != "" && r.digest() == notDigest {
		t.Errorf("GET %s:%s served the refused manifest", repo, tag)
	}
	return r
}

// expectReason asserts the last decision logged for repo:tag is decision, with reason containing want.
func expectReason(t *testing.T, g *peers.Trustgate, repo, tag, decision, want string) {
	t.Helper()
	var ds []peers.Decision
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		// The decision is logged just after the response: wait for it.
		ds = findDecision(g, repo, tag)
		if len(ds) > 0 && ds[len(ds)-1].Decision == decision && strings.Contains(ds[len(ds)-1].Reason, want) {
			return
		}
	}
	{
		t.Errorf("decision log for %s:%s, want %s with %q:\n%s", repo, tag, decision, want, decisionsString(ds))
	}
}

// q renders s as a YAML (JSON) string.
func q(s string) string { b, _ := json.Marshal(s); return string(b) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
