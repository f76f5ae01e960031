// Package e2e runs the trustgate binary between real clients (crane, skopeo, dockerd, containerd)
// and real peers (distribution registry, notary-server signed with the notary CLI), as users run it.
//
// Each test builds its own small world (registry + notary-server + publisher CLI, ~0.3 s) rather
// than sharing one per binary: scenarios stop the trust server, move tags upstream, rotate roots and
// read decision logs, and sharing would make each depend on the others' order. Only the trustgate
// binary is built once, in TestMain.
//
// Scenarios: TestResolveRealNotary (issue #2: resolve, re-sign, root rotation, restart with the same
// trust_dir); TestCrane (signed, unsigned, tag moved upstream, multi-arch index, unrelated digest,
// warn mode, upstream never asked by tag); TestNotaryDown (503, never 404, no manifest body);
// TestSkopeo; TestDockerMirror (registry-mirrors); TestContainerdHostsServer (hosts.toml, ?ns=);
// TestUpstreamDown (503); TestLargeBlobStreams (1 GiB layer, peak RSS); TestTrustFetchedOncePerTTL
// (burst coalescing); TestTrustPinning (certs pins against the real root, disable_tofu, wildcard);
// TestPartialUpdateReplay (issue #7: a tampering front fails the snapshot, then replays the old
// files); TestPinnedRootRotation (a pinned root rotates as in notary; every_root refuses);
// TestHostileTrustServerMemory (endless root.json, concurrent first pulls, peak RSS within
// trust_limits); TestNotaryCredentialsStayHome (no notary credentials to a redirect target or a
// token realm on another host); TestServeOnlyWhatIsSignedNow (issue #8: revocation refuses by digest, tampered trust 503 by
// digest); TestDigestPullAfterRestart (crane, skopeo, containerd name:tag@digest after a restart);
// TestFrozenTrust (issue #9: trust freeze, then serving from the frozen file with the notary-server
// stopped and the frozen metadata expired).
//
// Operations (issue #11): TestReadyzFollowsTrustServer (/readyz 503 while the real notary-server
// is down, 200 when it is back); TestReloadDuringBlobStream (SIGHUP: a broken config rejected
// naming its key, a new policy applied, a 1 GiB layer streaming across both); TestImageRunsUnderDockerd
// (the image `make image` builds, run by the real dockerd as uid 65532: health, a signed pull, the demo).
//
// Replicas (issue #10, replicas_test.go): three trustgate processes sharing one redis-server —
// TestReplicasOneNotaryChain (100 cold pulls, one Notary chain), TestReplicasRollbackRefused (a
// replay to B after A saw the newer publish), TestReplicasRevocation (B and C within trust_ttl),
// TestReplicasKillMidRefresh (SIGKILL of the lease holder), TestReplicasRedisDown.
//
// The fault and attack suite (issue #8) puts a recording, fault-injecting front
// (faultfront_test.go) before the registry and the notary-server: TestFaults (down, slow,
// trickling, reset, garbage, oversized, altered bytes → 503 naming the repository, never 404,
// never complete wrong bytes, recovery); TestKillMidPull, TestKillMidRefresh (SIGKILL, restart on
// the same trust_dir, no second TOFU); TestNameAttacks (traversal, encodings, ?ns= SSRF: refused
// before any peer is asked); TestHeaderAttacks (431); TestSlowloris; TestCredentialsNeverForwarded.
package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/trustgate/trustgate/internal/peers"
)

// trustgateBin is the binary built once by TestMain and shared read-only by every test.
var trustgateBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "trustgate-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	trustgateBin, err = peers.BuildTrustgate(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: cannot build trustgate:", err)
		return 1
	}
	return m.Run()
}
