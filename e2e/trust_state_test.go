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
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

// notaryTamperFront is an attacker between trustgate and the real notary-server: it passes requests
// through while recording every metadata file served, and can fail snapshot fetches or replay
// what it recorded earlier.
type notaryTamperFront struct {
	*httptest.Server
	mu            sync.Mutex
	recorded      map[string][]byte // request path → body of a 200, as served
	replay        map[string][]byte // when set, paths in it are answered from it
	failSnapshots bool
	failed        int      // snapshot requests answered 503
	seen          []string // request paths, in order
}

func newNotaryTamperFront(t *testing.T, notaryURL string) *notaryTamperFront {
	t.Helper()
	u, err := url.Parse(notaryURL)
	if err != nil {
		t.Fatal(err)
	}
	f := &notaryTamperFront{recorded: map[string][]byte{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method != http.MethodGet || resp.StatusCode != http.StatusOK {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		f.mu.Lock()
		f.recorded[resp.Request.URL.Path] = b
		f.mu.Unlock()
		return nil
	}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.seen = append(f.seen, r.URL.Path)
		body, replayed := f.replay[r.URL.Path]
		fail := f.failSnapshots && strings.Contains(r.URL.Path, "/_trust/tuf/snapshot")
		if fail {
			f.failed++
		}
		f.mu.Unlock()
		switch {
		case fail:
			http.Error(w, "snapshot unavailable", http.StatusServiceUnavailable)
		case replayed:
			_, _ = w.Write(body)
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

// snapshot returns a copy of everything recorded so far (the files of the current state).
func (f *notaryTamperFront) snapshot() map[string][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string][]byte, len(f.recorded))
	for p, b := range f.recorded {
		out[p] = bytes.Clone(b)
	}
	return out
}

func (f *notaryTamperFront) set(failSnapshots bool, replay map[string][]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failSnapshots, f.replay = failSnapshots, replay
}

func (f *notaryTamperFront) counts() (failed int, seen []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed, append([]string(nil), f.seen...)
}

// notaryClient is the real notary v0.7.0 CLI as a *reader* (docker's DCT client code) with a
// trust_dir of its own, pointed at serverURL: notary's verdict beside trustgate's.
type notaryClient struct {
	bin, config string
}

func newNotaryClient(t *testing.T, serverURL string, pinCerts map[string][]string) *notaryClient {
	t.Helper()
	dir := t.TempDir()
	c := map[string]any{
		"trust_dir":     filepath.Join(dir, "trust"),
		"remote_server": map[string]any{"url": serverURL},
	}
	if pinCerts != nil {
		c["trust_pinning"] = map[string]any{"certs": pinCerts, "disable_tofu": true}
	}
	cfg, _ := json.Marshal(c)
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	return &notaryClient{bin: peers.Binary(t, "notary"), config: path}
}

// lookup runs `notary lookup gun tag` and returns its output and error.
func (n *notaryClient) lookup(gun, tag string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, n.bin, "-c", n.config, "lookup", gun, tag).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestPartialUpdateReplay is issue #7's first attack against the real notary-server: trustgate
// pulls (timestamp v1); the publisher re-signs (v2); trustgate verifies timestamp v2 but the
// snapshot fetch fails; the attacker then replays the v1 files. notary refuses ("lower than
// current version"); trustgate must too (503, never the old digest), also after a restart from
// the same trust_dir, and recover once the genuine files are served again.
func TestPartialUpdateReplay(t *testing.T) {
	w := newWorld(t)
	const repo = "library/alpine"
	p1 := w.pushSigned(t, repo, "signed")
	front := newNotaryTamperFront(t, w.notary.URL)
	nc := newNotaryClient(t, front.URL, nil)

	trustDir := filepath.Join(t.TempDir(), "trust")
	cfg := peers.GateConfig{RegistryURL: w.reg.URL, NotaryURL: front.URL, TrustDir: trustDir, TrustTTL: time.Second}
	g := peers.StartTrustgate(t, trustgateBin, cfg)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("trustgate log, last lines:\n%s", g.Log.Tail(60))
		}
	})
	if got := getManifest(t, g, repo, "signed"); got.code != 200 || got.digest() != p1.Digest {
		t.Fatalf("first pull: %d %s, want 200 %s", got.code, got.digest(), p1.Digest)
	}
	if out, err := nc.lookup(gun(repo), "signed"); err != nil || !strings.Contains(out, p1.Hex()) {
		t.Fatalf("notary lookup, first pull: %v\n%s", err, out)
	}
	v1 := front.snapshot()
	if _, ok := v1["/v2/"+gun(repo)+"/_trust/tuf/timestamp.json"]; !ok {
		t.Fatalf("front recorded no timestamp: %v", v1)
	}

	// A legitimate publish; trustgate and notary learn its timestamp, but the snapshot fetch fails.
	p2 := w.pushSigned(t, repo, "signed")
	front.set(true, nil)
	eventually(t, 30*time.Second, "partial update fails (snapshot 503)", func() (bool, string) {
		got := getManifest(t, g, repo, "signed")
		failed, _ := front.counts()
		return got.code == http.StatusServiceUnavailable && failed > 0, string(got.body)
	})
	if out, err := nc.lookup(gun(repo), "signed"); err == nil {
		t.Fatalf("notary lookup with the snapshot failing succeeded: %s", out)
	}

	// The attacker replays the first publish.
	front.set(false, v1)
	_, seenBefore := front.counts()
	out, err := nc.lookup(gun(repo), "signed")
	t.Logf("notary on the replay: %v: %s", err, out)
	if err == nil {
		t.Fatalf("notary accepted the replay: %s", out)
	}
	check := func(g *peers.Trustgate, when string) {
		t.Helper()
		got := getManifest(t, g, repo, "signed")
		t.Logf("trustgate on the replay (%s): %d %s", when, got.code, got.body)
		if got.code != http.StatusServiceUnavailable || got.digest() == p1.Digest || bytes.Contains(got.body, []byte("schemaVersion")) {
			t.Errorf("replay of the first publish %s: %d %s; want 503 without a manifest (notary refuses)", when, got.code, got.digest())
		}
	}
	check(g, "same process")
	if _, seen := front.counts(); len(seen) == len(seenBefore) {
		t.Fatal("trustgate asked the front nothing during the replay: the check proves nothing")
	}
	if err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	g2 := peers.StartTrustgate(t, trustgateBin, cfg)
	check(g2, "after a restart from the same trust_dir")

	// The genuine files again: both recover.
	front.set(false, nil)
	eventually(t, 30*time.Second, "serves the genuine publish again", func() (bool, string) {
		got := getManifest(t, g2, repo, "signed")
		return got.code == 200 && got.digest() == p2.Digest, got.digest()
	})
	if out, err := nc.lookup(gun(repo), "signed"); err != nil || !strings.Contains(out, p2.Hex()) {
		t.Errorf("notary lookup after the attack: %v\n%s", err, out)
	}
}

