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
	"slices"
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

// demoRun is a running `trustgate demo` and the addresses it printed.
type demoRun struct {
	cmd              *exec.Cmd
	stdout, stderr   *lockedBuffer
	exited           chan struct{}
	waitErr          error
	out              string // stdout once the commands were printed
	gate, tmp        string // trustgate's host:port, the demo's temporary directory
	registry, notary string // the embedded registry's host:port, the trust server's URL
}

// startDemo starts the built binary's demo on a free port and waits until it has printed the
// commands to try. At the end of the test, a demo still running is interrupted (and killed if
// that does not stop it).
func startDemo(t *testing.T) *demoRun {
	t.Helper()
	d := &demoRun{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	d.cmd = exec.Command(trustgateBin, "demo", "--listen", "127.0.0.1:0")
	d.cmd.Dir = t.TempDir()
	d.cmd.Stdout, d.cmd.Stderr = d.stdout, d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.waitErr = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		select {
		case <-d.exited:
			return
		default:
		}
		_ = d.cmd.Process.Signal(os.Interrupt) // lets it remove its temporary directory
		select {
		case <-d.exited:
		case <-time.After(10 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.exited
		}
	})
	deadline := time.After(60 * time.Second)
	for !strings.Contains(d.stdout.String(), "Ctrl-C stops the demo.") {
		select {
		case <-d.exited:
			t.Fatalf("demo exited early: %v\nstdout:\n%s\nstderr:\n%s", d.waitErr, d.stdout, d.stderr)
		case <-deadline:
			t.Fatalf("demo printed no commands:\nstdout:\n%s\nstderr:\n%s", d.stdout, d.stderr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	d.out = d.stdout.String()
	m := regexp.MustCompile(`trustgate on (\S+), trust state in (\S+) \(removed on exit\)`).FindStringSubmatch(d.out)
	r := regexp.MustCompile(`the embedded registry at (\S+) stands in for docker\.io`).FindStringSubmatch(d.out)
	n := regexp.MustCompile(`the embedded trust server at (\S+) holds`).FindStringSubmatch(d.out)
	if m == nil || r == nil || n == nil {
		t.Fatalf("demo output lacks its addresses:\n%s", d.out)
	}
	d.gate, d.tmp, d.registry, d.notary = m[1], filepath.Dir(m[2]), r[1], n[1]
	return d
}

// signedDigests asks the notary CLI, which verifies the demo's trust data on its own, what each
// sample tag is signed to ("demo/hello:signed" → "sha256:…").
func (d *demoRun) signedDigests(t *testing.T) map[string]string {
	t.Helper()
	signed := map[string]string{}
	cli := peers.NewNotaryCLI(t, d.notary)
	for _, gun := range []string{"docker.io/demo/hello", "docker.io/demo/multi"} {
		for _, tg := range cli.List(gun) {
			signed[strings.TrimPrefix(gun, "docker.io/")+":"+tg.Name] = "sha256:" + tg.SHA256
		}
	}
	if len(signed) != 3 || signed["demo/hello:unsigned"] != "" {
		t.Fatalf("notary CLI lists %v; want demo/hello:signed, demo/hello:moved, demo/multi:signed", signed)
	}
	return signed
}

// TestDemo is the README's walk-through (issue #11): `trustgate demo` starts offline, its
// self-check passes, and the crane, skopeo and notary commands it prints work exactly as printed
// — each run through sh from its printed line. What they must show is taken from the notary
// v0.7.0 CLI, which verifies the demo's trust data independently of trustgate. SIGINT then stops
// the demo with exit status 0, its ports closed and its temporary directory gone.
func TestDemo(t *testing.T) {
	d := startDemo(t)
	out, gate, registry, notaryURL := d.out, d.gate, d.registry, d.notary
	t.Logf("demo output:\n%s", out)
	if n := strings.Count(out, "\n  ok    demo/"); n != 4 || !strings.Contains(out, "Self-check passed.") {
		t.Errorf("self-check: %d ok lines; want 4, and 'Self-check passed.'", n)
	}
	signed := d.signedDigests(t)

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

	if err := d.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.exited:
		if d.waitErr != nil {
			t.Errorf("demo after SIGINT: %v; want exit status 0\nstderr:\n%s", d.waitErr, d.stderr)
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
	if _, err := os.Stat(d.tmp); !os.IsNotExist(err) {
		t.Errorf("temporary directory %s: %v; want it removed", d.tmp, err)
	}
}

// TestDemoDaemons pulls from the demo with the real daemons, configured as the demo prints:
// dockerd with registry-mirrors (and the mirror as an insecure registry), containerd with
// docker.io's hosts.toml naming trustgate as server and only host. The signed tag arrives at its
// signed digest; the unsigned one is refused.
func TestDemoDaemons(t *testing.T) {
	d := startDemo(t)
	for _, want := range []string{
		`{"registry-mirrors": ["http://` + d.gate + `"], "insecure-registries": ["` + d.gate + `"]}`,
		`server = "http://` + d.gate + `"`,
		`[host."http://` + d.gate + `"]`,
		`capabilities = ["pull", "resolve"]`,
	} {
		if !strings.Contains(d.out, want) {
			t.Errorf("demo does not print %s; the daemons below are configured with it", want)
		}
	}
	signed := d.signedDigests(t)
	ctx := context.Background()

	t.Run("containerd hosts.toml", func(t *testing.T) {
		c := peers.StartContainerd(t, "http://"+d.gate)
		if err := c.Pull(ctx, "docker.io/demo/hello:signed"); err != nil {
			t.Fatalf("ctr pull demo/hello:signed: %v", err)
		}
		if got, err := c.ImageDigest(ctx, "docker.io/demo/hello:signed"); err != nil || got != signed["demo/hello:signed"] {
			t.Errorf("demo/hello:signed is %q, %v; want %s", got, err, signed["demo/hello:signed"])
		}
		if err := c.Pull(ctx, "docker.io/demo/hello:unsigned"); err == nil {
			t.Error("ctr pull demo/hello:unsigned succeeded")
		}
		if err := c.Pull(ctx, "docker.io/demo/multi:signed"); err != nil {
			t.Errorf("ctr pull demo/multi:signed: %v", err)
		}
	})

	t.Run("docker registry-mirrors", func(t *testing.T) {
		dk := peers.StartDockerd(t, "http://"+d.gate)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("dockerd log tail:\n%s", dk.Log.Tail(30))
			}
		})
		if err := dk.Pull(ctx, "demo/hello:signed"); err != nil {
			t.Fatalf("docker pull demo/hello:signed: %v", err)
		}
		if ds, err := dk.RepoDigests(ctx, "demo/hello:signed"); err != nil || !slices.Contains(ds, "demo/hello@"+signed["demo/hello:signed"]) {
			t.Errorf("RepoDigests = %v, %v; want demo/hello@%s", ds, err, signed["demo/hello:signed"])
		}
		if err := dk.Pull(ctx, "demo/hello:unsigned"); err == nil {
			t.Error("docker pull demo/hello:unsigned succeeded")
		}
	})
}
