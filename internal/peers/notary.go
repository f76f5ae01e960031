package peers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Notary is a notary-server v0.7.0 with the local trust service (in-memory ED25519 timestamp and
// snapshot keys), memory storage and plain HTTP — the setup in research/notary.md §6.1.
//
// Memory storage means Restart comes back EMPTY: all GUNs, and the server-held timestamp/snapshot
// keys, are gone (v0.7.0 has no embedded persistent backend without cgo sqlite). Tests that stop the
// server therefore use a Notary of their own.
type Notary struct {
	URL  string // http://127.0.0.1:port
	Host string

	tb     testing.TB
	bin    string
	dir    string
	config string

	mu   sync.Mutex
	proc *Process
	logs []*Log // one per process generation, so counts survive Restart
}

// StartNotary starts notary-server and waits until its health endpoint answers.
func StartNotary(tb testing.TB) *Notary {
	tb.Helper()
	n := &Notary{tb: tb, bin: Binary(tb, "notary-server"), dir: tb.TempDir()}
	n.config = filepath.Join(n.dir, "server-config.json")
	if err := n.start("127.0.0.1:0"); err != nil {
		tb.Fatalf("peers: %v", err)
	}
	tb.Cleanup(func() {
		if err := n.Stop(); err != nil {
			tb.Logf("peers: %v", err)
		}
	})
	return n
}

func (n *Notary) start(addr string) error {
	cfg := map[string]any{
		"server":        map[string]any{"http_addr": addr},
		"trust_service": map[string]any{"type": "local"},
		"logging":       map[string]any{"level": "debug"},
		"storage":       map[string]any{"backend": "memory"},
	}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(n.config, b, 0o644); err != nil {
		return err
	}
	cmd := exec.Command(n.bin, "-config", n.config, "-logf", "json")
	cmd.Dir = n.dir
	cmd.Env = cleanEnv("NOTARY_SERVER_")
	p, err := startProcess(fmt.Sprintf("notary-server.%d", len(n.logs)), n.dir, cmd)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := WaitListen(ctx, p)
	if err != nil {
		_ = p.Stop()
		return fmt.Errorf("notary-server: %w", err)
	}
	url := "http://" + got
	if err := waitHTTP(ctx, url+"/_notary_server/health", http.StatusOK); err != nil {
		_ = p.Stop()
		return fmt.Errorf("notary-server: %w\n%s", err, p.Log.Tail(30))
	}
	n.mu.Lock()
	n.proc, n.URL, n.Host = p, url, got
	n.logs = append(n.logs, p.Log)
	n.mu.Unlock()
	return nil
}

// Stop stops the server (idempotent). The URL then refuses connections.
func (n *Notary) Stop() error {
	n.mu.Lock()
	p := n.proc
	n.mu.Unlock()
	if p == nil {
		return nil
	}
	if err := p.Stop(); err != nil {
		return fmt.Errorf("notary-server: %w", err)
	}
	return nil
}

// Restart stops the server and starts a new one on the same address. Its storage is empty (see Notary).
func (n *Notary) Restart() {
	n.tb.Helper()
	if err := n.Stop(); err != nil {
		n.tb.Fatalf("peers: %v", err)
	}
	if err := n.start(n.Host); err != nil {
		n.tb.Fatalf("peers: restarting: %v", err)
	}
}

// Pid is the current server process id.
func (n *Notary) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc.Pid()
}

// Log is the current server process's output.
func (n *Notary) Log() *Log {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc.Log
}

// NotaryRequest is one "response completed" record of notary-server's JSON log.
type NotaryRequest struct {
	Method string `json:"http.request.method"`
	URI    string `json:"http.request.uri"`
	Status int    `json:"http.response.status"`
	Agent  string `json:"http.request.useragent"`
}

// Requests lists the requests served so far, across restarts. Tests use it to show that trust data is
// cached (no second timestamp fetch within trust_ttl) or re-fetched (after it).
func (n *Notary) Requests() []NotaryRequest {
	n.mu.Lock()
	logs := append([]*Log(nil), n.logs...)
	n.mu.Unlock()
	var out []NotaryRequest
	for _, l := range logs {
		out = append(out, jsonRecords[NotaryRequest](l.Lines(), "response completed")...)
	}
	return out
}

// CountRequests counts served requests for which match is true.
func (n *Notary) CountRequests(match func(NotaryRequest) bool) int {
	c := 0
	for _, r := range n.Requests() {
		if match(r) {
			c++
		}
	}
	return c
}