// TestPinnedRootRotation: with trust_pinning.certs set to the repository's root key, a root
// rotation made with the notary CLI (the new root signed by the old key) is followed, as the
// notary client follows it with the same pin; with every_root it is refused (503) until the new
// key is pinned.
func TestPinnedRootRotation(t *testing.T) {
	w := newWorld(t)
	const repo = "library/pinned"
	p1 := w.pushSigned(t, repo, "v1")
	pins := map[string][]string{gun(repo): rootKeyIDs(t, w.notary.URL, gun(repo))}
	nc := newNotaryClient(t, w.notary.URL, pins)
	if out, err := nc.lookup(gun(repo), "v1"); err != nil || !strings.Contains(out, p1.Hex()) {
		t.Fatalf("notary lookup with the pin: %v\n%s", err, out)
	}
	dflt := w.gate(t, peers.GateConfig{PinCerts: pins, DisableTOFU: true, TrustTTL: time.Second})
	strict := w.gate(t, peers.GateConfig{PinCerts: pins, DisableTOFU: true, EveryRoot: true, TrustTTL: time.Second})
	for _, g := range []*peers.Trustgate{dflt, strict} {
		if got := getManifest(t, g, repo, "v1"); got.code != 200 || got.digest() != p1.Digest {
			t.Fatalf("before the rotation: %d %s", got.code, got.body)
		}
	}

	w.cli.RotateRoot(gun(repo))
	p2 := w.pushSigned(t, repo, "v2")
	if out, err := nc.lookup(gun(repo), "v2"); err != nil || !strings.Contains(out, p2.Hex()) {
		t.Fatalf("notary lookup after the rotation, pinned to the old key: %v\n%s", err, out)
	}
	eventually(t, 30*time.Second, "default pinning follows the rotation", func() (bool, string) {
		got := getManifest(t, dflt, repo, "v2")
		return got.code == 200 && got.digest() == p2.Digest, string(got.body)
	})
	eventually(t, 30*time.Second, "every_root refuses the unpinned new root", func() (bool, string) {
		got := getManifest(t, strict, repo, "v2")
		return got.code == http.StatusServiceUnavailable && bytes.Contains(got.body, []byte("pinning")), string(got.body)
	})
}
