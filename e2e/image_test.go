package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/trustgate/trustgate/internal/image"
	"github.com/trustgate/trustgate/internal/peers"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestImageRunsUnderDockerd: the image `make image` builds (a static binary on an empty base, no
// base image pulled) loads into the real dockerd and runs as its non-root user on a read-only root
// file system, with the trust dir its volume: /healthz and /readyz answer, a signed pull through
// it is served at its signed digest and an unsigned one is refused.
func TestImageRunsUnderDockerd(t *testing.T) {
	w := newWorld(t)
	signed := w.pushSigned(t, "library/alpine", "signed")
	w.push(t, "library/alpine", "unsigned")

	dir := t.TempDir()
	bin := filepath.Join(dir, "trustgate-linux")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "../cmd/trustgate")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	img, err := image.Build(image.Inputs{Binary: bin, Config: "../configs/trustgate.yaml",
		CABundle: "/etc/ssl/certs/ca-certificates.crt"}, runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("trustgate:e2e")
	tarPath := filepath.Join(dir, "image.tar")
	if err := tarball.WriteToFile(tarPath, tag, img); err != nil {
		t.Fatal(err)
	}

	// The configuration an operator mounts over the image's default: the loopback peers.
	listen, health := freeAddr(t), freeAddr(t)
	cfgDir := filepath.Join(dir, "etc")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`log: {level: info, format: json}
health: {probe_interval: 1s}
default_upstream: docker.io
upstreams:
  - name: docker.io
    url: %s
    gun_prefix: docker.io
    docker_hub: true
    notary: {url: %q}
`, w.reg.URL, w.notary.URL)
	if err := os.WriteFile(filepath.Join(cfgDir, "trustgate.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	d := peers.StartDockerd(t, "http://"+listen)
	ctx := context.Background()
	if out, err := d.Docker(ctx, "load", "-i", tarPath); err != nil {
		t.Fatalf("docker load: %v", err)
	} else {
		t.Logf("docker load: %s", strings.TrimSpace(out))
	}
	if _, err := d.Docker(ctx, "run", "-d", "--name", "tg", "--network", "host", "--read-only",
		"--tmpfs", "/tmp", "-v", cfgDir+":/etc/trustgate:ro",
		"-e", "TRUSTGATE_LISTEN="+listen, "-e", "TRUSTGATE_METRICS_LISTEN="+health, "trustgate:e2e"); err != nil {
		t.Fatalf("docker run: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("container log:\n%s", containerLog(t, d, "tg"))
		}
		_, _ = d.Docker(ctx, "rm", "-f", "tg")
	})

	eventually(t, 60*time.Second, "/healthz answers from the container", func() (bool, string) {
		c := &http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get("http://" + health + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	eventually(t, 30*time.Second, "/readyz ready", func() (bool, string) {
		code, r, body := getReadyz(t, "http://"+health)
		return code == 200 && r.Ready, body
	})

	pid, err := d.Docker(ctx, "inspect", "--format", "{{.State.Pid}}", "tg")
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("/proc/" + strings.TrimSpace(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "Uid:") && strings.Fields(l)[1] != fmt.Sprint(image.UID) {
			t.Errorf("trustgate in the container runs as %s, want uid %d", l, image.UID)
		}
	}

	if r := peers.Crane(t, "digest", listen+"/library/alpine:signed"); r.Err != nil || strings.TrimSpace(r.Stdout) != signed.Digest {
		t.Errorf("crane digest signed through the container = %q %v %s, want %s", r.Stdout, r.Err, r.Stderr, signed.Digest)
	}
	if r := peers.Crane(t, "pull", listen+"/library/alpine:signed", filepath.Join(dir, "pulled.tar")); r.Err != nil {
		t.Errorf("crane pull signed: %v %s", r.Err, r.Stderr)
	}
	if r := peers.Crane(t, "digest", listen+"/library/alpine:unsigned"); r.Err == nil {
		t.Errorf("unsigned tag served through the container: %s", r.Stdout)
	}
	// The offline demo runs in the image as the README says, as its non-root user.
	out, err := d.Docker(ctx, "run", "--rm", "--network", "host", "trustgate:e2e", "demo", "--check", "--listen", "127.0.0.1:0")
	if err != nil || !strings.Contains(out, "Self-check passed.") {
		t.Errorf("demo --check in the image: %v\n%s", err, out)
	}
	// Trust state went to the image's volume, written by the non-root user.
	if logs := containerLog(t, d, "tg"); !strings.Contains(logs, `"dir":"`+image.TrustDir+`"`) {
		t.Errorf("container log does not show trust state in %s:\n%s", image.TrustDir, logs)
	}
}

// containerLog reads the container's output from dockerd's json-file log (`docker logs` sends the
// container's stderr, where trustgate logs, to its own stderr).
func containerLog(t *testing.T, d *peers.Dockerd, name string) string {
	t.Helper()
	path, err := d.Docker(context.Background(), "inspect", "--format", "{{.LogPath}}", name)
	if err != nil {
		return err.Error()
	}
	b, err := os.ReadFile(strings.TrimSpace(path))
	if err != nil {
		return err.Error()
	}
	return strings.ReplaceAll(string(b), `\"`, `"`)
}
