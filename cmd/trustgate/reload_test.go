package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/demo"
	"github.com/trustgate/trustgate/policy"
)

// gateUnderTest is serve running in-process with a reload channel the test drives.
type gateUnderTest struct {
	url    string
	logs   *syncBuffer
	reload chan os.Signal
	next   chan func() (*Config, error)
	done   chan error
}

func startServe(t *testing.T, cfg *Config) *gateUnderTest {
	t.Helper()
	g := &gateUnderTest{logs: &syncBuffer{}, reload: make(chan os.Signal), next: make(chan func() (*Config, error), 1), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan net.Addr, 1)
	load := func() (*Config, error) { return (<-g.next)() }
	go func() {
		g.done <- serve(ctx, cfg, g.logs, serveOptions{ready: func(a net.Addr) { addr <- a }, reload: g.reload, load: load, source: "test"})
	}()
	select {
	case a := <-addr:
		g.url = "http://" + a.String()
	case err := <-g.done:
		t.Fatalf("serve: %v\n%s", err, g.logs)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-g.done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return g
}

// reloadWith makes serve reload, its load returning cfg and err, and waits for the outcome in the log.
func (g *gateUnderTest) reloadWith(t *testing.T, cfg *Config, err error) string {
	t.Helper()
	mark := len(g.logs.String())
	g.next <- func() (*Config, error) { return cfg, err }
	g.reload <- os.Interrupt
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out := g.logs.String()[mark:]
		if strings.Contains(out, "configuration reloaded") || strings.Contains(out, "reload rejected") {
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no reload outcome logged:\n%s", g.logs.String()[mark:])
	return ""
}

func (g *gateUnderTest) status(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(g.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReloadInProcess: a configuration that fails to parse, to build or to apply without a restart
// is rejected naming its key and the running one keeps deciding; a good one changes the decision.
func TestReloadInProcess(t *testing.T) {
	ctx := context.Background()
	env, err := demo.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	mk := func(mut func(*Config)) *Config {
		cfg, err := demoConfig(env, "127.0.0.1:0", filepath.Join(t.TempDir(), "trust"), "info")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Health.MainListener = true
		if mut != nil {
			mut(cfg)
		}
		return cfg
	}
	base := mk(nil)
	g := startServe(t, base)
	signed := "/v2/" + env.Signed.Repo + "/manifests/" + env.Signed.Tag
	if code, body := g.status(t, signed); code != 200 {
		t.Fatalf("GET %s = %d %s", signed, code, body)
	}

	_, parseErr := parseConfig([]byte(minimalConfig+"trust_ttl: -1s\n"), nil)
	badCert := mk(func(c *Config) {
		c.TLS.CertFile, c.TLS.KeyFile = "/nonexistent/cert.pem", "/nonexistent/key.pem"
		c.TrustDir, c.Listen = base.TrustDir, base.Listen
	})
	moved := mk(func(c *Config) { c.TrustDir = base.TrustDir; c.Listen = "127.0.0.1:1" })
	badPolicy := mk(func(c *Config) {
		c.TrustDir, c.Listen = base.TrustDir, base.Listen
		c.Policy.Rules = []policy.RuleConfig{{Match: demo.GUNPrefix + "/**", Mode: "lenient"}}
	})
	for _, tc := range []struct {
		name    string
		cfg     *Config
		err     error
		wantKey string
	}{
		{"invalid value", nil, parseErr, "trust_ttl"},
		{"restart-only key", moved, nil, "listen: changed"},
		{"TLS switched on", badCert, nil, "tls (serving HTTPS or not)"},
		{"policy that does not compile", badPolicy, nil, "policy.rules[0]"},
	} {
		out := g.reloadWith(t, tc.cfg, tc.err)
		if !strings.Contains(out, "reload rejected") || !strings.Contains(out, tc.wantKey) {
			t.Errorf("%s: log does not reject naming %q:\n%s", tc.name, tc.wantKey, out)
		}
		if code, body := g.status(t, signed); code != 200 {
			t.Errorf("%s: after the rejected reload GET %s = %d %s", tc.name, signed, code, body)
		}
	}
	if _, body := g.status(t, "/readyz"); !strings.Contains(body, "the last reload was rejected") {
		t.Errorf("/readyz does not report the rejected reload:\n%s", body)
	}

	deny := mk(func(c *Config) {
		c.TrustDir = base.TrustDir
		c.Listen = base.Listen
		c.Policy.Rules = []policy.RuleConfig{{Match: demo.GUNPrefix + "/" + env.Signed.Repo, Mode: policy.Deny}}
	})
	if out := g.reloadWith(t, deny, nil); !strings.Contains(out, "configuration reloaded") {
		t.Fatalf("good configuration not applied:\n%s", out)
	}
	if code, body := g.status(t, signed); code != http.StatusForbidden {
		t.Errorf("after reloading a deny rule GET %s = %d %s, want 403", signed, code, body)
	}
	_, body := g.status(t, "/readyz")
	var r readiness
	if err := json.Unmarshal([]byte(body), &r); err != nil || len(r.Checks) == 0 {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	if !strings.Contains(r.Checks[0].Detail, "generation 2") || strings.Contains(body, "rejected") {
		t.Errorf("/readyz after a good reload: %s", body)
	}
}

// TestGenerationDrain: a retired generation is closed only when its last request returns, and a
// request never runs on a closed one.
func TestGenerationDrain(t *testing.T) {
	cfg, err := parseConfig([]byte(minimalConfig+"trust_dir: \":memory:\"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := build(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	closed := 0
	b.stop = func() { closed++ }
	g := &generation{built: b}
	for range 2 {
		if !g.acquire() {
			t.Fatal("acquire on an open generation failed")
		}
	}
	g.retire()
	g.release()
	if closed != 0 {
		t.Fatal("closed with a request still running")
	}
	if !g.acquire() { // a request that loaded the pointer just before the swap still runs
		t.Fatal("acquire on a retired, draining generation failed")
	}
	g.release()
	g.release()
	if closed != 1 {
		t.Fatalf("closed %d times after the last request, want 1", closed)
	}
	if g.acquire() {
		t.Error("acquire on a closed generation succeeded")
	}
}
