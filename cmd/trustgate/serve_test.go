package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
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
