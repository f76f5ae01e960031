package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/trustgate/trustgate/internal/peers"
)

// Issue #10: several trustgate processes behind one load balancer share trust state in one real
// redis-server. Each replica has its own trust_dir; the notary-server and registry are real.

// replica starts one trustgate sharing red, asking notaryURL for trust data.
func (w *world) replica(t *testing.T, red *peers.Redis, notaryURL string, cfg peers.GateConfig) *peers.Trustgate {
	t.Helper()
	cfg.RegistryURL, cfg.NotaryURL = w.reg.URL, notaryURL
	if red != nil {
		cfg.RedisAddr = red.Addr
	}
	g := peers.StartTrustgate(t, trustgateBin, cfg)
	t.Cleanup(func() {
		if t.Failed() {
			var lines []string
			for _, l := range g.Log.Lines() {
				if !strings.Contains(l, `"msg":"decision"`) {
					lines = append(lines, l)
				}
			}
			t.Logf("trustgate %s log (%s), last lines other than decisions:\n%s", g.Host, g.Log.Path(), strings.Join(lines[max(0, len(lines)-25):], "\n")+"\n"+g.Log.Tail(3))
		}
	})
	return g
}

// trustRole names the role a notary request fetched: root, timestamp, snapshot, targets or a
// delegation ("" if it is not a metadata request).
func trustRole(p string) string {
	_, rest, ok := strings.Cut(p, "/_trust/tuf/")
	if !ok {
		return ""
	}
	rest = strings.TrimSuffix(rest, ".json")
	if i := strings.LastIndexByte(rest, '.'); i >= 0 {
		rest = rest[:i] // <role>.<sha256> or <N>.root
		if rest == "" || strings.Trim(rest, "0123456789") == "" {
			rest = "root"
		}
	}
	return rest
}

// pull is a manifest GET safe to run from many goroutines: status and body digest, or the error.
func pull(ctx context.Context, g *peers.Trustgate, repo, ref string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.URL+"/v2/"+repo+"/manifests/"+ref, nil)
	if err != nil {
		return 0, "", err
	}
	for _, a := range manifestAccept {
		req.Header.Add("Accept", a)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, "", err
	}
	sum := sha256.Sum256(b)
	return resp.StatusCode, "sha256:" + hex.EncodeToString(sum[:]), nil
}

// TestReplicasOneNotaryChain: 100 concurrent cold pulls of one signed tag spread over three
// replicas cause one Notary chain in total — root, timestamp, snapshot and targets each fetched
// once, counted at a front before the notary-server. One replica takes the refresh lease; the
// others wait for it and verify what it stored.
func TestReplicasOneNotaryChain(t *testing.T) {
	w := newWorld(t)
	red := peers.StartRedis(t)
	const repo = "library/alpine"
	p := w.pushSigned(t, repo, "v1")
	front := startFront(t, w.notary.URL)
	var gs []*peers.Trustgate
	for range 3 {
		gs = append(gs, w.replica(t, red, front.URL, peers.GateConfig{TrustTTL: time.Minute, LogLevel: "info"}))
	}
	mark := front.mark()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type result struct {
		code   int
		digest string
		err    error
	}
	results := make([]result, 100)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, d, err := pull(ctx, gs[i%len(gs)], repo, "v1")
			results[i] = result{code, d, err}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	for i, r := range results {
		if r.err != nil || r.code != http.StatusOK || r.digest != p.Digest {
			t.Errorf("pull %d via replica %d: %d %s %v", i, i%len(gs), r.code, r.digest, r.err)
		}
	}
	fetched := map[string]int{}
	for _, r := range front.requests(mark) {
		if role := trustRole(r.Path); role != "" {
			fetched[role]++
		}
	}
	t.Logf("100 cold pulls over 3 replicas in %v: notary metadata requests by role %v", took.Round(time.Millisecond), fetched)
	for _, role := range []string{"root", "timestamp", "snapshot", "targets"} {
		if fetched[role] != 1 {
			t.Errorf("%s fetched %d times in total, want 1", role, fetched[role])
		}
	}
	if len(fetched) != 4 {
		t.Errorf("metadata requests %v, want only root, timestamp, snapshot and targets", fetched)
	}
}

