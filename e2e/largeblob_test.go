package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

// TestLargeBlobStreams: a 1 GiB layer goes through trustgate with its digest intact while the
// proxy's peak resident memory stays small — blobs are streamed, not buffered.
func TestLargeBlobStreams(t *testing.T) {
	const (
		layerSize = 1 << 30
		maxRSS    = 100 << 20
	)
	w := newWorld(t)
	big := peers.PushBigImage(t, w.reg, "library/big", "v1", layerSize, 1)
	w.sign(t, "library/big", "v1", big)
	g := w.gate(t, peers.GateConfig{LogLevel: "info"})

	// Pull as a client does: the manifest by tag first, which makes its blobs servable.
	if got := getManifest(t, g, "library/big", "v1"); got.code != 200 || got.digest() != big.Digest {
		t.Fatalf("GET big:v1 = %d %s", got.code, got.body)
	}
	layer := big.Layers[0]
	c := &http.Client{Timeout: 5 * time.Minute}
	resp, err := c.Get(g.URL + "/v2/library/big/blobs/" + layer.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		t.Fatalf("GET blob: %s %s", resp.Status, b)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		t.Fatalf("reading blob after %d bytes: %v", n, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); n != layer.Size || got != layer.Digest {
		t.Errorf("blob: %d bytes hashing to %s; want %d bytes %s", n, got, layer.Size, layer.Digest)
	}
	rss, err := peers.PeakRSS(g.Pid())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("trustgate peak RSS after streaming %d MiB: %.1f MiB", layer.Size>>20, float64(rss)/(1<<20))
	if rss >= maxRSS {
		t.Errorf("trustgate peak RSS %d MiB, want < %d MiB", rss>>20, maxRSS>>20)
	}
}
