package fanout

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"
)

// mountTmpfs mounts a tmpfs of size bytes on a fresh directory and unmounts
// it when the test ends. It needs root (CAP_SYS_ADMIN); without it the test
// fails rather than skips, like the peers that need root.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Fatalf("mount tmpfs on %s (needs root, euid %d): %v", dir, os.Geteuid(), err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			// A descriptor still open would keep it busy; detach so
			// the test's temporary directory can go.
			t.Errorf("unmount %s: %v", dir, err)
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

func remount(t *testing.T, dir string, size int64, readOnly bool) {
	t.Helper()
	flags := uintptr(syscall.MS_REMOUNT)
	if readOnly {
		flags |= syscall.MS_RDONLY
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", flags, fmt.Sprintf("size=%d", size)); err != nil {
		t.Fatalf("remount %s read-only=%v: %v", dir, readOnly, err)
	}
}

// blobSet serves several blobs by name from one upstream, honestly or, with
// chunked set, without Content-Length (the size is unknown until EOF, so the
// spool is not preallocated and grows write by write).
type blobSet struct {
	blobs   map[string][]byte
	digests map[string]digest.Digest
	up      *upstream
}

func newBlobSet(t *testing.T, size int, chunked bool, names ...string) *blobSet {
	t.Helper()
	s := &blobSet{blobs: map[string][]byte{}, digests: map[string]digest.Digest{}}
	for i, name := range names {
		s.blobs[name], s.digests[name] = randomBlob(t, uint64(80+i), size)
	}
	s.up = newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		b := s.blobs[r.URL.Path[1:]]
		if !chunked {
			honest(b)(w, r)
			return
		}
		for i := 0; i < len(b); i += 64 << 10 {
			w.Write(b[i:min(i+64<<10, len(b))])
			w.(http.Flusher).Flush()
		}
	})
	return s
}

// recordingGroup is a Group behind a server at /<name>, whose OnError also
// records the last error it answered with.
type recordingGroup struct {
	*Group
	url string
	mu  sync.Mutex
	err error
}

func serveSet(t *testing.T, s *blobSet, opts Options) *recordingGroup {
	t.Helper()
	rg := &recordingGroup{}
	opts.OnError = func(w http.ResponseWriter, r *http.Request, err error) {
		rg.mu.Lock()
		rg.err = err
		rg.mu.Unlock()
		defaultOnError(w, r, err)
	}
	rg.Group = newGroup(t, opts)
	px := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Path[1:]
		rg.Serve(w, r, s.digests[name], httpOpener(s.up.URL+"/"+name))
	})
	rg.url = px.URL
	return rg
}

func (rg *recordingGroup) lastErr() error {
	rg.mu.Lock()
	defer rg.mu.Unlock()
	return rg.err
}

func (s *blobSet) pullOK(t *testing.T, rg *recordingGroup, name string) {
	t.Helper()
	res := get(t, rg.url+"/"+name, nil)
	if res.status != 200 || res.err != nil || !bytes.Equal(res.body, s.blobs[name]) {
		t.Fatalf("pull %s: status %d, err %v, %d bytes, body %q; last OnError %v", name, res.status, res.err, len(res.body), trunc(res.body), rg.lastErr())
	}
}

// A spool filesystem smaller than MaxSpoolBytes: the retained spools fill
// it, and a new blob must evict the oldest of them rather than fail. With
// a known size the room is made before the download (statfs); with an
// unknown size the write that hits ENOSPC evicts and retries.
func TestSpoolFilesystemFull(t *testing.T) {
	const blob = 3 << 20
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("unknown size=%v", chunked), func(t *testing.T) {
			dir := mountTmpfs(t, 8<<20)
			s := newBlobSet(t, blob, chunked, "a", "b", "c", "d")
			rg := serveSet(t, s, Options{Dir: dir, MaxSpoolBytes: 1 << 30})
			s.pullOK(t, rg, "a")
			s.pullOK(t, rg, "b")
			waitFor(t, "a and b retained", func() bool { return rg.Stats().Retained == 2 })
			// 6 of 8 MiB are retained spools; c needs 3.
			s.pullOK(t, rg, "c")
			waitFor(t, "c retained", func() bool { return rg.Stats().Retained == 2 })
			s.pullOK(t, rg, "d")
			waitFor(t, "d retained", func() bool { return rg.Stats().Retained == 2 })
			// Oldest first: a and b were evicted, c and d are served
			// from the spool.
			before := rg.Stats().Fetches
			s.pullOK(t, rg, "c")
			s.pullOK(t, rg, "d")
			if st := rg.Stats(); st.Fetches != before || st.Failures != 0 {
				t.Errorf("c and d not served from retained spools: %+v", st)
			}
			s.pullOK(t, rg, "a")
			if st := rg.Stats(); st.Fetches != before+1 {
				t.Errorf("a was not evicted: %+v", st)
			}
		})
	}
}

