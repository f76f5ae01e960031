package peers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Dockerd is a private Debian dockerd (20.10, classic graphdriver image store) whose only registry
// mirror is the given URL. It uses the vfs driver and no networking so it runs without touching the
// host's docker, bridge or iptables; it starts its own containerd under ExecRoot.
//
// Observed behaviour (see TestDockerdMirror): pulls of docker.io names go to the mirror as
// `HEAD /v2/library/<name>/manifests/<tag>` then GET by digest, without ?ns=; on any mirror error the
// daemon falls back to registry-1.docker.io, which fails here with a DNS error — so tests must assert
// on outcomes (image present or not), not on docker's error text.
type Dockerd struct {
	Host     string // unix:///.../docker.sock, for DOCKER_HOST
	ExecRoot string
	*Process
	cli       string
	cliConfig string
	socket    string
}

// StartDockerd starts dockerd with registry-mirrors=[mirrorURL] and the mirror's host:port listed
// as insecure (plain HTTP), and waits for its API.
func StartDockerd(tb testing.TB, mirrorURL string) *Dockerd {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatalf("peers: dockerd must run as root (euid %d)", os.Geteuid())
	}
	bin := Binary(tb, "dockerd")
	u, err := url.Parse(mirrorURL)
	if err != nil || u.Host == "" {
		tb.Fatalf("peers: bad mirror URL %q: %v", mirrorURL, err)
	}
	// containerd's socket lives under dockerd's exec root, so that root must be short.
	root := socketDir(tb, "tgdk")
	// A daemon that ran a container leaves its default network namespace mounted under the exec
	// root; unmount it once the daemon has stopped (cleanups run last-registered first), so the
	// directory can be removed.
	tb.Cleanup(func() { _ = syscall.Unmount(filepath.Join(root, "exec", "netns", "default"), syscall.MNT_DETACH) })
	d := &Dockerd{ExecRoot: filepath.Join(root, "exec"), socket: filepath.Join(root, "docker.sock"),
		cliConfig: filepath.Join(root, "cli")}
	d.Host = "unix://" + d.socket
	d.cli = dockerCLI(tb)
	cfg, _ := json.Marshal(map[string]any{
		"registry-mirrors":    []string{mirrorURL},
		"insecure-registries": []string{u.Host},
	})
	cfgPath := filepath.Join(root, "daemon.json")
	for _, dir := range []string{d.cliConfig, d.ExecRoot} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--config-file", cfgPath,
		"--data-root", filepath.Join(root, "data"),
		"--exec-root", d.ExecRoot,
		"--pidfile", filepath.Join(root, "docker.pid"),
		"-H", d.Host,
		"--storage-driver", "vfs",
		"--bridge", "none",
		"--iptables=false",
		"--ip6tables=false",
	)
	cmd.Dir = root
	cmd.Env = cleanEnv("DOCKER_")
	d.Process = StartProcess(tb, "dockerd", root, cmd)
	d.Process.stopGrace = 30 * time.Second

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := d.waitPing(ctx); err != nil {
		tb.Fatalf("peers: dockerd: %v\n%s", err, d.Log.Tail(40))
	}
	return d
}

// dockerCLI prefers Debian's /usr/bin/docker, which matches the daemon's API version; any docker
// client on PATH will do otherwise.
func dockerCLI(tb testing.TB) string {
	tb.Helper()
	if fi, err := os.Stat("/usr/bin/docker"); err == nil && !fi.IsDir() {
		return "/usr/bin/docker"
	}
	return Binary(tb, "docker")
}

func (d *Dockerd) waitPing(ctx context.Context) error {
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", d.socket)
	}}}
	defer c.CloseIdleConnections()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-d.Done():
			return fmt.Errorf("exited: %v", d.ExitErr())
		case <-ctx.Done():
			return fmt.Errorf("API not ready: %w (last: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Docker runs the docker CLI against this daemon and returns stdout; err carries stderr.
func (d *Dockerd) Docker(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.cli, args...)
	cmd.Env = append(cleanEnv("DOCKER_"), "DOCKER_HOST="+d.Host, "DOCKER_CONFIG="+d.cliConfig)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err,
			strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Pull runs `docker pull ref`.
func (d *Dockerd) Pull(ctx context.Context, ref string) error {
	_, err := d.Docker(ctx, "pull", ref)
	return err
}

// RepoDigests returns the RepoDigests of a local image (e.g. ["alpine@sha256:…"]).
func (d *Dockerd) RepoDigests(ctx context.Context, ref string) ([]string, error) {
	out, err := d.Docker(ctx, "image", "inspect", "--format", "{{json .RepoDigests}}", ref)
	if err != nil {
		return nil, err
	}
	var ds []string
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &ds); err != nil {
		return nil, fmt.Errorf("parsing RepoDigests %q: %w", out, err)
	}
	return ds, nil
}

// Images lists local images as repo:tag (dangling ones as <none>:<none>).
func (d *Dockerd) Images(ctx context.Context) ([]string, error) {
	out, err := d.Docker(ctx, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}")
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}
