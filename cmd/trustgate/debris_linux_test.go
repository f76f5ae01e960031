package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
	"unsafe"

	idebris "github.com/trustgate/trustgate/internal/debris"
)

// TestStartRemovesCrashDebris: the temporary files a kill -9 can leave (blob spools in temp_dir,
// half-written trust state and edge records in trust_dir) are removed when trustgate starts;
// nothing else is touched: not young temporary files another trustgate may be writing, not other
// names, not files of other users, not anything behind a symbolic link.
func TestStartRemovesCrashDebris(t *testing.T) {
	root := t.TempDir()
	trust, spool, outside := filepath.Join(root, "trust"), filepath.Join(root, "spool"), filepath.Join(root, "outside")
	old := time.Now().Add(-2 * time.Hour)
	plant := func(path string, age time.Time) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, age, age); err != nil {
			t.Fatal(err)
		}
		return path
	}
	symlink := func(target, path string) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
		if err := lutimes(path, old); err != nil {
			t.Fatal(err)
		}
		return path
	}
	gunDir := filepath.Join(trust, "docker.io", "tuf", "docker.io%2Flibrary%2Falpine")
	debris := []string{
		plant(filepath.Join(spool, "fanout-spool-1234567"), old),
		plant(filepath.Join(gunDir, ".tmp-versions.json-98765"), old),
		plant(filepath.Join(gunDir, "metadata", ".tmp-root.json-55"), old),
		plant(filepath.Join(trust, "docker.io", "graph", "sha256", "ab", ".tmp-4242"), old),
		plant(filepath.Join(trust, "bindings", ".tmp-binding-1234"), old),
	}
	kept := []string{
		// Young: another trustgate may be writing them right now.
		plant(filepath.Join(spool, "fanout-spool-7654321"), time.Now()),
		plant(filepath.Join(gunDir, ".tmp-versions.json-11"), time.Now()),
		plant(filepath.Join(trust, "docker.io", "graph", "sha256", "cd", ".tmp-77"), time.Now()),
		// Not trustgate's names, or not where trustgate puts them.
		plant(filepath.Join(spool, "fanout-spool-notes"), old),
		plant(filepath.Join(spool, "other-1234"), old),
		plant(filepath.Join(spool, "sub", "fanout-spool-1"), old),
		plant(filepath.Join(gunDir, "versions.json"), old),
		plant(filepath.Join(trust, "bindings", "0123abcd.json"), old),
		plant(filepath.Join(trust, "bindings", ".tmp-binding-77"), time.Now()),
		plant(filepath.Join(trust, "docker.io", "graph", "sha256", "ab", "ab12.json"), old),
		// Behind symbolic links, which are never followed.
		plant(filepath.Join(outside, ".tmp-victim-1"), old),
		plant(filepath.Join(outside, "fanout-spool-99"), old),
		symlink(outside, filepath.Join(trust, "docker.io", "tuf", "linked")),
		symlink(filepath.Join(outside, ".tmp-victim-1"), filepath.Join(gunDir, ".tmp-link-1")),
		symlink(filepath.Join(outside, "fanout-spool-99"), filepath.Join(spool, "fanout-spool-2")),
	}
	// Another user's file of the same name is not this trustgate's.
	foreign := plant(filepath.Join(spool, "fanout-spool-31337"), old)
	if err := os.Lchown(foreign, 65534, 65534); err == nil {
		if err := os.Chtimes(foreign, old, old); err != nil {
			t.Fatal(err)
		}
		kept = append(kept, foreign)
	} else {
		t.Logf("cannot chown (%v): the other-user case is not covered", err)
		debris = append(debris, foreign)
	}

	// Spilled trust states: a crashed process's directory (no lock held) goes, a live one's
	// (locked, here by this test) stays, however old.
	spillDir := func(name string) string {
		t.Helper()
		dir := filepath.Join(spool, name)
		plant(filepath.Join(dir, "0123abcd"), old)
		if err := os.Chtimes(dir, old, old); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	debris = append(debris, spillDir("trustgate-verified-123"))
	live := spillDir("trustgate-verified-456")
	lock, err := idebris.LockDir(live)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	kept = append(kept, live)

	listen := freePort(t)
	file := filepath.Join(root, "c.yaml")
	cfg := fmt.Sprintf("listen: %s\nlog: {format: text}\ntrust_dir: %s\ntemp_dir: %s\n%s", listen, trust, spool, minimalConfig)
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, []string{"--config", file}, &logs) }()
	waitServing(t, "http://"+listen+"/v2/", &logs)
	spills, _ := filepath.Glob(filepath.Join(spool, "trustgate-verified-*"))
	if len(spills) != 2 {
		t.Errorf("spill directories while serving: %v, want the live one and the server's own", spills)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if spills, _ := filepath.Glob(filepath.Join(spool, "trustgate-verified-*")); len(spills) != 1 || spills[0] != live {
		t.Errorf("spill directories after a clean shutdown: %v, want only %s", spills, live)
	}

	for _, p := range debris {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("crash debris left: %s (%v)", p, err)
		}
	}
	for _, p := range kept {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("removed what is not trustgate's debris: %s (%v)", p, err)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", logs.String())
	}
}

// lutimes sets the times of a symbolic link itself (utimensat with AT_SYMLINK_NOFOLLOW).
func lutimes(path string, t time.Time) error {
	p, err := syscall.BytePtrFromString(path)
	if err != nil {
		return err
	}
	ts := [2]syscall.Timespec{syscall.NsecToTimespec(t.UnixNano()), syscall.NsecToTimespec(t.UnixNano())}
	fdcwd := -100 // AT_FDCWD
	_, _, errno := syscall.Syscall6(syscall.SYS_UTIMENSAT, uintptr(fdcwd), uintptr(unsafe.Pointer(p)),
		uintptr(unsafe.Pointer(&ts[0])), 0x100 /* AT_SYMLINK_NOFOLLOW */, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
