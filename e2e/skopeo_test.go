package e2e

import (
	"encoding/json"
	"testing"

	"github.com/trustgate/trustgate/internal/peers"
)

// TestSkopeo: skopeo (containers/image) sees the signed digest and is refused the unsigned tag.
func TestSkopeo(t *testing.T) {
	w := newWorld(t)
	signed := w.pushSigned(t, "library/alpine", "signed")
	w.push(t, "library/alpine", "unsigned")
	g := w.gate(t, peers.GateConfig{})

	// Without --no-tags skopeo also lists tags, which must show the signed tag only.
	r := peers.Skopeo(t, "inspect", "--tls-verify=false", "docker://"+g.Host+"/library/alpine:signed")
	var out struct {
		Digest   string
		RepoTags []string
	}
	if r.Err != nil {
		t.Fatalf("skopeo inspect signed: %v", r.Err)
	}
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
		t.Fatalf("skopeo output %q: %v", r.Stdout, err)
	}
	if out.Digest != signed.Digest {
		t.Errorf("skopeo digest = %s, want %s", out.Digest, signed.Digest)
	}
	if len(out.RepoTags) != 1 || out.RepoTags[0] != "signed" {
		t.Errorf("skopeo RepoTags = %q, want only the signed tag", out.RepoTags)
	}

	r = peers.Skopeo(t, "inspect", "--tls-verify=false", "--no-tags", "docker://"+g.Host+"/library/alpine:unsigned")
	if r.Err == nil {
		t.Errorf("skopeo inspect of an unsigned tag succeeded: %s", r.Stdout)
	}
	dir := t.TempDir()
	r = peers.Skopeo(t, "--insecure-policy", "copy", "--src-tls-verify=false",
		"docker://"+g.Host+"/library/alpine:signed", "dir:"+dir)
	if r.Err != nil {
		t.Errorf("skopeo copy signed: %v", r.Err)
	}
}
