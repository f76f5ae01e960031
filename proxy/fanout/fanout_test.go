package fanout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// gated serves blob honestly but stops after cut bytes until release is
// closed, so a test can line clients up on one download in flight.
func gated(blob []byte, cut int, release <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
		w.Write(blob[:cut])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Write(blob[cut:])
	}
}

func TestConcurrentClientsOneFetch(t *testing.T) {
	const clients = 16
	blob, dgst := randomBlob(t, 10, 8<<20+3)
	release := make(chan struct{})
	up := newUpstream(t, gated(blob, len(blob)/3, release))
	g := newGroup(t, Options{})
	px := proxyFor(t, g, dgst, httpOpener(up.URL))

	results := make([]result, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() { results[i] = get(t, px.URL, nil) })
	}
	waitFor(t, "all clients to join", func() bool { return g.Stats().Joins == clients-1 })
	close(release)
	wg.Wait()

	for i, res := range results {
		if res.err != nil || res.status != 200 || !bytes.Equal(res.body, blob) {
			t.Errorf("client %d: status %d err %v len %d", i, res.status, res.err, len(res.body))
		}
	}
	if s := g.Stats(); s.Fetches != 1 || s.Opens != 1 || s.UpstreamBytes != int64(len(blob)) {
		t.Errorf("stats %+v", s)
	}
	if n := up.requests.Load(); n != 1 {
		t.Errorf("upstream saw %d requests, want 1", n)
	}
}

// A lying upstream must never produce a complete response: every client
// on the download sees a short body against its Content-Length and a
// transport error.
func TestLyingUpstream(t *testing.T) {
	blob, dgst := randomBlob(t, 11, 2<<20)
	flip := func(i int) []byte {
		b := bytes.Clone(blob)
		b[i] ^= 0x80
		return b
	}
	claim := func(open Opener, delta int64) Opener {
		return func(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
			body, size, err := open(ctx, off)
			return body, size + delta, err
		}
	}
	tests := []struct {
		name     string
		body     []byte // what upstream sends, with Content-Length len(blob)
		sizeLie  int64  // added to the size the Opener reports
		wantSize int64  // Content-Length the clients were promised
	}{
		{"wrong last byte", flip(len(blob) - 1), 0, int64(len(blob))},
		{"wrong first byte", flip(0), 0, int64(len(blob))},
		{"truncated", blob[:len(blob)/2], 0, int64(len(blob))},
		{"longer than announced", blob, -1, int64(len(blob)) - 1},
		{"shorter than announced", blob, +1, int64(len(blob)) + 1},
	}
	for _, tc := range tests {
		for _, wk := range writerKinds {
			t.Run(tc.name+"/"+wk.name, func(t *testing.T) {
				// Upstream pauses after a quarter of the body until every
				// client has its response headers, so all of them are
				// mid-body when the lie is found. (A client arriving after
				// the verdict gets an error status instead.)
				release := make(chan struct{})
				up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
					cut := len(tc.body) / 4
					w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
					w.Write(tc.body[:cut])
					w.(http.Flusher).Flush()
					<-release
					w.Write(tc.body[cut:])
				})
				g := newGroup(t, Options{})
				px := proxyWith(t, wk, g, dgst, claim(httpOpener(up.URL), tc.sizeLie))

				results := make([]result, 3)
				var headers sync.WaitGroup
				var wg sync.WaitGroup
				for i := range results {
					headers.Add(1)
					wg.Go(func() {
						resp, err := http.Get(px.URL)
						headers.Done()
						if err != nil {
							results[i].err = err
							return
						}
						defer resp.Body.Close()
						body, err := io.ReadAll(resp.Body)
						results[i] = result{status: resp.StatusCode, header: resp.Header, body: body, err: err}
					})
				}
				headers.Wait()
				close(release)
				wg.Wait()
				for i, res := range results {
					if res.status != 200 {
						t.Fatalf("client %d: status %d, body %q, err %v", i, res.status, trunc(res.body), res.err)
					}
					if n := contentLength(t, res.header); n != tc.wantSize {
						t.Errorf("client %d: Content-Length %d, want %d", i, n, tc.wantSize)
					}
					if res.err == nil || int64(len(res.body)) >= tc.wantSize {
						t.Errorf("client %d: read %d of %d bytes with err %v; want an aborted transfer", i, len(res.body), tc.wantSize, res.err)
					}
				}
				s := g.Stats()
				if s.Fetches != 1 || s.Failures != 1 || s.Aborts != int64(len(results)) {
					t.Errorf("stats %+v", s)
				}
			})
		}
	}
}

