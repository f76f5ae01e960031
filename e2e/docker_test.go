package e2e

import (
	"context"
	"slices"
	"testing"

	"github.com/trustgate/trustgate/internal/peers"
)

// TestDockerMirror: dockerd with registry-mirrors=[trustgate]. A signed tag is pulled and recorded
// with its signed digest; an unsigned one is refused by trustgate. dockerd then falls back to Docker
// Hub (unreachable here), so the unsigned pull fails — the outcome asserted is "no image" plus
// trustgate's refusal in its decision log, not docker's error text.
func TestDockerMirror(t *testing.T) {
	w := newWorld(t)
	signed := w.pushSigned(t, "library/alpine", "signed")
	w.push(t, "library/alpine", "unsigned")
	g := w.gate(t, peers.GateConfig{})
	d := peers.StartDockerd(t, g.URL)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dockerd log tail:\n%s", d.Log.Tail(30))
		}
	})
	ctx := context.Background()

	if err := d.Pull(ctx, "alpine:signed"); err != nil {
		t.Fatalf("docker pull alpine:signed: %v", err)
	}
	ds, err := d.RepoDigests(ctx, "alpine:signed")
	if err != nil || !slices.Contains(ds, "alpine@"+signed.Digest) {
		t.Errorf("RepoDigests = %v, %v; want alpine@%s", ds, err, signed.Digest)
	}

	allows := findDecision(g, gun("library/alpine"), "signed")
	if len(allows) == 0 || allows[0].Decision != "allow" || allows[0].Digest != signed.Digest {
		t.Errorf("decision log for alpine:signed:\n%s", decisionsString(allows))
	}

	if err := d.Pull(ctx, "alpine:unsigned"); err == nil {
		t.Error("docker pull alpine:unsigned succeeded")
	}
	imgs, err := d.Images(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(imgs, "alpine:unsigned") || !slices.Contains(imgs, "alpine:signed") {
		t.Errorf("images after pulls = %v; want alpine:signed only", imgs)
	}
	refusals := findDecision(g, gun("library/alpine"), "unsigned")
	if len(refusals) == 0 || refusals[0].Decision != "refuse" {
		t.Errorf("decision log for alpine:unsigned:\n%s", decisionsString(refusals))
	}
}
