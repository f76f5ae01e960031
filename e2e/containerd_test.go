package e2e

import (
	"context"
	"testing"

	"github.com/trustgate/trustgate/internal/peers"
)

// TestContainerdHostsServer: containerd with trustgate as docker.io's hosts.toml server — requests
// carry ?ns=docker.io, and with no fallback host the refusal is final, not bypassed via Docker Hub.
func TestContainerdHostsServer(t *testing.T) {
	w := newWorld(t)
	signed := w.pushSigned(t, "library/alpine", "signed")
	w.push(t, "library/alpine", "unsigned")
	g := w.gate(t, peers.GateConfig{})
	c := peers.StartContainerd(t, g.URL)
	ctx := context.Background()

	if err := c.Pull(ctx, "docker.io/library/alpine:signed"); err != nil {
		t.Fatalf("ctr pull alpine:signed: %v", err)
	}
	if d, err := c.ImageDigest(ctx, "docker.io/library/alpine:signed"); err != nil || d != signed.Digest {
		t.Errorf("image digest = %q, %v; want %s", d, err, signed.Digest)
	}
	if err := c.Pull(ctx, "docker.io/library/alpine:unsigned"); err == nil {
		t.Error("ctr pull alpine:unsigned succeeded")
	} else {
		t.Logf("ctr pull alpine:unsigned: %v", err)
	}
	if d, _ := c.ImageDigest(ctx, "docker.io/library/alpine:unsigned"); d != "" {
		t.Errorf("alpine:unsigned is present as %s", d)
	}
	ds := findDecision(g, gun("library/alpine"), "unsigned")
	if len(ds) == 0 || ds[0].Decision != "refuse" {
		t.Errorf("decision log for alpine:unsigned:\n%s", decisionsString(ds))
	}
}
