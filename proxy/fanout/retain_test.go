package fanout

import (
	"bytes"
	"net/http"
	"testing"
)

// Verified reports only completed, verified, retained spools: not a digest never fetched, not a
// download that failed verification, and not a spool evicted from retention.
func TestVerified(t *testing.T) {
	blob, dgst := randomBlob(t, 40, 4<<10)
	other, otherDgst := randomBlob(t, 41, 4<<10)
	bad, badDgst := randomBlob(t, 42, 4<<10)
	g := newGroup(t, Options{MaxSpoolBytes: int64(len(blob)) + 1})

	if _, ok := g.Verified(dgst); ok {
		t.Fatal("Verified before any download")
	}
	if r := get(t, proxyFor(t, g, dgst, httpOpener(newUpstream(t, honest(blob)).URL)).URL, nil); r.status != http.StatusOK || !bytes.Equal(r.body, blob) {
		t.Fatalf("GET: %d %v", r.status, r.err)
	}
	if size, ok := g.Verified(dgst); !ok || size != int64(len(blob)) {
		t.Fatalf("Verified = %d, %v; want %d, true", size, ok, len(blob))
	}

	corrupt := bytes.Clone(bad)
	corrupt[0] ^= 1
	get(t, proxyFor(t, g, badDgst, httpOpener(newUpstream(t, honest(corrupt)).URL)).URL, nil)
	waitFor(t, "failed download unregistered", func() bool {
		d := g.peek(badDgst)
		if d != nil {
			d.release()
		}
		return d == nil
	})
	if _, ok := g.Verified(badDgst); ok {
		t.Error("a blob that failed verification is reported verified")
	}

	// The budget holds one blob: retaining another evicts the first.
	get(t, proxyFor(t, g, otherDgst, httpOpener(newUpstream(t, honest(other)).URL)).URL, nil)
	waitFor(t, "second blob retained", func() bool { _, ok := g.Verified(otherDgst); return ok })
	if _, ok := g.Verified(dgst); ok {
		t.Error("an evicted spool is reported verified")
	}
}