// A request that reaches a download after its verdict (it joined just
// before the failure was published) gets an error status through OnError,
// not headers followed by an aborted body.
func TestLateJoinerOfFailedDownload(t *testing.T) {
	blob, dgst := randomBlob(t, 19, 1<<20)
	wrong := bytes.Clone(blob)
	wrong[0] ^= 1
	gate := &eofGate{r: bytes.NewReader(wrong), release: make(chan struct{})}
	g := newGroup(t, Options{})
	px := proxyFor(t, g, dgst, func(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
		return gate, int64(len(wrong)), nil
	})
	resp, err := http.Get(px.URL) // returns once its headers are out
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	waitFor(t, "all upstream bytes", func() bool { return g.Stats().UpstreamBytes == int64(len(blob)) })
	late := g.peek(dgst) // joins while the download is in flight
	if late == nil {
		t.Fatal("no download in flight")
	}
	defer late.release()
	gate.Close()
	if err := late.verified(context.Background()); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("verdict %v, want ErrDigestMismatch", err)
	}
	if _, err := late.waitSize(context.Background()); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("late joiner: waitSize err %v, want ErrDigestMismatch", err)
	}
	if body, err := io.ReadAll(resp.Body); resp.StatusCode != 200 || err == nil {
		t.Errorf("first client: status %d, %d bytes, err %v; want aborted", resp.StatusCode, len(body), err)
	}
}

// A dropped upstream connection is resumed with Range and the clients
// never notice.
func TestResumeDroppedUpstream(t *testing.T) {
	blob, dgst := randomBlob(t, 12, 4<<20)
	var once sync.Once
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		dropped := false
		once.Do(func() {
			dropped = true
			w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
			w.Write(blob[:len(blob)/2+5])
		})
		if !dropped {
			honest(blob)(w, r)
		}
	})
	g := newGroup(t, Options{})
	px := proxyFor(t, g, dgst, httpOpener(up.URL))
	res := get(t, px.URL, nil)
	if res.err != nil || !bytes.Equal(res.body, blob) {
		t.Fatalf("status %d err %v len %d", res.status, res.err, len(res.body))
	}
	if s := g.Stats(); s.Fetches != 1 || s.Opens != 2 || s.Resumes != 1 || s.UpstreamBytes != int64(len(blob)) {
		t.Errorf("stats %+v", s)
	}
}

func TestUpstreamIdleTimeout(t *testing.T) {
	blob, dgst := randomBlob(t, 13, 1<<20)
	never := make(chan struct{})
	up := newUpstream(t, gated(blob, 1000, never))
	g := newGroup(t, Options{IdleTimeout: 200 * time.Millisecond, MaxResumes: -1})
	px := proxyFor(t, g, dgst, httpOpener(up.URL))
	res := get(t, px.URL, nil)
	if res.status != 200 || res.err == nil || len(res.body) >= len(blob) {
		t.Fatalf("status %d err %v len %d; want aborted", res.status, res.err, len(res.body))
	}
	if s := g.Stats(); s.Failures != 1 || s.Aborts != 1 {
		t.Errorf("stats %+v", s)
	}
}

