package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/trustgate/trustgate/internal/peers"
)

// endlessTrustServer is a hostile notary-server: every metadata file is a body that never ends.
type endlessTrustServer struct {
	*httptest.Server
	written atomic.Int64
	hits    atomic.Int64
}

func startEndlessTrustServer(t *testing.T) *endlessTrustServer {
	s := &endlessTrustServer{}
	chunk := []byte(strings.Repeat(" ", 64<<10))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("{"))
		for sent := int64(0); sent < 4<<30; {
			n, err := w.Write(chunk)
			sent += int64(n)
			s.written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// TestHostileTrustServerMemory: a trust server whose root.json never ends, and concurrent first
// pulls of distinct names, must not grow trustgate's memory past what trust_limits allows. Every
// pull fails closed (503), and the peak resident set (VmHWM) stays under a bound derived from
// max_metadata_bytes. The root cap is set to the whole budget, so the budget is what bounds it:
// four bootstraps at once could otherwise hold 4 × 16 MiB.
func TestHostileTrustServerMemory(t *testing.T) {
	const (
		pulls  = 12
		budget = 16 << 20
	)
	notary := startEndlessTrustServer(t)
	reg := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(reg.Close)
	g := peers.StartTrustgate(t, trustgateBin, peers.GateConfig{
		RegistryURL: reg.URL, NotaryURL: notary.URL, LogLevel: "info",
		MaxMetadataBytes: budget, MaxRootBytes: budget, MaxConcurrentBootstraps: 4,
	})
	before, err := peers.PeakRSS(g.Pid())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	codes := make([]int, pulls)
	for i := range pulls {
		wg.Go(func() {
			codes[i] = get(t, http.MethodGet, fmt.Sprintf("%s/v2/hostile/n%d/manifests/latest", g.URL, i), manifestAccept...).code
		})
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusServiceUnavailable {
			t.Errorf("pull %d: %d, want 503", i, c)
		}
	}
	peak, err := peers.PeakRSS(g.Pid())
	if err != nil {
		t.Fatal(err)
	}
	// The budget bounds the live download buffers; Go's collector lets the heap grow to about
	// twice the live set before it runs (3× covers that and the buffer being replaced while it
	// doubles), and 32 MiB covers goroutines, TLS and HTTP state of the requests themselves.
	bound := before + 3*budget + 32<<20
	t.Logf("peak RSS: %.1f MiB at start, %.1f MiB after %d concurrent first pulls (bound %.1f MiB); trust server wrote %d MiB in %d responses",
		float64(before)/(1<<20), float64(peak)/(1<<20), pulls, float64(bound)/(1<<20), notary.written.Load()>>20, notary.hits.Load())
	if peak > bound {
		t.Errorf("peak RSS %d MiB exceeds %d MiB", peak>>20, bound>>20)
	}
}