// TestReplicasRollbackRefused: replicas A and B pull a signed tag; it is re-signed and A learns
// the new publish; an attacker between B and the notary-server then replays the first publish to
// B alone. B refuses it (503, never the old manifest), because A's floors are B's: a replica
// without the shared store (the control, through the same front) accepts the very same replay.
func TestReplicasRollbackRefused(t *testing.T) {
	w := newWorld(t)
	red := peers.StartRedis(t)
	const repo = "library/alpine"
	p1 := w.pushSigned(t, repo, "signed")
	tamper := newNotaryTamperFront(t, w.notary.URL)
	const ttl = 2 * time.Second
	cfg := peers.GateConfig{TrustTTL: ttl}
	tamperAlone := newNotaryTamperFront(t, w.notary.URL)
	a := w.replica(t, red, w.notary.URL, cfg)
	b := w.replica(t, red, tamper.URL, cfg)
	alone := w.replica(t, nil, tamperAlone.URL, cfg)
	for _, g := range []*peers.Trustgate{a, b, alone} {
		if got := getManifest(t, g, repo, "signed"); got.code != http.StatusOK || got.digest() != p1.Digest {
			t.Fatalf("first pull via %s: %d %s", g.Host, got.code, got.body)
		}
	}
	// The first publish's files, as the replica that shares nothing fetched them (B may have
	// verified what A stored instead of fetching them itself).
	v1 := tamperAlone.snapshot()
	if _, ok := v1["/v2/"+gun(repo)+"/_trust/tuf/timestamp.json"]; !ok {
		t.Fatalf("no timestamp recorded: %v", v1)
	}

	p2 := w.pushSigned(t, repo, "signed")
	eventually(t, 30*time.Second, "A serves the new publish", func() (bool, string) {
		got := getManifest(t, a, repo, "signed")
		return got.code == http.StatusOK && got.digest() == p2.Digest, got.digest()
	})
	tamper.set(false, v1)
	tamperAlone.set(false, v1)
	_, before := tamper.counts()
	_, beforeAlone := tamperAlone.counts()
	time.Sleep(ttl + 500*time.Millisecond) // A's check is no longer fresh: B must ask its front
	// The first request after trust_ttl may still be answered from B's last verified state while
	// it refreshes in the background (the cache's stale-while-revalidate); that refresh meets the
	// replay, and from then on B answers 503.
	eventually(t, 15*time.Second, "B refuses the replay", func() (bool, string) {
		got := getManifest(t, b, repo, "signed")
		return got.code == http.StatusServiceUnavailable, fmt.Sprintf("%d %s", got.code, got.body)
	})
	for range 3 {
		if got := getManifest(t, b, repo, "signed"); got.code != http.StatusServiceUnavailable || strings.Contains(string(got.body), "schemaVersion") {
			t.Errorf("B after refusing the replay: %d %s; want 503", got.code, got.digest())
		}
	}
	_, after := tamper.counts()
	replayed := 0
	for _, p := range after[len(before):] {
		if strings.HasSuffix(p, "/timestamp.json") {
			replayed++
		}
	}
	if replayed == 0 {
		t.Fatalf("B fetched no timestamp from the tampering front (requests %v): the check proves nothing", after[len(before):])
	}
	if !strings.Contains(strings.Join(b.Log.Lines(), "\n"), "rolled back") {
		t.Errorf("B's log names no rollback")
	}
	// The control: the same replay, through a front of its own, to a replica that shares nothing.
	eventually(t, 15*time.Second, "the control fetches the replayed timestamp", func() (bool, string) {
		getManifest(t, alone, repo, "signed")
		_, seen := tamperAlone.counts()
		for _, p := range seen[len(beforeAlone):] {
			if strings.HasSuffix(p, "/timestamp.json") {
				return true, ""
			}
		}
		return false, fmt.Sprint(seen[len(beforeAlone):])
	})
	time.Sleep(200 * time.Millisecond) // its background refresh stores what it verified
	if got := getManifest(t, alone, repo, "signed"); got.code != http.StatusOK || got.digest() != p1.Digest {
		t.Errorf("control without the shared store: %d %s; expected it to accept the replay (it never saw the new publish)", got.code, got.digest())
	}
}

