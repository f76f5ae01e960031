package fanout

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// BenchmarkServe measures throughput to clients over loopback: cold (one
// upstream download fanned out) and warm (served from a retained spool).
func BenchmarkServe(b *testing.B) {
	const size = 64 << 20
	blob, dgst := randomBlob(b, 50, size)
	up := newUpstream(b, honest(blob))
	for _, warm := range []bool{false, true} {
		for _, clients := range []int{1, 4} {
			b.Run(fmt.Sprintf("warm=%v/clients=%d", warm, clients), func(b *testing.B) {
				// Cold iterations each get a fresh Group, so the
				// handler reads the current one.
				var cur atomic.Pointer[Group]
				cur.Store(New(Options{Dir: b.TempDir(), MaxSpoolBytes: 2 * size}))
				open := httpOpener(up.URL)
				px := httptestServer(b, func(w http.ResponseWriter, r *http.Request) {
					cur.Load().Serve(w, r, dgst, open)
				})
				if warm {
					pullDiscard(b, px.URL)
				}
				b.SetBytes(int64(size * clients))
				b.ResetTimer()
				for b.Loop() {
					if !warm {
						b.StopTimer()
						cur.Swap(New(Options{Dir: b.TempDir()})).Close()
						b.StartTimer()
					}
					var wg sync.WaitGroup
					for range clients {
						wg.Go(func() { pullDiscard(b, px.URL) })
					}
					wg.Wait()
				}
				b.StopTimer()
				cur.Load().Close()
			})
		}
	}
}

func pullDiscard(b *testing.B, url string) {
	resp, err := http.Get(url)
	if err != nil {
		b.Error(err)
		return
	}
	defer resp.Body.Close()
	// A large buffer, as registry clients and bench/stream.go read: with
	// io.Discard's small one the client's read calls cost more than
	// serving, and the benchmark would measure the client.
	if n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, resp.Body, make([]byte, 256<<10)); err != nil || resp.StatusCode != 200 {
		b.Errorf("status %d, %d bytes, err %v", resp.StatusCode, n, err)
	}
}

// BenchmarkRangeHeadCold measures what a Range-heavy client (lazy pulls,
// parallel chunked downloads) waits for a small range at the head of a cold
// blob: ns/op is the time until the 2 KiB range completes, first-byte-ns the
// time until its first byte. The range's last byte is held back until the
// whole blob is downloaded and verified, so ns/op grows with the blob while
// first-byte-ns does not.
func BenchmarkRangeHeadCold(b *testing.B) {
	for _, size := range []int{64 << 20, 1 << 30} {
		b.Run(fmt.Sprintf("blob=%dMiB", size>>20), func(b *testing.B) {
			const block = 1 << 20
			chunk, _ := randomBlob(b, 51, block)
			h := sha256.New()
			for range size / block {
				h.Write(chunk)
			}
			dgst := digest.NewDigest(digest.SHA256, h)
			up := newUpstream(b, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(size))
				for range size / block {
					if _, err := w.Write(chunk); err != nil {
						return
					}
				}
			})
			var cur atomic.Pointer[Group]
			cur.Store(New(Options{Dir: b.TempDir()}))
			open := httpOpener(up.URL)
			px := httptestServer(b, func(w http.ResponseWriter, r *http.Request) {
				cur.Load().Serve(w, r, dgst, open)
			})
			var firstByte time.Duration
			iters := 0
			for b.Loop() {
				iters++
				b.StopTimer()
				cur.Swap(New(Options{Dir: b.TempDir()})).Close()
				req, _ := http.NewRequest(http.MethodGet, px.URL, nil)
				req.Header.Set("Range", "bytes=0-2047")
				b.StartTimer()
				t0 := time.Now()
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				var one [1]byte
				if _, err := io.ReadFull(resp.Body, one[:]); err != nil {
					b.Fatal(err)
				}
				firstByte += time.Since(t0)
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 206 || n != 2047 {
					b.Fatalf("status %d, %d bytes, err %v", resp.StatusCode, n+1, err)
				}
				// Let the download finish before the next Group, so
				// iterations do not overlap.
				b.StopTimer()
				waitDownloads(b, cur.Load())
				b.StartTimer()
			}
			b.ReportMetric(float64(firstByte.Nanoseconds())/float64(iters), "first-byte-ns")
			cur.Load().Close()
		})
	}
}

// waitDownloads waits until g has no download in flight.
func waitDownloads(tb testing.TB, g *Group) {
	waitFor(tb, "downloads to finish", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.inflight) == 0
	})
}
