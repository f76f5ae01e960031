package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

// server is a process under measurement (trustgate or the distribution proxy). Unlike
// peers.StartProcess, its output goes straight to a file: under load trustgate writes one decision
// record per request, and piping that through the driver (which keeps peer output in memory)
// would spend the driver's — and so the measured system's — CPU on the benchmark's own logging.
type server struct {
	URL, Host string
	LogPath   string
	DataDir   string // distribution proxy: its storage root
	cmd       *exec.Cmd
	done      chan struct{}
}

func (s *server) Pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM to this process only, then SIGKILL after a grace period.
func (s *server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

func startServer(tb *scope, name, dir string, cmd *exec.Cmd, envDrop string) *server {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envDrop) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		tb.Fatalf("starting %s: %v", name, err)
	}
	s := &server{LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(s.done) }()
	tb.Cleanup(s.stop)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for s.Host == "" {
		if addrs, err := peers.ListenAddrs(s.Pid()); err == nil && len(addrs) > 0 {
			s.Host = addrs[0]
			break
		}
		if err := s.wait(ctx); err != nil {
			tb.Fatalf("%s did not listen: %v\n%s", name, err, tail(logPath))
		}
	}
	s.URL = "http://" + s.Host
	for {
		resp, err := http.Get(s.URL + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if err := s.wait(ctx); err != nil {
			tb.Fatalf("%s did not answer /v2/: %v\n%s", name, err, tail(logPath))
		}
	}
}

func (s *server) wait(ctx context.Context) error {
	select {
	case <-s.done:
		return errors.New("exited")
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(20 * time.Millisecond):
		return nil
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// gate starts a fresh `trustgate serve` (empty trust dir, empty caches) with the configuration
// the e2e tests use. upstream and notaryURL choose whether it talks to the peers directly or
// through the counting proxies.
func (w *world) gate(tb *scope, upstream, notaryURL string) *server {
	return w.gateWith(tb, upstream, notaryURL, "")
}

// gateWith is gate with more top-level YAML in the configuration.
func (w *world) gateWith(tb *scope, upstream, notaryURL, extraYAML string) *server {
	return w.gateTTL(tb, upstream, notaryURL, 0, nil, extraYAML)
}

// gateTTL is gateWith with trust_ttl set (0 = the configuration's default of 30s) and policy
// rules.
func (w *world) gateTTL(tb *scope, upstream, notaryURL string, ttl time.Duration, rules []peers.GateRule, extraYAML string) *server {
	dir := tb.TempDir()
	cfg := peers.GateConfig{
		RegistryURL: upstream,
		NotaryURL:   notaryURL,
		TrustDir:    filepath.Join(dir, "trust"),
		TrustTTL:    ttl,
		Rules:       rules,
		LogLevel:    "info", // the documented default: one decision record per manifest request
	}
	path := filepath.Join(dir, "trustgate.yaml")
	yaml := cfg.YAML()
	for _, y := range []string{w.gateYAML, extraYAML} {
		if y != "" {
			yaml += y + "\n"
		}
	}
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		tb.Fatal(err)
	}
	return startServer(tb, "trustgate", dir, exec.Command(w.trustgate, "serve", "--config", path), "TRUSTGATE_")
}

const distProxyConfig = `version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
http:
  addr: 127.0.0.1:0
proxy:
  remoteurl: %q
`

// startDistProxy starts distribution's registry in proxy (pull-through cache) mode with empty
// storage in front of remote. Otherwise stock settings (access log on, like the upstream), so it is
// compared as shipped.
func startDistProxy(tb *scope, remote string) *server {
	dir := tb.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, distProxyConfig, filepath.Join(dir, "data"), remote), 0o644); err != nil {
		tb.Fatal(err)
	}
	s := startServer(tb, "registry-proxy", dir, exec.Command(peers.Binary(tb, "registry"), "serve", cfg), "REGISTRY_")
	s.DataDir = filepath.Join(dir, "data")
	return s
}

// waitCached waits until the distribution proxy has committed blob dgst to its storage.
// distribution verifies and commits a proxied blob only after the client has
// every byte, so a pull right after the first one can still go upstream.
func (s *server) waitCached(dgst string, limit time.Duration) error {
	hex := strings.TrimPrefix(dgst, "sha256:")
	path := filepath.Join(s.DataDir, "docker", "registry", "v2", "blobs", "sha256", hex[:2], hex, "data")
	start := time.Now()
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Since(start) > limit {
			return fmt.Errorf("blob %s not in the proxy's storage after %v", dgst, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
