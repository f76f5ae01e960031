package fanout

import (
	"crypto/sha256"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// A 1 GiB blob streamed to two clients must not grow the heap: the bytes go
// through the spool file, and every party holds one fixed buffer. The blob
// is generated on the fly (a 1 MiB random block repeated) and never held.
func TestMemoryFlat1GiB(t *testing.T) {
	const (
		block   = 1 << 20
		blocks  = 1024
		size    = block * blocks
		clients = 2
		limit   = 64 << 20
	)
	chunk, _ := randomBlob(t, 40, block)
	h := sha256.New()
	for range blocks {
		h.Write(chunk)
	}
	dgst := digest.NewDigest(digest.SHA256, h)

	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		for range blocks {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	g := newGroup(t, Options{})
	px := proxyFor(t, g, dgst, httpOpener(up.URL))

	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			resp, err := http.Get(px.URL)
			if err != nil {
				t.Errorf("client %d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			if err != nil || n != size || digest.NewDigest(digest.SHA256, h) != dgst {
				t.Errorf("client %d: %d bytes, err %v, digest match %v", i, n, err, digest.NewDigest(digest.SHA256, h) == dgst)
			}
		})
	}
	wg.Wait()
	close(stop)
	<-sampled

	t.Logf("peak HeapInuse %.1f MiB while streaming %d MiB to %d clients", float64(peak.Load())/(1<<20), size>>20, clients)
	if p := peak.Load(); p > limit {
		t.Errorf("peak HeapInuse %d MiB exceeds %d MiB", p>>20, limit>>20)
	}
	if s := g.Stats(); s.Fetches != 1 || s.UpstreamBytes != size {
		t.Errorf("stats %+v", s)
	}
}
