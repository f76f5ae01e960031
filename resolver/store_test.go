package resolver

import (
	"strings"
	"testing"
)

// TestEscapeNameNoCollisions: two different GUNs (or roles) never share a trust-dir entry. A
// name longer than maxName once escaped is stored under its hash; a short name that reads
// like such a hash must not land on the same entry (it would load the other GUN's root as its
// trust anchor and its floors as its own).
func TestEscapeNameNoCollisions(t *testing.T) {
	long := "registry.example.com/" + strings.Repeat("deep/", 60) + "app"
	lookalike := escapeName(long)
	if !strings.HasPrefix(lookalike, hashedPrefix) {
		t.Fatalf("escapeName(%d bytes) = %q, want a hashed name", len(long), lookalike)
	}
	for _, pair := range [][2]string{
		{long, lookalike},
		{"targets/" + strings.Repeat("r", 240), escapeName("targets/" + strings.Repeat("r", 240))},
		{"..", escapeName("..")},
	} {
		if a, b := escapeName(pair[0]), escapeName(pair[1]); a == b {
			t.Errorf("escapeName(%q) = escapeName(%q) = %q", pair[0], pair[1], a)
		}
	}
}
