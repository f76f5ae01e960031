package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDemo is the README's walk-through (issue #11): `trustgate demo` starts offline, its
// self-check passes, and the crane, skopeo and notary commands it prints work exactly as printed
// — each run through sh from its printed line. What they must show is taken from the notary
// v0.7.0 CLI, which verifies the demo's trust data independently of trustgate. SIGINT then stops
// the demo with exit status 0, its port closed and its temporary directory gone.
func TestDemo(t *testing.T) {
	var stdout, stderr lockedBuffer
	cmd := exec.Command(trustgateBin, "demo", "--listen", "127.0.0.1:0")
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill() // only if the test failed before SIGINT
			<-exited
		}
	})
	deadline := time.After(60 * time.Second)
	for !strings.Contains(stdout.String(), "Ctrl-C stops the demo.") {
		select {
		case <-exited:
			t.Fatalf("demo exited early: %v\nstdout:\n%s\nstderr:\n%s", waitErr, &stdout, &stderr)
		case <-deadline:
			t.Fatalf("demo printed no commands:\nstdout:\n%s\nstderr:\n%s", &stdout, &stderr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	out := stdout.String()
	t.Logf("demo output:\n%s", out)
	if n := strings.Count(out, "\n  ok    demo/"); n != 4 || !strings.Contains(out, "Self-check passed.") {
		t.Errorf("self-check: %d ok lines; want 4, and 'Self-check passed.'", n)
	}
	m := regexp.MustCompile(`trustgate on (\S+), trust state in (\S+) \(removed on exit\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatal("no ready line")
	}
	gate, tmp := m[1], filepath.Dir(m[2])
	m = regexp.MustCompile(`the embedded registry at (\S+) stands in for docker\.io`).FindStringSubmatch(out)
	n := regexp.MustCompile(`the embedded trust server at (\S+) holds`).FindStringSubmatch(out)
	if m == nil || n == nil {
		t.Fatal("no registry or trust server address printed")
	}
	registry, notaryURL := m[1], n[1]

	// The truth, from the real notary client.
	signed := map[string]string{}
	cli := peers.NewNotaryCLI(t, notaryURL)
	for _, gun := range []string{"docker.io/demo/hello", "docker.io/demo/multi"} {
		for _, tg := range cli.List(gun) {
			signed[strings.TrimPrefix(gun, "docker.io/")+":"+tg.Name] = "sha256:" + tg.SHA256
		}
	}
	if len(signed) != 3 || signed["demo/hello:unsigned"] != "" {
		t.Fatalf("notary CLI lists %v; want demo/hello:signed, demo/hello:moved, demo/multi:signed", signed)
	}

	// Every printed command line that starts with one of these tools.
	env := append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
	path := []string{}
	for _, tool := range []string{"crane", "notary"} {
		path = append(path, filepath.Dir(peers.Binary(t, tool)))
	}
	env = append(env, "PATH="+strings.Join(append(path, os.Getenv("PATH")), ":"))
	type result struct {
		line, stdout, stderr string
		err                  error
	}
	var results []result
	for _, line := range strings.Split(out, "\n") {
		// Commands are indented by two spaces; section titles are not.
		line, ok := strings.CutPrefix(line, "  ")
		if !ok || !strings.HasPrefix(line, "crane ") && !strings.HasPrefix(line, "skopeo ") && !strings.HasPrefix(line, "notary ") {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		c := exec.CommandContext(ctx, "sh", "-c", line)
		c.Dir, c.Env = t.TempDir(), env
		var o, e bytes.Buffer
		c.Stdout, c.Stderr = &o, &e
		err := c.Run()
		cancel()
		results = append(results, result{line, o.String(), e.String(), err})
	}

	want := []struct {
		prefix string
		check  func(r result) bool
	}{
		{"crane digest --insecure " + gate + "/demo/hello:signed ", func(r result) bool {
			return r.err == nil && strings.TrimSpace(r.stdout) == signed["demo/hello:signed"]
		}},
		{"crane digest --insecure " + gate + "/demo/hello:unsigned ", func(r result) bool {
			return r.err != nil && strings.Contains(r.stderr, "MANIFEST_UNKNOWN") && strings.TrimSpace(r.stdout) == ""
		}},
		{"crane digest --insecure " + gate + "/demo/hello:moved ", func(r result) bool {
			return r.err == nil && strings.TrimSpace(r.stdout) == signed["demo/hello:moved"]
		}},
		{"crane digest --insecure " + registry + "/demo/hello:moved ", func(r result) bool {
			d := strings.TrimSpace(r.stdout)
			return r.err == nil && strings.HasPrefix(d, "sha256:") && d != signed["demo/hello:moved"]
		}},
		{"crane manifest --insecure " + gate + "/demo/multi:signed ", func(r result) bool {
			sum := sha256.Sum256([]byte(r.stdout))
			return r.err == nil && "sha256:"+hex.EncodeToString(sum[:]) == signed["demo/multi:signed"]
		}},
		{"crane export --insecure " + gate + "/demo/hello:signed - | tar -xO hello.txt", func(r result) bool {
			return r.err == nil && strings.Contains(r.stdout, "this image is signed")
		}},
		{"skopeo inspect --tls-verify=false docker://" + gate + "/demo/hello:signed", func(r result) bool {
			return r.err == nil && strings.Contains(r.stdout, `"Digest": "`+signed["demo/hello:signed"]+`"`)
		}},
		{"skopeo copy --src-tls-verify=false docker://" + gate + "/demo/hello:signed ", func(r result) bool {
			return r.err == nil
		}},
		{"notary -s " + notaryURL + " ", func(r result) bool {
			return r.err == nil && strings.Contains(r.stdout, strings.TrimPrefix(signed["demo/hello:signed"], "sha256:"))
		}},
	}
	if len(results) != len(want) {
		t.Errorf("%d commands printed; want %d", len(results), len(want))
	}
	for _, w := range want {
		found := false
		for _, r := range results {
			if strings.HasPrefix(r.line, w.prefix) {
				found = true
				if !w.check(r) {
					t.Errorf("$ %s\nexit: %v\nstdout: %s\nstderr: %s", r.line, r.err, r.stdout, r.stderr)
				}
			}
		}
		if !found {
			t.Errorf("no printed command starts with %q", w.prefix)
		}
	}

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("demo after SIGINT: %v; want exit status 0\nstderr:\n%s", waitErr, &stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not exit within 30s of SIGINT")
	}
	for _, addr := range []string{gate, registry, strings.TrimPrefix(notaryURL, "http://")} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after the demo exited", addr)
		}
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("temporary directory %s: %v; want it removed", tmp, err)
	}
}
