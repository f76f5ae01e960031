package fanout

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
)

// A Range on a cold blob from a tampering upstream never completes: not when
// the flipped byte is inside the range, not when it is elsewhere in the blob.
// The client sees a body shorter than its Content-Length and a transport
// error, as for a full GET.
func TestRangeTamperedUpstream(t *testing.T) {
	blob, dgst := randomBlob(t, 70, 1<<20)
	size := len(blob)
	tests := []struct {
		name       string
		rng        string
		status     int
		start, end int // what a correct response would carry
	}{
		{"start", "bytes=0-2047", 206, 0, 2047},
		{"middle", "bytes=500000-600000", 206, 500000, 600000},
		{"open-ended middle", "bytes=500000-", 206, 500000, size - 1},
		{"end", fmt.Sprintf("bytes=%d-%d", size-2048, size-1), 206, size - 2048, size - 1},
		{"suffix", "bytes=-2048", 206, size - 2048, size - 1},
		{"single byte", "bytes=7-7", 206, 7, 7},
		// Several ranges are answered with the whole blob (200).
		{"multi", "bytes=0-10,20-30", 200, 0, size - 1},
	}
	for _, tc := range tests {
		for _, flipAt := range []struct {
			where string
			i     int
		}{{"inside", (tc.start + tc.end) / 2}, {"first byte of blob", 0}, {"last byte of blob", size - 1}} {
			for _, wk := range writerKinds {
				t.Run(tc.name+"/flip "+flipAt.where+"/"+wk.name, func(t *testing.T) {
					wrong := bytes.Clone(blob)
					wrong[flipAt.i] ^= 0x01
					up := newUpstream(t, honest(wrong))
					g := newGroup(t, Options{MaxSpoolBytes: 1 << 30})
					px := proxyWith(t, wk, g, dgst, httpOpener(up.URL))

					res := get(t, px.URL, map[string]string{"Range": tc.rng})
					if res.status == http.StatusBadGateway || (res.status == 0 && res.err != nil) {
						// The verdict came before the headers were sent
						// (502) or flushed (reset): no response at all.
						return
					}
					if res.status != tc.status {
						t.Fatalf("status %d, want %d or 502; body %q", res.status, tc.status, trunc(res.body))
					}
					want := int64(tc.end - tc.start + 1)
					if n := contentLength(t, res.header); n != want {
						t.Fatalf("Content-Length %d, want %d", n, want)
					}
					if res.err == nil || int64(len(res.body)) >= want {
						t.Fatalf("range %s completed: %d of %d bytes, err %v; want an aborted transfer", tc.rng, len(res.body), want, res.err)
					}
					if s := g.Stats(); s.Fetches != 1 || s.Failures != 1 || s.Aborts != 1 || s.Retained != 0 {
						t.Errorf("stats %+v", s)
					}
				})
			}
		}
	}
}

// A Range streams from a cold download but its last byte waits for the
// verdict on the whole blob; an honest download then completes it.
func TestRangeHoldsBackUntilVerified(t *testing.T) {
	blob, dgst := randomBlob(t, 71, 1<<20+5)
	wrong := bytes.Clone(blob)
	wrong[len(wrong)-1] ^= 1
	for _, tc := range []struct {
		name       string
		rng        string
		start, end int64
	}{
		{"start", "bytes=0-2047", 0, 2047},
		{"middle", "bytes=4096-65535", 4096, 65535},
		{"suffix", "bytes=-100", int64(len(blob)) - 100, int64(len(blob)) - 1},
	} {
		for _, honestBody := range []bool{true, false} {
			for _, wk := range writerKinds {
				t.Run(fmt.Sprintf("%s/honest=%v/%s", tc.name, honestBody, wk.name), func(t *testing.T) {
					body := blob
					if !honestBody {
						body = wrong
					}
					gate := &eofGate{r: bytes.NewReader(body), release: make(chan struct{})}
					g := newGroup(t, Options{})
					px := proxyWith(t, wk, g, dgst, func(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
						return gate, int64(len(body)), nil
					})
					req, _ := http.NewRequest(http.MethodGet, px.URL, nil)
					req.Header.Set("Range", tc.rng)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					if resp.StatusCode != 206 {
						t.Fatalf("status %d", resp.StatusCode)
					}
					var got lockedBuffer
					done := make(chan error, 1)
					go func() { _, err := io.Copy(&got, resp.Body); done <- err }()

					n := tc.end - tc.start + 1
					sw := func() int64 { return int64(got.Len()) }
					waitFor(t, "client to receive all but the last byte of the range", func() bool { return sw() >= n-1 })
					// The whole blob is spooled; only EOF, and so the verdict, is missing.
					waitFor(t, "upstream body read", func() bool { return g.Stats().UpstreamBytes == int64(len(body)) })
					select {
					case err := <-done:
						t.Fatalf("range finished before verification: %d bytes, err %v", sw(), err)
					default:
					}
					if sw() != n-1 {
						t.Fatalf("client has %d bytes before verification, want %d", sw(), n-1)
					}
					gate.Close()
					err = <-done
					if honestBody {
						if err != nil || !bytes.Equal(got.Bytes(), blob[tc.start:tc.end+1]) {
							t.Fatalf("honest: %d of %d bytes, err %v", got.Len(), n, err)
						}
						return
					}
					if err == nil || int64(got.Len()) >= n {
						t.Fatalf("tampered: %d of %d bytes, err %v; want an aborted transfer", got.Len(), n, err)
					}
				})
			}
		}
	}
}