// TestReplicasRevocation: a tag removed from trust data and seen gone by replica A is refused by
// digest on B and C once trust_ttl has passed since A saw it (plus the one background refresh the
// first request after trust_ttl starts).
func TestReplicasRevocation(t *testing.T) {
	w := newWorld(t)
	red := peers.StartRedis(t)
	const repo = "library/alpine"
	w.pushSigned(t, repo, "keep")
	revoke := w.pushSigned(t, repo, "v2")
	const ttl = 2 * time.Second
	var gs []*peers.Trustgate
	for range 3 {
		gs = append(gs, w.replica(t, red, w.notary.URL, peers.GateConfig{TrustTTL: ttl}))
	}
	byDigest := func(g *peers.Trustgate) int {
		return getManifest(t, g, repo, revoke.Digest).code
	}
	for _, g := range gs {
		if got := getManifest(t, g, repo, "v2"); got.code != http.StatusOK || got.digest() != revoke.Digest {
			t.Fatalf("before the revocation via %s: %d", g.Host, got.code)
		}
		if c := byDigest(g); c != http.StatusOK {
			t.Fatalf("by digest before the revocation via %s: %d", g.Host, c)
		}
	}
	w.cli.Remove(gun(repo), "v2")
	w.cli.Publish(gun(repo))
	published := time.Now()
	eventually(t, 30*time.Second, "A refuses the revoked digest", func() (bool, string) {
		c := byDigest(gs[0])
		return c == http.StatusNotFound, http.StatusText(c)
	})
	seen := time.Now()
	time.Sleep(ttl)
	// B's and C's states are now older than trust_ttl: the next request refreshes them (in the
	// background: that one request may still be answered from the old state), and the refresh
	// sees the revocation — through A's check in Redis or by asking the notary-server.
	for i, g := range gs[1:] {
		eventually(t, 10*time.Second, fmt.Sprintf("replica %c refuses the revoked digest", 'B'+i), func() (bool, string) {
			c := byDigest(g)
			return c == http.StatusNotFound, http.StatusText(c)
		})
	}
	t.Logf("A refused %v after the publish; B and C both refused %v after A (trust_ttl %v)",
		seen.Sub(published).Round(time.Millisecond), time.Since(seen).Round(time.Millisecond), ttl)
	if d := time.Since(seen); d > ttl+5*time.Second {
		t.Errorf("B and C refused %v after A, want within trust_ttl (%v) plus one refresh", d, ttl)
	}
}

