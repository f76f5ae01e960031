package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

// startGateYAML starts trustgate like peers.StartTrustgate, with extra top-level YAML appended to
// the configuration (temp_dir, blob_spool_bytes).
func startGateYAML(t *testing.T, cfg peers.GateConfig, extra string) *peers.Trustgate {
	t.Helper()
	dir := t.TempDir()
	cfg.TrustDir = filepath.Join(dir, "trust")
	path := filepath.Join(dir, "trustgate.yaml")
	if err := os.WriteFile(path, []byte(cfg.YAML()+extra), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(trustgateBin, "serve", "--config", path)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TRUSTGATE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	p := peers.StartProcess(t, "trustgate", dir, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("trustgate log (%s), last lines:\n%s", p.Log.Path(), p.Log.Tail(60))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr, err := peers.WaitListen(ctx, p)
	if err != nil {
		t.Fatalf("trustgate: %v", err)
	}
	g := &peers.Trustgate{URL: "http://" + addr, Host: addr, ConfigPath: path, TrustDir: cfg.TrustDir, Process: p}
	eventually(t, 30*time.Second, "trustgate answers /v2/", func() (bool, string) {
		resp, err := http.Get(g.URL + "/v2/")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	return g
}

// mountTmpfs mounts a tmpfs of size bytes and unmounts it when the test ends. The e2e suite runs
// as root (dockerd, containerd); a failed mount fails the test.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Fatalf("mount tmpfs on %s (needs root, euid %d): %v", dir, os.Geteuid(), err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

// readOnlyBind makes dir read-only with a read-only bind mount of itself (the filesystem under it
// cannot be remounted read-only while trustgate holds retained spools open for writing) and
// returns the function that undoes it.
func readOnlyBind(t *testing.T, dir string) (undo func()) {
	t.Helper()
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mount %s: %v", dir, err)
	}
	unmount := func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	}
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		unmount()
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
	done := false
	undo = func() {
		if !done {
			done = true
			unmount()
		}
	}
	t.Cleanup(undo)
	return undo
}

// TestSpoolDisk (issue #8): trustgate's blob spool on a 12 MiB tmpfs, far below blob_spool_bytes
// (1 GiB). Layers of 4 MiB fill it with retained spools; later layers must evict the oldest
// rather than get 503 until a restart. A spool directory deleted while trustgate runs is
// recreated; a read-only one is a 503 naming the reason, and blobs are served again once it is
// writable — all in one process, without a restart.
func TestSpoolDisk(t *testing.T) {
	const fsSize = 12 << 20
	w := newWorld(t)
	names := []string{"a", "b", "c", "d", "e", "f", "g"}
	imgs := map[string]peers.Pushed{}
	for i, n := range names {
		repo := "library/spool-" + n
		imgs[n] = peers.PushBigImage(t, w.reg, repo, "v1", 4<<20, uint64(100+i))
		w.sign(t, repo, "v1", imgs[n])
	}
	mnt := mountTmpfs(t, fsSize)
	spool := filepath.Join(mnt, "spool")
	if err := os.Mkdir(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	g := startGateYAML(t, peers.GateConfig{RegistryURL: w.reg.URL, NotaryURL: w.notary.URL},
		fmt.Sprintf("temp_dir: %q\nblob_spool_bytes: %d\n", spool, 1<<30))

	pull := func(n string) response {
		t.Helper()
		repo := "library/spool-" + n
		if got := getManifest(t, g, repo, "v1"); got.code != 200 || got.digest() != imgs[n].Digest {
			t.Fatalf("GET %s:v1 = %d %s", repo, got.code, got.body)
		}
		return get(t, http.MethodGet, g.URL+"/v2/"+repo+"/blobs/"+imgs[n].Layers[0].Digest)
	}
	pullOK := func(n string) {
		t.Helper()
		if got := pull(n); got.code != 200 || got.digest() != imgs[n].Layers[0].Digest {
			t.Fatalf("layer of %s: status %d, %d bytes, body %.300s", n, got.code, len(got.body), got.body)
		}
	}
	pull503 := func(n, reason string) {
		t.Helper()
		got := pull(n)
		if got.code != http.StatusServiceUnavailable || !strings.Contains(string(got.body), reason) {
			t.Fatalf("layer of %s: status %d, body %.300s; want 503 naming %q", n, got.code, got.body, reason)
		}
		if strings.Contains(string(got.body), mnt) {
			t.Errorf("error body names the spool path: %s", got.body)
		}
	}

	// Full: a and b are retained (8 of 12 MiB); c and d each need the oldest evicted.
	for _, n := range []string{"a", "b", "c", "d"} {
		pullOK(n)
	}

	// Deleted: recreated on the next download.
	if err := os.RemoveAll(spool); err != nil {
		t.Fatal(err)
	}
	pullOK("e")

	// Read-only: 503 with the reason, every time, until it is writable again.
	undo := readOnlyBind(t, spool)
	pull503("f", "read-only file system")
	pull503("f", "read-only file system")
	undo()
	pullOK("f")

	// Replaced by a file: 503 until the directory can be recreated.
	if err := os.RemoveAll(spool); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spool, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	pull503("g", "not a directory")
	if err := os.Remove(spool); err != nil {
		t.Fatal(err)
	}
	pullOK("g")
}