// A client that stops reading must not hold back another: the fast client
// completes while the slow one has not read past its first bytes. The blob
// is far larger than loopback socket buffers, so coupling would deadlock.
func TestSlowAndFastClient(t *testing.T) {
	blob, dgst := randomBlob(t, 14, 48<<20)
	up := newUpstream(t, honest(blob))
	g := newGroup(t, Options{MaxSpoolBytes: 1 << 30})
	px := proxyFor(t, g, dgst, httpOpener(up.URL))

	slow, err := http.Get(px.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Body.Close()
	head := make([]byte, 64<<10)
	if _, err := io.ReadFull(slow.Body, head); err != nil {
		t.Fatal(err)
	}

	fast := get(t, px.URL, nil)
	if fast.err != nil || !bytes.Equal(fast.body, blob) {
		t.Fatalf("fast client: err %v len %d", fast.err, len(fast.body))
	}

	rest, err := io.ReadAll(slow.Body)
	if err != nil || !bytes.Equal(append(head, rest...), blob) {
		t.Fatalf("slow client: err %v len %d", err, len(head)+len(rest))
	}
	if s := g.Stats(); s.Fetches != 1 || s.Joins+s.Hits != 1 {
		t.Errorf("stats %+v", s)
	}
}

// One client leaving mid-stream affects neither the download nor the others.
func TestClientDisconnect(t *testing.T) {
	blob, dgst := randomBlob(t, 15, 8<<20)
	release := make(chan struct{})
	up := newUpstream(t, gated(blob, len(blob)/2, release))
	g := newGroup(t, Options{MaxSpoolBytes: 1 << 30})
	px := proxyFor(t, g, dgst, httpOpener(up.URL))

	quit := startThenQuit(t, px.URL, 100<<10)

	var stayer result
	var wg sync.WaitGroup
	wg.Go(func() { stayer = get(t, px.URL, nil) })
	waitFor(t, "second client to join", func() bool { return g.Stats().Joins == 1 })
	quit()
	close(release)
	wg.Wait()

	if stayer.err != nil || !bytes.Equal(stayer.body, blob) {
		t.Fatalf("remaining client: err %v len %d", stayer.err, len(stayer.body))
	}
	if s := g.Stats(); s.Fetches != 1 || s.Failures != 0 || s.Aborts != 0 {
		t.Errorf("stats %+v", s)
	}
}

// With every client gone the download still completes, so the retry is
// served without going upstream again.
func TestAllClientsGoneDownloadCompletes(t *testing.T) {
	blob, dgst := randomBlob(t, 16, 8<<20)
	release := make(chan struct{})
	up := newUpstream(t, gated(blob, len(blob)/2, release))
	g := newGroup(t, Options{MaxSpoolBytes: 1 << 30})
	px := proxyFor(t, g, dgst, httpOpener(up.URL))

	startThenQuit(t, px.URL, 100<<10)()
	close(release)
	waitFor(t, "download to complete and be retained", func() bool { return g.Stats().Retained == 1 })

	res := get(t, px.URL, nil)
	if res.err != nil || !bytes.Equal(res.body, blob) {
		t.Fatalf("retry: err %v len %d", res.err, len(res.body))
	}
	if s := g.Stats(); s.Fetches != 1 || s.Hits != 1 || up.requests.Load() != 1 {
		t.Errorf("stats %+v, upstream requests %d", s, up.requests.Load())
	}
}

// Spool files are unlinked at once and their descriptors closed when the
// download and its last reader are done (or, if retained, on eviction); a
// response's own descriptor for sendfile is closed when it ends.
func TestSpoolLifecycle(t *testing.T) {
	blob, dgst := randomBlob(t, 17, 4<<20)
	for _, keep := range []int64{0, 1 << 30} {
		t.Run(fmt.Sprintf("MaxSpoolBytes=%d", keep), func(t *testing.T) {
			dir := t.TempDir()
			release := make(chan struct{})
			up := newUpstream(t, gated(blob, len(blob)/2, release))
			g := newGroup(t, Options{Dir: dir, MaxSpoolBytes: keep})
			px := proxyFor(t, g, dgst, httpOpener(up.URL))

			var res result
			var wg sync.WaitGroup
			wg.Go(func() { res = get(t, px.URL, nil) })
			waitFor(t, "download to start", func() bool { return g.Stats().UpstreamBytes > 0 })
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("spool dir has %d entries during download, want 0 (unlinked)", len(ents))
			}
			if n := spoolFiles(t, dir); n != 1 {
				t.Errorf("%d spool files open during download, want 1", n)
			}
			close(release)
			wg.Wait()
			if res.err != nil || !bytes.Equal(res.body, blob) {
				t.Fatalf("err %v len %d", res.err, len(res.body))
			}
			want := 0
			if keep > 0 {
				want = 1
			}
			waitFor(t, "spool to be closed", func() bool { return openSpools(t, dir) == want })
			g.Close()
			if n := openSpools(t, dir); n != 0 {
				t.Errorf("%d open spools after Close", n)
			}
		})
	}
}