// A blob that does not fit even on an empty spool filesystem is refused
// with 503 and the reason, and the next blob that fits is served.
func TestSpoolFilesystemTooSmall(t *testing.T) {
	dir := mountTmpfs(t, 4<<20)
	s := newBlobSet(t, 6<<20, false, "big")
	small := newBlobSet(t, 1<<20, false, "small")
	s.blobs["small"], s.digests["small"] = small.blobs["small"], small.digests["small"]
	rg := serveSet(t, s, Options{Dir: dir, MaxSpoolBytes: 1 << 30})
	res := get(t, rg.url+"/big", nil)
	if res.status != http.StatusServiceUnavailable || !strings.Contains(string(res.body), "no space left on device") {
		t.Fatalf("big blob: status %d, body %q; want 503 naming the full disk", res.status, trunc(res.body))
	}
	if err := rg.lastErr(); !errors.Is(err, ErrSpool) {
		t.Errorf("OnError got %v, want ErrSpool", err)
	}
	s.pullOK(t, rg, "small")
}

// The spool directory deleted while trustgate runs is recreated; one that
// cannot be recreated (a file took its place) is a 503 naming the reason
// until it can, and then blobs are served again without a restart.
func TestSpoolDirDeleted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s := newBlobSet(t, 1<<20, false, "a", "b", "c")
	rg := serveSet(t, s, Options{Dir: dir})
	s.pullOK(t, rg, "a")

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	s.pullOK(t, rg, "b")
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("spool dir not recreated 0700: %v %v", fi, err)
	}

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 { // no state is kept: the same answer every time
		res := get(t, rg.url+"/c", nil)
		if res.status != http.StatusServiceUnavailable || !strings.Contains(string(res.body), "not a directory") {
			t.Fatalf("status %d, body %q; want 503 naming the reason", res.status, trunc(res.body))
		}
		if strings.Contains(string(res.body), dir) {
			t.Errorf("error body names the spool path: %q", res.body)
		}
		if err := rg.lastErr(); !errors.Is(err, ErrSpool) {
			t.Errorf("OnError got %v, want ErrSpool", err)
		}
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	s.pullOK(t, rg, "c")
}

// A read-only spool filesystem is a 503 with the reason, and blobs are
// served again once it is writable.
func TestSpoolDirReadOnly(t *testing.T) {
	const size = 4 << 20
	dir := mountTmpfs(t, size)
	s := newBlobSet(t, 1<<20, false, "a", "b")
	rg := serveSet(t, s, Options{Dir: dir})
	s.pullOK(t, rg, "a")

	remount(t, dir, size, true)
	for range 2 {
		res := get(t, rg.url+"/b", nil)
		if res.status != http.StatusServiceUnavailable || !strings.Contains(string(res.body), "read-only file system") {
			t.Fatalf("status %d, body %q; want 503 naming the reason", res.status, trunc(res.body))
		}
		if strings.Contains(string(res.body), dir) {
			t.Errorf("error body names the spool path: %q", res.body)
		}
		if err := rg.lastErr(); !errors.Is(err, ErrSpool) {
			t.Errorf("OnError got %v, want ErrSpool", err)
		}
	}
	remount(t, dir, size, false)
	s.pullOK(t, rg, "b")
}

// Evicting a retained spool that a client is still reading does not disturb
// that client: it keeps the spool open and gets every byte, verified; the
// blocks are freed when it finishes. A new blob that needs the room evicts
// further (here both retained spools) and is served.
func TestSpoolFullEvictsWhileRead(t *testing.T) {
	// Blobs larger than the socket buffers (net.ipv4.tcp_wmem's 4 MiB and
	// the client's small receive buffer), so that the parked response below
	// cannot have finished into them.
	dir := mountTmpfs(t, 64<<20)
	s := newBlobSet(t, 24<<20, false, "a", "b", "c")
	rg := serveSet(t, s, Options{Dir: dir, MaxSpoolBytes: 1 << 30})
	s.pullOK(t, rg, "a")
	s.pullOK(t, rg, "b")
	waitFor(t, "a and b retained", func() bool { return rg.Stats().Retained == 2 })

	// A client with a small receive buffer: loopback autotuning would
	// otherwise take in most of the blob (tcp_rmem up to 32 MiB).
	small := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<10)
			})
			return errors.Join(err, serr)
		},
	}).DialContext}}
	resp, err := small.Get(rg.url + "/a")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, 4096)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	// a's response is now parked mid-body, holding its spool; b is made
	// the most recently used, so a is the oldest.
	s.pullOK(t, rg, "b")
	s.pullOK(t, rg, "c")
	if st := rg.Stats(); st.Retained != 1 || st.Fetches != 3 {
		t.Errorf("want only c retained after making room: %+v", st)
	}
	if free, _ := diskFree(dir); free >= 24<<20 {
		t.Errorf("%d bytes free while a is read: its spool was freed under its reader", free)
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(append(head, rest...), s.blobs["a"]) {
		t.Fatalf("reader of the evicted spool: %d bytes, err %v", len(head)+len(rest), err)
	}
	waitFor(t, "evicted spools closed", func() bool { return openSpools(t, dir) == 1 })
}
