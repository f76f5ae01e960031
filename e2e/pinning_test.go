package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/peers"
)

// rootKeyIDs reads the root role's key IDs (the certificate key IDs trust_pinning.certs takes)
// from the root.json the notary CLI published.
func rootKeyIDs(t *testing.T, notaryURL, gun string) []string {
	t.Helper()
	got := get(t, http.MethodGet, notaryURL+"/v2/"+gun+"/_trust/tuf/root.json")
	var root struct {
		Signed struct {
			Roles map[string]struct {
				KeyIDs []string `json:"keyids"`
			} `json:"roles"`
		} `json:"signed"`
	}
	if got.code != 200 || json.Unmarshal(got.body, &root) != nil || len(root.Signed.Roles["root"].KeyIDs) == 0 {
		t.Fatalf("root.json of %s: %d %s", gun, got.code, got.body)
	}
	return root.Signed.Roles["root"].KeyIDs
}

// TestTrustPinning: a GUN pinned to its real root certificate is served; pinned to another key it
// is a 503 (trust failure, not "unsigned"); with TOFU disabled an unpinned GUN is not trusted.
func TestTrustPinning(t *testing.T) {
	w := newWorld(t)
	pinned := w.pushSigned(t, "library/pinned", "v1")
	w.pushSigned(t, "library/unpinned", "v1")
	ids := rootKeyIDs(t, w.notary.URL, gun("library/pinned"))

	g := w.gate(t, peers.GateConfig{PinCerts: map[string][]string{gun("library/pinned"): ids}, DisableTOFU: true})
	if got := getManifest(t, g, "library/pinned", "v1"); got.code != 200 || got.digest() != pinned.Digest {
		t.Errorf("pinned to its root key: %d %s; want 200 %s", got.code, got.body, pinned.Digest)
	}
	if got := getManifest(t, g, "library/unpinned", "v1"); got.code != http.StatusServiceUnavailable {
		t.Errorf("unpinned GUN with disable_tofu: %d %s; want 503", got.code, got.body)
	}

	wrong := []string{strings.Repeat("0f", 32)}
	g2 := w.gate(t, peers.GateConfig{PinCerts: map[string][]string{gun("library/pinned"): wrong}})
	if got := getManifest(t, g2, "library/pinned", "v1"); got.code != http.StatusServiceUnavailable {
		t.Errorf("pinned to a foreign key: %d %s; want 503", got.code, got.body)
	}
	// A wildcard pin covers the namespace.
	g3 := w.gate(t, peers.GateConfig{PinCerts: map[string][]string{"docker.io/library/pin*": ids}, DisableTOFU: true})
	if got := getManifest(t, g3, "library/pinned", "v1"); got.code != 200 || got.digest() != pinned.Digest {
		t.Errorf("wildcard pin: %d %s", got.code, got.body)
	}
}
