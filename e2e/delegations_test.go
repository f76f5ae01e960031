package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
	"github.com/trustgate/trustgate/internal/tuftest"
)

// TestDelegations is docker's role rule end to end: the trustgate binary, a real registry and
// real crane, with trust data that has delegations. Stock notary-server v0.7.0 built with Go ≥
// 1.17 rejects delegation uploads, so our test signer makes the metadata and a notary-like
// static server serves it (the oracle module checks that notary itself accepts such metadata).
func TestDelegations(t *testing.T) {
	reg := peers.StartRegistry(t)
	const repo = "library/app"
	inTargets := peers.PushImage(t, reg, repo, "")
	inReleases := peers.PushImage(t, reg, repo, "")
	inAlice := peers.PushImage(t, reg, repo, "")
	onlyTargets := peers.PushImage(t, reg, repo, "")
	for _, tag := range []string{"v1", "v2", "v3"} {
		// The upstream tags point at content nobody signed: trustgate must never use them.
		peers.PushImage(t, reg, repo, tag)
	}

	r := tuftest.NewRepo(t, gun(repo))
	releasesKey, aliceKey := tuftest.NewKey(t, tuftest.ECDSA), tuftest.NewKey(t, tuftest.Ed25519)
	r.AddDelegation("targets/releases", []*tuftest.Key{releasesKey}, nil, 1)
	r.AddDelegation("targets/alice", []*tuftest.Key{aliceKey}, nil, 1)
	r.AddTargetDigest("targets", "v1", inTargets.Digest, inTargets.Size)
	r.AddTargetDigest("targets/releases", "v1", inReleases.Digest, inReleases.Size) // releases wins
	r.AddTargetDigest("targets/alice", "v2", inAlice.Digest, inAlice.Size)          // not docker's roles
	r.AddTargetDigest("targets", "v3", onlyTargets.Digest, onlyTargets.Size)
	notary := tuftest.Serve(t, gun(repo), r.Publish())

	g := peers.StartTrustgate(t, trustgateBin, peers.GateConfig{RegistryURL: reg.URL, NotaryURL: notary.URL, TrustTTL: time.Second})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("trustgate log, last lines:\n%s", g.Log.Tail(40))
		}
	})
	ref := func(tag string) string { return g.Host + "/" + repo + ":" + tag }

	for _, c := range []struct{ tag, want, role string }{
		{"v1", inReleases.Digest, "targets/releases"},
		{"v3", onlyTargets.Digest, "targets"},
	} {
		out := peers.Crane(t, "digest", ref(c.tag))
		if out.Err != nil || strings.TrimSpace(out.Stdout) != c.want {
			t.Errorf("crane digest %s = %q, %v; want %s (signed in %s)", c.tag, out.Stdout, out.Err, c.want, c.role)
		}
		resp := getManifest(t, g, repo, c.tag)
		if got := resp.header.Get("X-Trustgate-Role"); got != c.role {
			t.Errorf("%s: X-Trustgate-Role = %q, want %q", c.tag, got, c.role)
		}
	}

	// v2 is signed, but only by a delegation docker does not read: refused as unsigned.
	if out := peers.Crane(t, "digest", ref("v2")); out.Err == nil {
		t.Errorf("crane digest v2 (only in targets/alice) succeeded: %s", out.Stdout)
	}
	if resp := getManifest(t, g, repo, "v2"); resp.code != http.StatusNotFound {
		t.Errorf("GET v2 = %d %s, want 404", resp.code, resp.body)
	}

	// Re-sign v1 in targets/releases to the image alice signed: seen after trust_ttl.
	r.AddTargetDigest("targets/releases", "v1", inAlice.Digest, inAlice.Size)
	notary.Set(gun(repo), r.Publish())
	eventually(t, 30*time.Second, "re-signed v1 served", func() (bool, string) {
		out := peers.Crane(t, "digest", ref("v1"))
		got := strings.TrimSpace(out.Stdout)
		return got == inAlice.Digest, got
	})
}
