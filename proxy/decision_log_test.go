package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/peers"
	"github.com/trustgate/trustgate/policy"
)

// TestOneDecisionPerVerdict: every request judge decides is logged as exactly one "decision"
// record naming repository, digest or tag, decision and reason: blobs whose download fails
// before a byte or is aborted mid-stream, tag lists and referrers included.
func TestOneDecisionPerVerdict(t *testing.T) {
	reg := peers.StartRegistry(t)
	l := startSizeLiar(t, reg)
	e := newEnv(t, reg, envConfig{upstreamURL: l.url, rules: []policy.RuleConfig{{Match: "docker.io/off/**", Mode: policy.Off}}})
	img := peers.PushIndex(t, reg, "library/alpine", "1")
	child := img.Children[0]
	peers.PushImage(t, reg, "off/app", "1")
	const g = "docker.io/library/alpine"
	e.trust.sign(g, "1", img, "targets")
	if r := e.get("/v2/alpine/manifests/" + child.Digest); r.status != http.StatusOK {
		t.Fatalf("child manifest: %d", r.status)
	}

	cases := []struct {
		name           string
		path           string
		setup, cleanup func()
		repo, key      string // key: the digest or tag the record names
		decision       string
		reason         string
		midStream      bool // the response must have been aborted after its headers
	}{
		{name: "blob served", path: "/v2/alpine/blobs/" + child.Layers[0].Digest,
			repo: g, key: child.Layers[0].Digest, decision: decisionAllow, reason: "reachable from"},
		{name: "blob aborted mid-stream", path: "/v2/alpine/blobs/" + child.Layers[1].Digest,
			setup: func() { l.lie(child.Layers[1].Digest, "flip", 0) }, cleanup: func() { l.lie("", "", 0) },
			repo: g, key: child.Layers[1].Digest, decision: decisionError, reason: "digest mismatch", midStream: true},
		{name: "blob refused before a byte", path: "/v2/alpine/blobs/" + img.Children[1].Layers[0].Digest,
			setup: func() {
				e.get("/v2/alpine/manifests/" + img.Children[1].Digest)
				l.lie(img.Children[1].Layers[0].Digest, "announce", 1<<30)
			},
			cleanup: func() { l.lie("", "", 0) },
			repo:    g, key: img.Children[1].Layers[0].Digest, decision: decisionError, reason: "size mismatch"},
		{name: "blob missing upstream", path: "/v2/off/app/blobs/sha256:" + strings.Repeat("0", 64),
			repo: "docker.io/off/app", key: "sha256:" + strings.Repeat("0", 64), decision: decisionError, reason: "404"},
		{name: "signed tag list", path: "/v2/alpine/tags/list",
			repo: g, decision: decisionAllow, reason: "signed tags"},
		{name: "relayed tag list missing upstream", path: "/v2/off/none/tags/list",
			repo: "docker.io/off/none", decision: decisionError, reason: "404"},
		{name: "referrers", path: "/v2/alpine/referrers/" + child.Digest,
			repo: g, key: child.Digest, decision: decisionAllow, reason: "referrers"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.setup != nil {
				c.setup()
			}
			before := len(e.decisions())
			status, body, complete := e.tryGet(c.path)
			if c.cleanup != nil {
				c.cleanup()
			}
			t.Logf("%d complete=%v %.200q", status, complete, body)
			if c.midStream && (status != http.StatusOK || complete) {
				t.Fatalf("%d, complete=%v: not aborted mid-stream, the case tests nothing", status, complete)
			}
			recs := e.decisionsSince(before)
			if len(recs) != 1 {
				t.Fatalf("%d decision records, want 1: %v", len(recs), recs)
			}
			rec := recs[0]
			if rec["repo"] != c.repo || rec["decision"] != c.decision || !strings.Contains(fmt.Sprint(rec["reason"]), c.reason) {
				t.Errorf("record %v; want repo %s, decision %s, reason containing %q", rec, c.repo, c.decision, c.reason)
			}
			if c.key != "" && rec["digest"] != c.key && rec["tag"] != c.key {
				t.Errorf("record %v does not name %s", rec, c.key)
			}
		})
	}
}