// TestReplicasKillMidRefresh: replica A takes the refresh lease of a cold repository and is
// killed (SIGKILL) while its timestamp fetch hangs; B and C keep serving: A's lease, no longer
// renewed, lapses within `lease`, one of them takes it over and refreshes, the other uses what it
// stored — one more Notary chain, not two.
func TestReplicasKillMidRefresh(t *testing.T) {
	w := newWorld(t)
	red := peers.StartRedis(t)
	const repo = "library/alpine"
	p := w.pushSigned(t, repo, "v1")
	front := startFront(t, w.notary.URL)
	const lease = 2 * time.Second
	cfg := peers.GateConfig{TrustTTL: time.Minute, RedisLease: lease, RedisLockWait: 30 * time.Second}
	var gs []*peers.Trustgate
	for range 3 {
		gs = append(gs, w.replica(t, red, front.URL, cfg))
	}
	stall := front.inject(&fault{path: pathRE(`/_trust/tuf/timestamp\.json$`), kind: stall, delay: time.Minute, times: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	go func() { _, _, _ = pull(ctx, gs[0], repo, "v1") }()
	for deadline := time.Now().Add(30 * time.Second); front.hits(stall) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("A never fetched the timestamp")
		}
	}
	time.Sleep(2 * lease) // A renews its lease while it waits on the stalled fetch
	if err := gs[0].Kill(); err != nil {
		t.Fatal(err)
	}
	mark := front.mark()
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, d, err := pull(ctx, gs[1+i%2], repo, "v1")
			if err != nil || code != http.StatusOK || d != p.Digest {
				mu.Lock()
				bad = append(bad, fmt.Sprintf("%d %s %v", code, d, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if len(bad) > 0 {
		t.Errorf("B and C after A was killed holding the lease: %d of 20 pulls failed: %v", len(bad), bad)
	}
	timestamps := 0
	for _, r := range front.requests(mark) {
		if trustRole(r.Path) == "timestamp" {
			timestamps++
		}
	}
	t.Logf("20 pulls on B and C after A died holding the refresh lease: all done in %v (lease %v); timestamp fetched %d more time(s)",
		took.Round(time.Millisecond), lease, timestamps)
	if timestamps != 1 {
		t.Errorf("timestamp fetched %d times by B and C, want 1 (one takes the lapsed lease over, the other uses its check)", timestamps)
	}
}

// TestReplicasRedisDown: with Redis stopped, replicas keep serving repositories they have seen —
// refreshing from the notary-server against their own floors, which never fall, also after a
// restart from their trust_dir — and answer 503 for a repository they have never seen (they
// cannot know its shared floors). Redis restarted empty gets the floors back from the replicas.
func TestReplicasRedisDown(t *testing.T) {
	w := newWorld(t)
	red := peers.StartRedis(t)
	const repo, never = "library/alpine", "library/never"
	w.pushSigned(t, repo, "v1")
	w.pushSigned(t, never, "v1")
	const ttl = time.Second
	a := w.replica(t, red, w.notary.URL, peers.GateConfig{TrustTTL: ttl})
	b := w.replica(t, red, w.notary.URL, peers.GateConfig{TrustTTL: ttl})
	for _, g := range []*peers.Trustgate{a, b} {
		if got := getManifest(t, g, repo, "v1"); got.code != http.StatusOK {
			t.Fatalf("via %s: %d %s", g.Host, got.code, got.body)
		}
	}
	floor := func(g *peers.Trustgate) int {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join(g.TrustDir, "docker.io", "tuf", strings.ReplaceAll(gun(repo), "/", "%2F"), "versions.json"))
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]int
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		return v["timestamp"]
	}
	before := floor(a)

	if err := red.Stop(); err != nil {
		t.Fatal(err)
	}
	p2 := w.pushSigned(t, repo, "v1")
	for _, g := range []*peers.Trustgate{a, b} {
		eventually(t, 30*time.Second, "serves the new publish with Redis down via "+g.Host, func() (bool, string) {
			got := getManifest(t, g, repo, "v1")
			return got.code == http.StatusOK && got.digest() == p2.Digest, got.digest()
		})
	}
	if now := floor(a); now <= before {
		t.Errorf("A's timestamp floor in trust_dir went from %d to %d with Redis down", before, now)
	}
	got := getManifest(t, a, never, "v1")
	if got.code != http.StatusServiceUnavailable {
		t.Errorf("never-seen repository with Redis down: %d %s, want 503", got.code, got.body)
	}
	if !strings.Contains(strings.Join(a.Log.Lines(), "\n"), "shared trust store unreachable") {
		t.Errorf("A's log does not say why: %s", a.Log.Tail(10))
	}
	// B restarted while Redis is down: what its trust_dir holds it still serves, at its floors.
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	b = w.replica(t, red, w.notary.URL, peers.GateConfig{TrustTTL: ttl, TrustDir: b.TrustDir})
	if got := getManifest(t, b, repo, "v1"); got.code != http.StatusOK || got.digest() != p2.Digest {
		t.Errorf("B restarted with Redis down: %d %s", got.code, got.body)
	}
	if got := getManifest(t, b, never, "v1"); got.code != http.StatusServiceUnavailable {
		t.Errorf("B restarted with Redis down, never-seen repository: %d, want 503", got.code)
	}

	red.Restart(t)
	time.Sleep(ttl)
	if got := getManifest(t, a, repo, "v1"); got.code != http.StatusOK || got.digest() != p2.Digest {
		t.Fatalf("after Redis came back empty: %d %s", got.code, got.body)
	}
	rdb := redis.NewClient(&redis.Options{Addr: red.Addr})
	defer rdb.Close()
	// A's next refresh (started by a request, in the background) writes its floors back.
	eventually(t, 15*time.Second, "A's floors back in Redis", func() (bool, string) {
		getManifest(t, a, repo, "v1")
		v, err := rdb.HGet(context.Background(), "trustgate:docker.io/tuf/"+gun(repo), "v:timestamp").Int()
		return err == nil && v == floor(a), fmt.Sprintf("%d %v, A's %d", v, err, floor(a))
	})
	if got := getManifest(t, b, never, "v1"); got.code != http.StatusOK {
		t.Errorf("never-seen repository with Redis back: %d %s", got.code, got.body)
	}
}
