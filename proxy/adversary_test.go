package proxy

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/trustgate/trustgate/internal/peers"
	"github.com/trustgate/trustgate/policy"
)

// recordingEdges is an in-memory EdgeStore that remembers which digests were recorded.
type recordingEdges struct {
	mu  sync.Mutex
	rec map[digest.Digest]Edges
}

func (s *recordingEdges) Edges(_ context.Context, d digest.Digest) (Edges, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.rec[d]
	return e, ok, nil
}

func (s *recordingEdges) Record(_ context.Context, d digest.Digest, e Edges) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec == nil {
		s.rec = map[digest.Digest]Edges{}
	}
	s.rec[d] = e
	return nil
}

func (s *recordingEdges) has(d string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.rec[digest.Digest(d)]
	return ok
}

// TestUnverifiedManifestsLeaveNoEdges: manifests served unverified (off mode, warn mode's
// unsigned tags and digests) add nothing to the edge store. Their edges are only needed once a
// signature reaches them, and the walk fetches them then; recording them would let anyone who can
// push to an off-mode repository fill the bounded store (and the memory in front of it) with
// junk, so the edges of signed images would no longer persist.
func TestUnverifiedManifestsLeaveNoEdges(t *testing.T) {
	reg := peers.StartRegistry(t)
	store := &recordingEdges{}
	e := newEnv(t, reg, envConfig{edges: store, rules: []policy.RuleConfig{
		{Match: "docker.io/off/**", Mode: policy.Off},
		{Match: "docker.io/warn/**", Mode: policy.Warn},
	}})
	off := peers.PushImage(t, reg, "off/junk", "1")
	warn := peers.PushImage(t, reg, "warn/junk", "1")
	warnByDigest := peers.PushImage(t, reg, "warn/junk", "2")
	signed := peers.PushImage(t, reg, "warn/junk", "signed")
	e.trust.sign("docker.io/warn/junk", "signed", signed, "targets")

	for _, p := range []string{
		"/v2/off/junk/manifests/1", "/v2/off/junk/manifests/" + off.Digest,
		"/v2/warn/junk/manifests/1", "/v2/warn/junk/manifests/" + warnByDigest.Digest,
		"/v2/warn/junk/manifests/signed",
	} {
		if r := e.get(p); r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", p, r.status, r.body)
		}
	}
	for name, d := range map[string]string{"off mode": off.Digest, "warn mode by tag": warn.Digest, "warn mode by digest": warnByDigest.Digest} {
		if store.has(d) || e.srv.graph["docker.io"].mem.Contains(digest.Digest(d)) {
			t.Errorf("%s: edges of an unverified manifest were recorded", name)
		}
	}
	if !store.has(signed.Digest) {
		t.Errorf("edges of the signed manifest were not recorded")
	}
}
