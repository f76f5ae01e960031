package fanout

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
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
