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
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

// readyz is /readyz's body as an operator's tooling reads it.
type readyz struct {
	Ready  bool `json:"ready"`
	Checks []struct {
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	} `json:"checks"`
}

func getReadyz(t *testing.T, base string) (int, readyz, string) {
	t.Helper()
	r := get(t, http.MethodGet, base+"/readyz")
	var body readyz
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("/readyz %d %q: %v", r.code, r.body, err)
	}
	return r.code, body, string(r.body)
}

func (r readyz) ok(name string) bool {
	for _, c := range r.Checks {
		if c.Name == name {
			return c.OK
		}
	}
	return false
}

// metricsURL is the metrics listener trustgate logged at start.
func metricsURL(t *testing.T, g *peers.Trustgate) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	line, err := g.Log.WaitFor(ctx, func(l string) bool { return strings.Contains(l, `"msg":"trustgate serving"`) })
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Addr string `json:"metrics_addr"`
	}
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Addr == "" {
		t.Fatalf("no metrics_addr in %s: %v", line, err)
	}
	return "http://" + rec.Addr
}

// TestReadyzFollowsTrustServer: /readyz (on the metrics listener and, when asked, the registry
// listener) turns 503 naming the trust server when the real notary-server stops, while /healthz
// stays 200, and turns 200 again when it is back.
func TestReadyzFollowsTrustServer(t *testing.T) {
	w := newWorld(t)
	w.pushSigned(t, "library/alpine", "3")
	g := w.gate(t, peers.GateConfig{LogLevel: "info",
		Extra: "metrics: {listen: 127.0.0.1:0}\nhealth: {main_listener: true, probe_interval: 1s}\n"})
	bases := []string{metricsURL(t, g), g.URL}

	state := func(want bool) func() (bool, string) {
		return func() (bool, string) {
			var states []string
			all := true
			for _, b := range bases {
				code, r, body := getReadyz(t, b)
				good := r.Ready == want && (code == 200) == want && r.ok("trust_server docker.io") == want &&
					r.ok("upstream docker.io") && r.ok("trust_dir") && r.ok("config")
				all = all && good
				states = append(states, fmt.Sprintf("%s: %d %s", b, code, body))
			}
			return all, strings.Join(states, "\n")
		}
	}
	eventually(t, 15*time.Second, "ready with every peer up", state(true))
	if r := getManifest(t, g, "library/alpine", "3"); r.code != 200 {
		t.Fatalf("signed pull: %d %s", r.code, r.body)
	}

	if err := w.notary.Stop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "not ready with the trust server down", state(false))
	for _, b := range bases {
		if r := get(t, http.MethodGet, b+"/healthz"); r.code != 200 {
			t.Errorf("%s/healthz = %d while a dependency is down", b, r.code)
		}
	}
	w.notary.Restart()
	eventually(t, 15*time.Second, "ready again with the trust server back", state(true))
}

// TestReloadDuringBlobStream: SIGHUP with a broken configuration keeps the old one serving (the
// log names the key); SIGHUP with a new policy changes a decision at once, while a 1 GiB layer
// that started streaming before both reloads completes with its digest intact.
func TestReloadDuringBlobStream(t *testing.T) {
	const layerSize = 1 << 30
	w := newWorld(t)
	big := peers.PushBigImage(t, w.reg, "library/big", "v1", layerSize, 7)
	w.sign(t, "library/big", "v1", big)
	w.pushSigned(t, "library/app", "v1")
	cfg := peers.GateConfig{LogLevel: "info"}
	g := w.gate(t, cfg)

	if r := getManifest(t, g, "library/big", "v1"); r.code != 200 || r.digest() != big.Digest {
		t.Fatalf("GET big:v1 = %d %s", r.code, r.body)
	}
	layer := big.Layers[0]
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Get(g.URL + "/v2/library/big/blobs/" + layer.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET blob: %s", resp.Status)
	}
	h := sha256.New()
	if _, err := io.CopyN(h, resp.Body, 1<<20); err != nil {
		t.Fatalf("first MiB: %v", err)
	}

	reload := func(yaml, outcome string) string {
		t.Helper()
		if err := os.WriteFile(g.ConfigPath, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		mark := g.Log.Len()
		if err := syscall.Kill(g.Pid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		line := ""
		eventually(t, 30*time.Second, "reload logged", func() (bool, string) {
			for _, l := range g.Log.Since(mark) {
				if strings.Contains(l, "configuration reloaded") || strings.Contains(l, "reload rejected") {
					line = l
					return true, ""
				}
			}
			return false, strings.Join(g.Log.Since(mark), "\n")
		})
		if !strings.Contains(line, outcome) {
			t.Fatalf("reload: got %s, want %q", line, outcome)
		}
		return line
	}

	cfg.RegistryURL, cfg.NotaryURL, cfg.TrustDir = w.reg.URL, w.notary.URL, g.TrustDir
	broken := strings.Replace(cfg.YAML(), "trust_ttl: 30s", "trust_ttl: -1s", 1)
	if broken == cfg.YAML() {
		t.Fatal("test bug: no trust_ttl line to break")
	}
	if line := reload(broken, "reload rejected"); !strings.Contains(line, "trust_ttl") {
		t.Errorf("rejection does not name the key: %s", line)
	}
	if r := getManifest(t, g, "library/app", "v1"); r.code != 200 {
		t.Errorf("after a rejected reload app:v1 = %d %s, want 200 (old configuration)", r.code, r.body)
	}

	cfg.Rules = []peers.GateRule{{Match: "docker.io/library/app", Mode: "deny"}}
	reload(cfg.YAML(), "configuration reloaded")
	if r := getManifest(t, g, "library/app", "v1"); r.code != http.StatusForbidden {
		t.Errorf("after reloading a deny rule app:v1 = %d %s, want 403", r.code, r.body)
	}

	n, err := io.Copy(h, resp.Body)
	n += 1 << 20
	if err != nil {
		t.Fatalf("blob stream broke after %d bytes: %v", n, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); n != layer.Size || got != layer.Digest {
		t.Errorf("blob across reloads: %d bytes hashing to %s; want %d bytes %s", n, got, layer.Size, layer.Digest)
	}
}
