package fanout

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
)

// The spool reserves the announced size before the first byte arrives.
func TestSpoolPreallocated(t *testing.T) {
	blob, dgst := randomBlob(t, 60, 8<<20)
	release := make(chan struct{})
	up := newUpstream(t, gated(blob, 1<<20, release))
	g := newGroup(t, Options{})
	px := proxyFor(t, g, dgst, httpOpener(up.URL))

	var res result
	var wg sync.WaitGroup
	wg.Go(func() { res = get(t, px.URL, nil) })
	waitFor(t, "the first part of the blob", func() bool { return g.Stats().UpstreamBytes == 1<<20 })
	d := g.peek(dgst)
	if d == nil {
		t.Fatal("no download in flight")
	}
	var st syscall.Stat_t
	err := syscall.Fstat(int(d.file.Fd()), &st)
	d.release()
	if err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 < int64(len(blob)) {
		t.Errorf("spool has %d bytes allocated after 1 MiB of %d, want the whole blob reserved", st.Blocks*512, len(blob))
	}
	close(release)
	wg.Wait()
	if res.err != nil || !bytes.Equal(res.body, blob) {
		t.Fatalf("status %d err %v len %d", res.status, res.err, len(res.body))
	}
}

// A blob the spool's filesystem cannot hold fails before any response
// header, with an error status instead of a body aborted when the disk
// fills. The spool, not upstream, is at fault: 503 and ErrSpool. (No
// filesystem holds 2^60 bytes.)
func TestSpoolCannotHoldBlob(t *testing.T) {
	_, dgst := randomBlob(t, 61, 10)
	var got error
	var mu sync.Mutex
	g := newGroup(t, Options{OnError: func(w http.ResponseWriter, r *http.Request, err error) {
		mu.Lock()
		got = err
		mu.Unlock()
		defaultOnError(w, r, err)
	}})
	px := proxyFor(t, g, dgst, func(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
		return io.NopCloser(bytes.NewReader(make([]byte, 10))), 1 << 60, nil
	})
	res := get(t, px.URL, nil)
	if res.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", res.status)
	}
	mu.Lock()
	defer mu.Unlock()
	if !errors.Is(got, ErrSpool) || (!errors.Is(got, syscall.ENOSPC) && !errors.Is(got, syscall.EFBIG)) {
		t.Errorf("OnError got %v, want ErrSpool with ENOSPC or EFBIG", got)
	}
	if s := g.Stats(); s.Failures != 1 || s.UpstreamBytes != 0 {
		t.Errorf("stats %+v", s)
	}
}
