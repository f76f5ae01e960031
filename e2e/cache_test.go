package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

// TestTrustFetchedOncePerTTL: a burst of pulls of one repository costs the trust server one
// bootstrap, not one per pull (the cache coalesces and keeps verified state for trust_ttl).
func TestTrustFetchedOncePerTTL(t *testing.T) {
	w := newWorld(t)
	signed := w.pushSigned(t, "library/busy", "v1")
	g := w.gate(t, peers.GateConfig{TrustTTL: 5 * time.Minute})

	isGUN := func(role string) func(peers.NotaryRequest) bool {
		return func(r peers.NotaryRequest) bool {
			return r.Method == http.MethodGet && strings.HasPrefix(r.URI, "/v2/docker.io/library/busy/_trust/tuf/"+role)
		}
	}
	beforeTS, beforeRoot := w.notary.CountRequests(isGUN("timestamp")), w.notary.CountRequests(isGUN("root"))
	const pulls = 16
	var wg sync.WaitGroup
	codes := make([]int, pulls)
	for i := range pulls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := getManifest(t, g, "library/busy", "v1")
			if got.digest() == signed.Digest {
				codes[i] = got.code
			}
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("pull %d: status %d or wrong digest", i, c)
		}
	}
	// notary-server logs a request after answering it: wait for the first line, then give any
	// further (unwanted) ones a moment to land.
	eventually(t, 30*time.Second, "timestamp fetch logged", func() (bool, string) {
		n := w.notary.CountRequests(isGUN("timestamp")) - beforeTS
		return n >= 1, fmt.Sprint(n)
	})
	time.Sleep(300 * time.Millisecond)
	if n := w.notary.CountRequests(isGUN("timestamp")) - beforeTS; n != 1 {
		t.Errorf("%d concurrent pulls caused %d timestamp fetches, want 1", pulls, n)
	}
	if n := w.notary.CountRequests(isGUN("root")) - beforeRoot; n != 1 {
		t.Errorf("root fetched %d times, want 1 (bootstrap)", n)
	}
}