func TestRetentionBound(t *testing.T) {
	const n = 1 << 20
	blobs := map[string][]byte{}
	digests := map[string]string{}
	for i, name := range []string{"a", "b", "c"} {
		b, d := randomBlob(t, uint64(20+i), n)
		blobs[name], digests[name] = b, d.String()
	}
	var reqs sync.Map
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		c, _ := reqs.LoadOrStore(r.URL.Path, new(int))
		*c.(*int)++
		honest(blobs[r.URL.Path[1:]])(w, r)
	})
	dir := t.TempDir()
	g := newGroup(t, Options{Dir: dir, MaxSpoolBytes: 2*n + n/2})
	px := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Path[1:]
		g.Serve(w, r, digestOf(digests[name]), httpOpener(up.URL+"/"+name))
	})
	pull := func(name string) {
		t.Helper()
		if res := get(t, px.URL+"/"+name, nil); res.err != nil || !bytes.Equal(res.body, blobs[name]) {
			t.Fatalf("pull %s: status %d err %v", name, res.status, res.err)
		}
	}
	for _, name := range []string{"a", "b", "c"} {
		pull(name)
	}
	waitFor(t, "two retained", func() bool { s := g.Stats(); return s.Retained == 2 && s.Fetches == 3 })
	if s := g.Stats(); s.RetainedBytes != 2*n {
		t.Errorf("retained bytes %d, want %d", s.RetainedBytes, 2*n)
	}
	waitFor(t, "evicted spool closed", func() bool { return openSpools(t, dir) == 2 })
	pull("c") // retained
	if s := g.Stats(); s.Fetches != 3 || s.Hits != 1 {
		t.Errorf("after pulling c again: %+v", s)
	}
	pull("a") // evicted, fetched again
	if s := g.Stats(); s.Fetches != 4 {
		t.Errorf("after pulling a again: %+v", s)
	}
}

// A client that stops reading altogether is cut off after IdleTimeout, so
// it cannot pin the spool (and its disk space) forever.
func TestStalledClientReleasesSpool(t *testing.T) {
	blob, dgst := randomBlob(t, 18, 48<<20)
	up := newUpstream(t, honest(blob))
	dir := t.TempDir()
	g := newGroup(t, Options{Dir: dir, IdleTimeout: 2 * time.Second})
	px := proxyFor(t, g, dgst, httpOpener(up.URL))

	resp, err := http.Get(px.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, 64<<10)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "download to finish", func() bool { return g.Stats().UpstreamBytes == int64(len(blob)) })
	waitFor(t, "stalled response to release the spool", func() bool { return openSpools(t, dir) == 0 })
	if _, err := io.Copy(io.Discard, resp.Body); err == nil {
		t.Error("stalled client got a complete body")
	}
}

// startThenQuit starts a GET of url, reads its first n bytes and returns a func that walks away
// (cancels the request and closes the body), for tests of clients that leave mid-stream.
func startThenQuit(t *testing.T, url string, n int) (quit func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, n)); err != nil {
		cancel()
		t.Fatal(err)
	}
	return func() {
		cancel()
		resp.Body.Close()
	}
}
