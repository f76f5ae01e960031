package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

type resolved struct {
	GUN     string   `json:"gun"`
	Tag     string   `json:"tag"`
	Digest  string   `json:"digest"`
	Size    int64    `json:"size"`
	Role    string   `json:"role"`
	Signers []string `json:"signers"`
	Expires string   `json:"expires"`
}

// resolveCLI runs `trustgate resolve --config F --json ref`.
func resolveCLI(t *testing.T, config, ref string) (resolved, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, trustgateBin, "resolve", "--config", config, "--json", ref)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var r resolved
	if err == nil {
		if jerr := json.Unmarshal(stdout.Bytes(), &r); jerr != nil {
			t.Fatalf("resolve %s: bad JSON %q: %v", ref, stdout.String(), jerr)
		}
	}
	return r, stderr.String(), err
}

// TestResolveRealNotary is issue #2: the resolver against trust data made by the real notary CLI and
// served by the real notary-server — signing, re-signing, root rotation, across restarts.
func TestResolveRealNotary(t *testing.T) {
	w := newWorld(t)
	const repo = "library/alpine"
	p1 := w.pushSigned(t, repo, "signed")
	w.push(t, repo, "unsigned")

	trustDir := filepath.Join(t.TempDir(), "trust")
	cfg := peers.GateConfig{RegistryURL: w.reg.URL, NotaryURL: w.notary.URL, TrustDir: trustDir, TrustTTL: time.Second}
	config := filepath.Join(t.TempDir(), "trustgate.yaml")
	if err := os.WriteFile(config, []byte(cfg.YAML()), 0o644); err != nil {
		t.Fatal(err)
	}

	r, stderr, err := resolveCLI(t, config, "alpine:signed")
	if err != nil {
		t.Fatalf("resolve alpine:signed: %v\n%s", err, stderr)
	}
	if r.Digest != p1.Digest || r.Size != p1.Size || r.Role != "targets" || r.GUN != gun(repo) {
		t.Errorf("resolve alpine:signed = %+v; want digest %s size %d role targets", r, p1.Digest, p1.Size)
	}
	// The human-readable form shows the same facts.
	text, err := exec.Command(trustgateBin, "resolve", "--config", config, "alpine:signed").CombinedOutput()
	for _, want := range []string{p1.Digest, "targets", gun(repo)} {
		if err != nil || !bytes.Contains(text, []byte(want)) {
			t.Errorf("resolve (text) output lacks %q: %v\n%s", want, err, text)
		}
	}
	_, stderr, err = resolveCLI(t, config, "alpine:unsigned")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr, "unsigned") {
		t.Errorf("resolve alpine:unsigned: %v, stderr %q; want exit 1 naming the tag", err, stderr)
	}
	if _, _, err := resolveCLI(t, config, "docker.io/library/nosuchrepo:v1"); err == nil {
		t.Error("resolve of a GUN without trust data succeeded")
	}

	g := w.gate(t, cfg)
	if got := getManifest(t, g, repo, "signed"); got.code != 200 || got.digest() != p1.Digest {
		t.Fatalf("GET alpine:signed: %d %s, want 200 %s", got.code, got.digest(), p1.Digest)
	}

	// Re-sign the tag to new content: the CLI sees it at once (timestamp is always fetched), the
	// server once trust_ttl has passed.
	p2 := w.pushSigned(t, repo, "signed")
	if r, stderr, err := resolveCLI(t, config, "alpine:signed"); err != nil || r.Digest != p2.Digest {
		t.Errorf("resolve after re-sign = %s, %v %s; want %s", r.Digest, err, stderr, p2.Digest)
	}
	eventually(t, 30*time.Second, "serve follows re-sign", func() (bool, string) {
		got := getManifest(t, g, repo, "signed")
		return got.code == 200 && got.digest() == p2.Digest, got.digest()
	})

	// Root rotation: the new root is signed by the old one; both the running server and a new
	// process reading the persisted trust_dir must follow it.
	w.cli.RotateRoot(gun(repo))
	p3 := w.pushSigned(t, repo, "after-rotation")
	eventually(t, 30*time.Second, "serve follows root rotation", func() (bool, string) {
		got := getManifest(t, g, repo, "after-rotation")
		return got.code == 200 && got.digest() == p3.Digest, string(got.body)
	})
	if got := getManifest(t, g, repo, "signed"); got.code != 200 || got.digest() != p2.Digest {
		t.Errorf("GET alpine:signed after rotation: %d %s, want %s", got.code, got.digest(), p2.Digest)
	}
	if err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	if r, stderr, err := resolveCLI(t, config, "alpine:after-rotation"); err != nil || r.Digest != p3.Digest {
		t.Errorf("resolve after rotation = %s, %v %s; want %s", r.Digest, err, stderr, p3.Digest)
	}
	w.cli.RotateRoot(gun(repo))
	p4 := w.pushSigned(t, repo, "after-second-rotation")
	g2 := w.gate(t, cfg) // same trust_dir: starts from the root persisted before the second rotation
	if got := getManifest(t, g2, repo, "after-second-rotation"); got.code != 200 || got.digest() != p4.Digest {
		t.Errorf("restarted trustgate after rotation: %d %s, want %s\n%s", got.code, got.digest(), p4.Digest, got.body)
	}
}