// lockedBuffer is a bytes.Buffer one goroutine writes while another polls.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// Ranges of a retained, verified spool are served at once and completely.
func TestRangeFromRetainedSpool(t *testing.T) {
	blob, dgst := randomBlob(t, 72, 1<<20)
	up := newUpstream(t, honest(blob))
	g := newGroup(t, Options{MaxSpoolBytes: 1 << 30})
	px := proxyFor(t, g, dgst, httpOpener(up.URL))
	if res := get(t, px.URL, nil); res.err != nil || !bytes.Equal(res.body, blob) {
		t.Fatalf("warm-up: status %d err %v", res.status, res.err)
	}
	waitFor(t, "spool retained", func() bool { return g.Stats().Retained == 1 })
	for _, rng := range []struct {
		h          string
		start, end int
	}{{"bytes=0-2047", 0, 2047}, {"bytes=1000-1000", 1000, 1000}, {"bytes=-10", len(blob) - 10, len(blob) - 1}} {
		res := get(t, px.URL, map[string]string{"Range": rng.h})
		if res.status != 206 || res.err != nil || !bytes.Equal(res.body, blob[rng.start:rng.end+1]) {
			t.Errorf("%s: status %d err %v len %d", rng.h, res.status, res.err, len(res.body))
		}
	}
	if s := g.Stats(); s.Fetches != 1 || s.Hits != 3 || up.requests.Load() != 1 {
		t.Errorf("stats %+v, upstream requests %d", s, up.requests.Load())
	}
}

// Ranges and full GETs of one cold blob share one upstream download: with an
// honest upstream every one of them completes with its bytes, with a
// tampering one none does.
func TestRangesJoinOneDownload(t *testing.T) {
	blob, dgst := randomBlob(t, 73, 2<<20)
	size := len(blob)
	ranges := []struct {
		h          string
		start, end int
	}{
		{"", 0, size - 1},
		{"bytes=0-2047", 0, 2047},
		{"bytes=1000000-1100000", 1000000, 1100000},
		{"bytes=-512", size - 512, size - 1},
		{"bytes=1500000-", 1500000, size - 1},
	}
	for _, tampered := range []bool{false, true} {
		t.Run(fmt.Sprintf("tampered=%v", tampered), func(t *testing.T) {
			body := blob
			if tampered {
				body = bytes.Clone(blob)
				body[size/2] ^= 0x40
			}
			release := make(chan struct{})
			up := newUpstream(t, gated(body, size/4, release))
			g := newGroup(t, Options{})
			px := proxyFor(t, g, dgst, httpOpener(up.URL))

			results := make([]result, len(ranges))
			var headers, wg sync.WaitGroup
			for i, rg := range ranges {
				headers.Add(1)
				wg.Go(func() {
					req, _ := http.NewRequest(http.MethodGet, px.URL, nil)
					if rg.h != "" {
						req.Header.Set("Range", rg.h)
					}
					resp, err := http.DefaultClient.Do(req)
					headers.Done()
					if err != nil {
						results[i].err = err
						return
					}
					defer resp.Body.Close()
					b, err := io.ReadAll(resp.Body)
					results[i] = result{status: resp.StatusCode, header: resp.Header, body: b, err: err}
				})
			}
			headers.Wait()
			close(release)
			wg.Wait()
			for i, rg := range ranges {
				res := results[i]
				want := blob[rg.start : rg.end+1]
				switch {
				case res.status != 200 && res.status != 206:
					t.Errorf("%q: status %d, err %v", rg.h, res.status, res.err)
				case !tampered && (res.err != nil || !bytes.Equal(res.body, want)):
					t.Errorf("%q: %d of %d bytes, err %v", rg.h, len(res.body), len(want), res.err)
				case tampered && (res.err == nil || len(res.body) >= len(want)):
					t.Errorf("%q completed from a tampered upstream: %d of %d bytes, err %v", rg.h, len(res.body), len(want), res.err)
				}
			}
			if s := g.Stats(); s.Fetches != 1 || up.requests.Load() != 1 {
				t.Errorf("stats %+v, upstream requests %d; want one download", s, up.requests.Load())
			}
		})
	}
}
