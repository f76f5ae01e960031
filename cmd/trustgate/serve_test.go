package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestServeWiring starts `serve` in-process: the registry API, /metrics and the opt-in pprof
// answer on their own listeners, and cancelling the context stops it cleanly. Start-up makes no
// upstream or trust-server request, so the configured peers need not exist.
func TestServeWiring(t *testing.T) {
	listen, metrics := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`
listen: %s
metrics: {listen: %s, pprof: true}
trust_dir: %s
upstreams:
  - name: docker.io
    url: http://127.0.0.1:1
    gun_prefix: docker.io
    notary: {url: "http://127.0.0.1:1"}
default_upstream: docker.io
`, listen, metrics, filepath.Join(t.TempDir(), "trust"))
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var logs bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, []string{"--config", file}, &logs) }()

	for _, u := range []string{"http://" + listen + "/v2/", "http://" + metrics + "/metrics", "http://" + metrics + "/debug/pprof/"} {
		var resp *http.Response
		var err error
		for i := 0; i < 100; i++ {
			if resp, err = http.Get(u); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("GET %s: %v (log: %s)", u, err, logs.String())
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s = %d", u, resp.StatusCode)
		}
	}
	if resp, err := http.Get("http://" + listen + "/debug/pprof/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("pprof must not be served on the registry listener")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop after its context was cancelled")
	}
}

// TestServeWithoutConfig: with nothing configured, serve refuses to start rather than run a mirror
// that pulls from a guessed registry or verifies nothing, and says what to do instead.
func TestServeWithoutConfig(t *testing.T) {
	t.Chdir(t.TempDir())
	var logs bytes.Buffer
	err := runServe(context.Background(), nil, &logs)
	if err == nil {
		t.Fatal("serve started with no configuration")
	}
	for _, want := range []string{"upstreams: none configured", "--config", "configs/trustgate.yaml", "trustgate demo"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestServeSaysWhatItDoes: the start-up log names each upstream, its trust server and how roots
// are trusted, where trust state lives and what the policy enforces, and warns about a default
// that does not enforce.
func TestServeSaysWhatItDoes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "trust")
	cfg, err := parseConfig([]byte(minimalConfig+"listen: 127.0.0.1:0\ntrust_dir: "+dir+"\npolicy: {default: {mode: warn}, rules: [{match: 'docker.io/library/*', mode: enforce}]}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	g := startServe(t, cfg)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(g.logs.String(), "trustgate serving") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	out := g.logs.String()
	for _, want := range []string{
		`"msg":"upstream","name":"docker.io","url":"http://127.0.0.1:1"`,
		`"trust_server":"http://127.0.0.1:1","roots":"trust on first use"`,
		`"msg":"trust state","dir":"` + dir,
		`"msg":"policy","default":"warn","rules":"docker.io/library/*=enforce"`,
		`"level":"WARN","msg":"policy: repositories no rule matches are served WITHOUT enforcing signatures"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("start-up log lacks %s:\n%s", want, out)
		}
	}
}

// TestServeWatchConfig: with --watch-config, an edited configuration file is reloaded without a
// signal, and a broken edit is rejected naming its key.
func TestServeWatchConfig(t *testing.T) {
	listen := freePort(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	base := minimalConfig + "listen: " + listen + "\ntrust_dir: " + filepath.Join(dir, "trust") + "\nhealth: {main_listener: true}\n"
	if err := os.WriteFile(file, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, []string{"--config", file, "--watch-config", "50ms"}, logs) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	waitLog := func(want string, mark int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(logs.String()[mark:], want) {
			if time.Now().After(deadline) {
				t.Fatalf("log lacks %q:\n%s", want, logs.String()[mark:])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitLog("trustgate serving", 0)
	mark := len(logs.String())
	if err := os.WriteFile(file, []byte(base+"policy: {default: {mode: deny}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitLog(`"msg":"configuration reloaded","generation":2`, mark)
	waitLog(`"msg":"policy","default":"deny"`, mark)
	mark = len(logs.String())
	if err := os.WriteFile(file, []byte(base+"trust_ttl: 0s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitLog("reload rejected", mark)
	waitLog("trust_ttl: must be positive", mark)
}
