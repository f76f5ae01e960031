package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// minimalConfig names no trust_dir, as a first configuration often doesn't.
const minimalConfig = `
upstreams:
  - name: docker.io
    url: http://127.0.0.1:1
    gun_prefix: docker.io
    notary: {url: "http://127.0.0.1:1"}
`

// TestTrustDirDefaultIsPersistent: with no trust_dir, verified state goes to ./trust (as the
// README and the example configuration say); memory-only is an explicit ":memory:"; an empty
// value is an error rather than a silent memory-only.
func TestTrustDirDefaultIsPersistent(t *testing.T) {
	cfg, err := parseConfig([]byte(minimalConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TrustDir != "./trust" {
		t.Errorf("default trust_dir = %q, want ./trust", cfg.TrustDir)
	}

	for _, tc := range []struct{ name, yaml, flag, env, want, err string }{
		{name: "memory in the file", yaml: minimalConfig + "trust_dir: \":memory:\"\n", want: memoryTrustDir},
		{name: "memory from the environment", yaml: minimalConfig, env: ":memory:", want: memoryTrustDir},
		{name: "memory flag", yaml: minimalConfig, flag: ":memory:", want: memoryTrustDir},
		{name: "directory flag beats file", yaml: minimalConfig + "trust_dir: /a\n", flag: "/b", want: "/b"},
		{name: "empty is not memory", yaml: minimalConfig + "trust_dir: \"\"\n", err: `trust_dir: is empty`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("TRUSTGATE_TRUST_DIR", tc.env)
			}
			fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
			fs.String("trust-dir", "", "")
			if tc.flag != "" {
				if err := fs.Parse([]string{"--trust-dir=" + tc.flag}); err != nil {
					t.Fatal(err)
				}
			}
			cfg, err := parseConfig([]byte(tc.yaml), changedFlags(fs))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), memoryTrustDir) {
					t.Fatalf("got %v, want an error containing %q that names %q", err, tc.err, memoryTrustDir)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.TrustDir != tc.want {
				t.Errorf("trust_dir = %q, want %q", cfg.TrustDir, tc.want)
			}
		})
	}
}

// TestServeSaysWhereTrustStateLives: serve with the default trust_dir creates ./trust in its
// working directory and logs its absolute path; ":memory:" logs a warning instead.
func TestServeSaysWhereTrustStateLives(t *testing.T) {
	for _, tc := range []struct {
		name, extra string
		persistent  bool
	}{
		{name: "default", persistent: true},
		{name: "memory", extra: "trust_dir: \":memory:\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wd := t.TempDir()
			t.Chdir(wd)
			listen := freePort(t)
			file := filepath.Join(t.TempDir(), "c.yaml")
			cfg := fmt.Sprintf("listen: %s\nlog: {format: text}\n%s%s", listen, minimalConfig, tc.extra)
			if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var logs syncBuffer
			done := make(chan error, 1)
			go func() { done <- runServe(ctx, []string{"--config", file}, &logs) }()
			waitServing(t, "http://"+listen+"/v2/", &logs)
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("serve: %v", err)
			}

			out := logs.String()
			trust := filepath.Join(wd, "trust")
			_, statErr := os.Stat(trust)
			if tc.persistent {
				if statErr != nil {
					t.Errorf("default trust_dir %s not created: %v", trust, statErr)
				}
				if !strings.Contains(out, "level=INFO msg=\"trust state\" dir="+trust) {
					t.Errorf("start-up log does not say trust state lives in %s:\n%s", trust, out)
				}
				return
			}
			if statErr == nil {
				t.Errorf(":memory: created %s", trust)
			}
			if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "memory only") {
				t.Errorf("memory-only trust state without a warning:\n%s", out)
			}
		})
	}
}

// TestResolveUsesTheDefaultTrustDir: `trustgate resolve` persists where serve does.
func TestResolveUsesTheDefaultTrustDir(t *testing.T) {
	wd := t.TempDir()
	t.Chdir(wd)
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte(minimalConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	// The trust server does not exist: resolve fails, but only after choosing its trust_dir.
	if err := runResolve(context.Background(), []string{"--config", file, "alpine:1"}, &stdout, &stderr); err == nil {
		t.Fatalf("resolve against a dead trust server succeeded: %s", stdout.String())
	}
	trust := filepath.Join(wd, "trust")
	if _, err := os.Stat(trust); err != nil {
		t.Errorf("resolve did not use the default trust_dir %s: %v\n%s", trust, err, stderr.String())
	}
	if !strings.Contains(stderr.String(), trust) {
		t.Errorf("resolve does not say where trust state lives:\n%s", stderr.String())
	}
}

func waitServing(t *testing.T, url string, logs *syncBuffer) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("serve never answered %s; log:\n%s", url, logs.String())
}

// syncBuffer is a bytes.Buffer that serve's logger and the test can use at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
