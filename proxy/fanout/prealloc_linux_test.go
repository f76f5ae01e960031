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

// The spool reserves a verified size before the first byte arrives; a size
// only upstream vouches for is reserved no further than MaxSpoolBytes has
// free.
func TestSpoolPreallocated(t *testing.T) {
	blob, dgst := randomBlob(t, 60, 8<<20)
	for _, c := range []struct {
		name     string
		verified bool
		budget   int64
		min, max int64 // bytes allocated after the first MiB
	}{
		{"verified", true, 0, int64(len(blob)), 1 << 40},
		{"unverified", false, 2 << 20, 2 << 20, 2 << 20},
		{"unverified, no budget", false, 0, 1 << 20, 1 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			release := make(chan struct{})
			up := newUpstream(t, gated(blob, 1<<20, release))
			g := newGroup(t, Options{MaxSpoolBytes: c.budget})
			open := httpOpener(up.URL)
			px := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
				if c.verified {
					r = r.WithContext(WithSize(r.Context(), int64(len(blob))))
				}
				g.Serve(w, r, dgst, open)
			})

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
			if n := st.Blocks * 512; n < c.min || n > c.max {
				t.Errorf("spool has %d bytes allocated after 1 MiB of %d, want %d to %d", n, len(blob), c.min, c.max)
			}
			close(release)
			wg.Wait()
			if res.err != nil || !bytes.Equal(res.body, blob) {
				t.Fatalf("status %d err %v len %d", res.status, res.err, len(res.body))
			}
		})
	}
}

// An upstream announcing a size other than the verified one is refused
// before anything is reserved or sent; one announcing none is read no
// further than the verified size.
func TestVerifiedSize(t *testing.T) {
	blob, dgst := randomBlob(t, 62, 1<<20)
	for _, c := range []struct {
		name    string
		handler http.HandlerFunc
		want    error
	}{
		{"announces more", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1099511627776")
			w.Write(blob)
		}, ErrSizeMismatch},
		{"announces less", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "10")
			w.Write(blob[:10])
		}, ErrSizeMismatch},
		{"no length, longer body", func(w http.ResponseWriter, r *http.Request) {
			w.Write(blob)
			w.(http.Flusher).Flush()
			w.Write(make([]byte, 8<<20))
		}, ErrTooLong},
	} {
		t.Run(c.name, func(t *testing.T) {
			up := newUpstream(t, c.handler)
			var got error
			var mu sync.Mutex
			g := newGroup(t, Options{MaxResumes: -1, OnError: func(w http.ResponseWriter, r *http.Request, err error) {
				mu.Lock()
				got = err
				mu.Unlock()
				defaultOnError(w, r, err)
			}})
			open := httpOpener(up.URL)
			px := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
				g.Serve(w, r.WithContext(WithSize(r.Context(), int64(len(blob)))), dgst, open)
			})
			res := get(t, px.URL, nil)
			if res.status == http.StatusOK && res.err == nil {
				t.Fatalf("served completely")
			}
			waitFor(t, "the download to fail", func() bool { return g.Stats().Failures == 1 })
			mu.Lock()
			defer mu.Unlock()
			if c.want == ErrSizeMismatch && (!errors.Is(got, c.want) || res.status != http.StatusBadGateway) {
				t.Errorf("status %d, OnError got %v, want %v before any header", res.status, got, c.want)
			}
			if s := g.Stats(); s.UpstreamBytes > int64(len(blob)) {
				t.Errorf("%d bytes taken from upstream, the verified size is %d", s.UpstreamBytes, len(blob))
			}
		})
	}
}

// A blob of verified size the spool's filesystem cannot hold fails before any response
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
	open := func(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
		return io.NopCloser(bytes.NewReader(make([]byte, 10))), 1 << 60, nil
	}
	px := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
		g.Serve(w, r.WithContext(WithSize(r.Context(), 1<<60)), dgst, open)
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
