package peers

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// Registry is a distribution v3 `registry` serving filesystem storage on loopback.
type Registry struct {
	URL  string // http://127.0.0.1:port
	Host string // 127.0.0.1:port, the reference prefix for crane/skopeo/docker
	Dir  string // storage root
	*Process
}

const registryConfig = `version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:0
`

// StartRegistry starts `registry serve` with a generated config and waits until /v2/ answers.
func StartRegistry(tb testing.TB) *Registry {
	tb.Helper()
	bin := Binary(tb, "registry")
	dir := tb.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, registryConfig, data), 0o644); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Dir = dir
	// The registry reads REGISTRY_* overrides from the environment; a developer's shell must not leak in.
	cmd.Env = cleanEnv("REGISTRY_")
	// registry v3 exports traces to localhost:4318 unless told not to.
	cmd.Env = append(cmd.Env, "OTEL_TRACES_EXPORTER=none", "OTEL_SDK_DISABLED=true")
	p := StartProcess(tb, "registry", dir, cmd)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr, err := WaitListen(ctx, p)
	if err != nil {
		tb.Fatalf("peers: registry: %v", err)
	}
	r := &Registry{URL: "http://" + addr, Host: addr, Dir: data, Process: p}
	if err := waitHTTP(ctx, r.URL+"/v2/", http.StatusOK); err != nil {
		tb.Fatalf("peers: registry: %v\n%s", err, p.Log.Tail(30))
	}
	return r
}

// AccessEntry is one line of the registry's combined-format access log.
type AccessEntry struct {
	Method, Path string
	Status       int
	Bytes        int64
	UserAgent    string
}

// `127.0.0.1 - - [23/Nov/2026:12:14:28 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/7.88.1"`
var accessLine = regexp.MustCompile(`^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+|-) "[^"]*" "(.*)"$`)

// Requests parses the access log so far. Tests use it to count what reached upstream (e.g. that a
// cached manifest was not fetched twice, or that an unsigned tag never caused an upstream fetch).
func (r *Registry) Requests() []AccessEntry {
	return parseAccess(r.Log.Lines())
}

// RequestsSince parses the access log lines after mark (a value of r.Log.Len()).
func (r *Registry) RequestsSince(mark int) []AccessEntry {
	return parseAccess(r.Log.Since(mark))
}

func parseAccess(lines []string) []AccessEntry {
	var out []AccessEntry
	for _, l := range lines {
		m := accessLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		st, _ := strconv.Atoi(m[3])
		n, _ := strconv.ParseInt(m[4], 10, 64)
		out = append(out, AccessEntry{Method: m[1], Path: m[2], Status: st, Bytes: n, UserAgent: m[5]})
	}
	return out
}

// CountRequests counts access-log entries (so far) for which match is true.
func (r *Registry) CountRequests(match func(AccessEntry) bool) int {
	n := 0
	for _, e := range r.Requests() {
		if match(e) {
			n++
		}
	}
	return n
}

func waitHTTP(ctx context.Context, url string, want int) error {
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
			last = fmt.Errorf("GET %s: %s", url, resp.Status)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// cleanEnv is os.Environ without variables that start with any of the prefixes.
func cleanEnv(prefixes ...string) []string {
	var env []string
outer:
	for _, kv := range os.Environ() {
		for _, p := range prefixes {
			if len(kv) >= len(p) && kv[:len(p)] == p {
				continue outer
			}
		}
		env = append(env, kv)
	}
	return env
}
