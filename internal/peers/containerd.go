package peers

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Containerd is a private containerd (Debian 1.6) whose docker.io registry host is the given
// server, configured the containerd way: <hosts-dir>/docker.io/hosts.toml. Unlike dockerd's
// registry-mirrors, containerd sends `?ns=docker.io` on every request to a host that is not the
// registry itself, and with the proxy as `server` there is no fallback to Docker Hub, so the
// proxy's 404 is what the client reports.
type Containerd struct {
	Socket   string
	HostsDir string
	*Process
	ctr string
}

// StartContainerd starts containerd (CRI plugin disabled) and writes hosts.toml pointing docker.io
// at serverURL, which may be plain HTTP.
func StartContainerd(tb testing.TB, serverURL string) *Containerd {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatalf("peers: containerd must run as root (euid %d)", os.Geteuid())
	}
	bin := Binary(tb, "containerd")
	ctr := Binary(tb, "ctr")
	root := socketDir(tb, "tgctd")
	c := &Containerd{Socket: filepath.Join(root, "containerd.sock"), HostsDir: filepath.Join(root, "hosts"), ctr: ctr}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = %q
`, filepath.Join(root, "root"), filepath.Join(root, "state"), c.Socket, c.Socket+".ttrpc", filepath.Join(root, "debug.sock"))
	// containerd 1.6 rejects a hosts.toml with only `server` ("invalid `host` tree"); naming the
	// same URL as the one host keeps it authoritative (no registry-1.docker.io fallback).
	hosts := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", serverURL, serverURL)
	if err := os.MkdirAll(filepath.Join(c.HostsDir, "docker.io"), 0o755); err != nil {
		tb.Fatal(err)
	}
	for path, data := range map[string]string{
		filepath.Join(root, "config.toml"):                   cfg,
		filepath.Join(c.HostsDir, "docker.io", "hosts.toml"): hosts,
	} {
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "--config", filepath.Join(root, "config.toml"))
	cmd.Dir = root
	c.Process = StartProcess(tb, "containerd", root, cmd)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if _, err := c.Ctr(ctx, "version"); err == nil {
			break
		}
		select {
		case <-c.Done():
			tb.Fatalf("peers: containerd exited: %v\n%s", c.ExitErr(), c.Log.Tail(30))
		case <-ctx.Done():
			tb.Fatalf("peers: containerd not ready\n%s", c.Log.Tail(30))
		case <-time.After(50 * time.Millisecond):
		}
	}
	return c
}

// Ctr runs `ctr -a <socket> -n trustgate args...` and returns stdout; err carries stderr.
func (c *Containerd) Ctr(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.ctr, append([]string{"-a", c.Socket, "-n", "trustgate"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Pull pulls ref (e.g. docker.io/library/alpine:signed) through the configured hosts.
func (c *Containerd) Pull(ctx context.Context, ref string) error {
	_, err := c.Ctr(ctx, "images", "pull", "--hosts-dir", c.HostsDir, ref)
	return err
}

// ImageDigest returns the target digest of a local image, "" if there is none.
func (c *Containerd) ImageDigest(ctx context.Context, ref string) (string, error) {
	out, err := c.Ctr(ctx, "images", "ls")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == ref {
			return f[2], nil
		}
	}
	return "", nil
}
