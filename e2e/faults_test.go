package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

// The fault and attack regression suite (issue #8): the trustgate binary in front of a real
// registry and a real notary-server, each behind a front (faultfront_test.go) that goes down,
// stalls, resets, lies and records what trustgate sends. Every case states what the client must
// see; the rules it checks are the house rules: an outage is a 503 (never a 404), no complete
// response carries wrong bytes, and the refusal names the repository and says why.

// Short timeouts keep the stalls short; they are configuration, not what is being tested.
const (
	faultUpstreamTimeout = 1500 * time.Millisecond
	faultTrustTimeout    = 1500 * time.Millisecond
	faultStall           = 4 * time.Second // longer than either timeout
)

// faultWorld is one registry and notary-server, each behind a front, with signed fixtures.
type faultWorld struct {
	*world
	regFront, notaryFront *front
	app                   peers.Pushed // faults/app:v1, a small signed image
	multi                 peers.Pushed // faults/multi:v1, a signed index (children fetched by digest)
	big                   peers.Pushed // faults/big:v1, a signed image with one 16 MiB layer
	bigRange              string       // digest of layerRange of big's layer
}

// openRepo is under policy mode off in every fault-suite gate: its tag list is the upstream's.
const openRepo = "faults/open"

func newFaultWorld(t *testing.T) *faultWorld {
	t.Helper()
	fw := &faultWorld{world: newWorld(t)}
	fw.regFront = startFront(t, fw.reg.URL)
	fw.notaryFront = startFront(t, fw.notary.URL)
	fw.app = fw.pushSigned(t, "faults/app", "v1")
	fw.multi = peers.PushIndex(t, fw.reg, "faults/multi", "v1")
	fw.sign(t, "faults/multi", "v1", fw.multi)
	fw.big = peers.PushBigImage(t, fw.reg, "faults/big", "v1", 16<<20, 8)
	fw.sign(t, "faults/big", "v1", fw.big)
	fw.push(t, openRepo, "v1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	direct := stream(ctx, fw.reg.URL+"/v2/faults/big/blobs/"+fw.big.Layers[0].Digest, http.Header{"Range": {layerRange}}, 0, nil)
	if direct.code != http.StatusPartialContent || !direct.complete || direct.n != 2048 {
		t.Fatalf("the registry's answer to Range %s: %s", layerRange, direct)
	}
	fw.bigRange = direct.digest
	return fw
}

// gate starts trustgate against the fronts, with short timeouts unless cfg sets them.
func (fw *faultWorld) gate(t *testing.T, cfg peers.GateConfig) *peers.Trustgate {
	t.Helper()
	cfg.RegistryURL, cfg.NotaryURL = fw.regFront.URL, fw.notaryFront.URL
	if cfg.UpstreamTimeout == 0 {
		cfg.UpstreamTimeout = faultUpstreamTimeout
	}
	if cfg.TrustTimeout == 0 {
		cfg.TrustTimeout = faultTrustTimeout
	}
	cfg.Rules = append(cfg.Rules, peers.GateRule{Match: gun(openRepo), Mode: "off"})
	g := peers.StartTrustgate(t, trustgateBin, cfg)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("trustgate log (%s), last lines:\n%s", g.Log.Path(), g.Log.Tail(40))
		}
	})
	return g
}

// faultRequest is what a case asks trustgate for.
type faultRequest int

const (
	byTag       faultRequest = iota // GET faults/app manifest by tag
	byDigest                        // GET a faults/multi child manifest by digest (after its tag)
	blob                            // GET the 16 MiB faults/big layer (after its tag)
	tagList                         // GET faults/app tags/list
	openTagList                     // GET faults/open tags/list (policy off: relayed from upstream)
	blobRange                       // GET the first 2 KiB of the faults/big layer (after its tag)
	smallBlob                       // GET a ~1 KiB faults/app layer (after its tag)
)

// layerRange is the Range a blobRange request sends.
const layerRange = "bytes=0-2047"

var requestNames = map[faultRequest]string{byTag: "manifest by tag", byDigest: "manifest by digest",
	blob: "blob", tagList: "tags/list", openTagList: "upstream tags/list", blobRange: "blob range", smallBlob: "small blob"}

func (r faultRequest) String() string { return requestNames[r] }

// target is the request's path, the GUN and the digest a correct answer hashes to, and the
// request that must come first (a client resolves the tag before fetching by digest).
func (fw *faultWorld) target(r faultRequest) (path, gun, want, prepare string) {
	switch r {
	case byDigest:
		return "/v2/faults/multi/manifests/" + fw.multi.Children[0].Digest, "docker.io/faults/multi",
			fw.multi.Children[0].Digest, "/v2/faults/multi/manifests/v1"
	case blob:
		return "/v2/faults/big/blobs/" + fw.big.Layers[0].Digest, "docker.io/faults/big",
			fw.big.Layers[0].Digest, "/v2/faults/big/manifests/v1"
	case tagList:
		return "/v2/faults/app/tags/list", "docker.io/faults/app", "", ""
	case blobRange:
		return "/v2/faults/big/blobs/" + fw.big.Layers[0].Digest, "docker.io/faults/big",
			fw.bigRange, "/v2/faults/big/manifests/v1"
	case smallBlob:
		return "/v2/faults/app/blobs/" + fw.app.Layers[0].Digest, "docker.io/faults/app",
			fw.app.Layers[0].Digest, "/v2/faults/app/manifests/v1"
	case openTagList:
		return "/v2/" + openRepo + "/tags/list", "docker.io/" + openRepo, "", ""
	default:
		return "/v2/faults/app/manifests/v1", "docker.io/faults/app", fw.app.Digest, ""
	}
}

// Outcomes a case may expect.
const (
	unavailable  = "503"     // 503 UNAVAILABLE naming the repository
	abortedOr503 = "aborted" // 503, or a 200 whose body is cut short (headers were already out)
	served       = "200"     // the correct bytes
	rateLimited  = "429"     // 429 TOOMANYREQUESTS (never 404)
)

type faultCase struct {
	name  string
	peer  string // "notary" or "registry"
	down  bool   // the peer's front refuses connections
	fault func() *fault
	req   faultRequest
	want  string
	// reason is a substring of the decision log's reason for a manifest request, or of the
	// logged error of a blob download, that failed.
	reason string
}

func pathRE(s string) *regexp.Regexp { return regexp.MustCompile(s) }

func faultCases() []faultCase {
	// Notary clients fetch snapshot and targets by checksum once the timestamp names it:
	// snapshot.<sha256>.json.
	ts, root, snap := pathRE(`/_trust/tuf/timestamp\.json$`), pathRE(`/_trust/tuf/root\.json$`), pathRE(`/_trust/tuf/snapshot(\.[0-9a-f]+)?\.json$`)
	man, blobs, tags := pathRE(`/manifests/`), pathRE(`/blobs/`), pathRE(`/tags/list$`)
	f := func(ft fault) func() *fault { return func() *fault { c := ft; return &c } }
	return []faultCase{
		// The trust server.
		{name: "notary down", peer: "notary", down: true, req: byTag, want: unavailable, reason: "connection refused"},
		{name: "notary down, tag list", peer: "notary", down: true, req: tagList, want: unavailable},
		{name: "notary slow beyond timeout", peer: "notary", req: byTag, want: unavailable, reason: "deadline",
			fault: f(fault{path: ts, kind: stall, delay: faultStall})},
		{name: "notary trickles the timestamp beyond timeout", peer: "notary", req: byTag, want: unavailable, reason: "deadline exceeded",
			fault: f(fault{path: ts, kind: trickle, rate: 20})},
		{name: "notary hangs up on snapshot", peer: "notary", req: byTag, want: unavailable, reason: "snapshot",
			fault: f(fault{path: snap, kind: hangup})},
		{name: "notary resets mid-timestamp", peer: "notary", req: byTag, want: unavailable, reason: "connection reset",
			fault: f(fault{path: ts, kind: resetBody, after: 100})},
		{name: "notary resets mid-root (first contact)", peer: "notary", req: byTag, want: unavailable, reason: "connection reset",
			fault: f(fault{path: root, kind: resetBody, after: 100})},
		{name: "notary garbage timestamp", peer: "notary", req: byTag, want: unavailable, reason: "invalid trust data",
			fault: f(fault{path: ts, kind: garbage})},
		{name: "notary garbage root (first contact)", peer: "notary", req: byTag, want: unavailable, reason: "invalid trust data",
			fault: f(fault{path: root, kind: garbage})},
		{name: "notary oversized timestamp", peer: "notary", req: byTag, want: unavailable, reason: "exceeds",
			fault: f(fault{path: ts, kind: oversize, size: 2 << 20})},
		{name: "notary oversized timestamp, no Content-Length", peer: "notary", req: byTag, want: unavailable, reason: "invalid trust data",
			fault: f(fault{path: ts, kind: oversize, size: 2 << 20, chunked: true})},
		{name: "notary 500 for the timestamp", peer: "notary", req: byTag, want: unavailable, reason: "500",
			fault: f(fault{path: ts, kind: statusOnly, status: 500})},
		// A server that lost the repository after trustgate pinned its root: not "unsigned".
		{name: "notary 404 for the timestamp after the root", peer: "notary", req: byTag, want: unavailable, reason: "not found",
			fault: f(fault{path: ts, kind: statusOnly, status: 404})},
		{name: "notary 401 for the timestamp", peer: "notary", req: byTag, want: unavailable, reason: "401",
			fault: f(fault{path: ts, kind: statusOnly, status: 401})},
		// Byte 43 is in the signed expiry date ({"signed":{"_type":"Timestamp","expires":"2026...):
		// well-formed, later, and not what was signed.
		{name: "notary altered timestamp", peer: "notary", req: byTag, want: unavailable, reason: "signature",
			fault: f(fault{path: ts, kind: flip, after: 43})},

		// The upstream registry: manifests.
		{name: "registry down", peer: "registry", down: true, req: byTag, want: unavailable, reason: "connection refused"},
		{name: "registry trickles the manifest beyond timeout", peer: "registry", req: byTag, want: unavailable, reason: "no answer within",
			fault: f(fault{path: man, kind: trickle, rate: 20})},
		{name: "registry 500 for the manifest", peer: "registry", req: byTag, want: unavailable, reason: "500",
			fault: f(fault{path: man, kind: statusOnly, status: 500})},
		{name: "registry rate-limits the manifest", peer: "registry", req: byTag, want: rateLimited, reason: "429 Too Many Requests",
			fault: f(fault{path: man, kind: statusOnly, status: 429})},
		{name: "registry hangs up on manifest", peer: "registry", req: byTag, want: unavailable, reason: "connection reset",
			fault: f(fault{path: man, kind: hangup})},
		{name: "registry resets mid-manifest", peer: "registry", req: byTag, want: unavailable, reason: "connection reset",
			fault: f(fault{path: man, kind: resetBody, after: 64})},
		{name: "registry garbage manifest", peer: "registry", req: byTag, want: unavailable, reason: "does not match its digest",
			fault: f(fault{path: man, kind: garbage})},
		{name: "registry oversized manifest", peer: "registry", req: byTag, want: unavailable, reason: "larger than",
			fault: f(fault{path: man, kind: oversize, size: 5 << 20})},
		{name: "registry oversized manifest, no Content-Length", peer: "registry", req: byTag, want: unavailable, reason: "larger than",
			fault: f(fault{path: man, kind: oversize, size: 5 << 20, chunked: true})},
		{name: "registry flipped byte in manifest", peer: "registry", req: byTag, want: unavailable, reason: "does not match its digest",
			fault: f(fault{path: man, kind: flip, after: 20})},
		{name: "registry flipped byte in child manifest", peer: "registry", req: byDigest, want: unavailable, reason: "does not match its digest",
			fault: f(fault{path: man, kind: flip, after: 20})},
		{name: "registry down, child manifest", peer: "registry", down: true, req: byDigest, want: unavailable, reason: "connection refused"},
		{name: "registry slow manifest", peer: "registry", req: byTag, want: unavailable, reason: "no answer within",
			fault: f(fault{path: man, kind: stall, delay: faultStall})},

		// The upstream registry: tag lists it relays (policy off).
		{name: "registry down, tag list", peer: "registry", down: true, req: openTagList, want: unavailable},
		{name: "registry garbage tag list", peer: "registry", req: openTagList, want: unavailable,
			fault: f(fault{path: tags, kind: garbage})},
		{name: "registry oversized tag list", peer: "registry", req: openTagList, want: unavailable,
			fault: f(fault{path: tags, kind: oversize, size: 20 << 20})},
		{name: "registry resets mid-tag list", peer: "registry", req: openTagList, want: unavailable,
			fault: f(fault{path: tags, kind: resetBody, after: 10})},

		// The upstream registry: blobs.
		{name: "registry down, blob", peer: "registry", down: true, req: blob, want: unavailable, reason: "connection refused"},
		// A slow but live download is not an outage: timeouts.upstream bounds only the wait
		// for a blob's response headers.
		{name: "registry trickles a blob for longer than timeouts.upstream", peer: "registry", req: smallBlob, want: served,
			fault: f(fault{path: blobs, kind: trickle, rate: 600})}, // ~1.2 KiB: 2s
		{name: "registry 502 for the blob", peer: "registry", req: blob, want: unavailable, reason: "502",
			fault: f(fault{path: blobs, kind: statusOnly, status: 502})},
		{name: "registry down, blob range", peer: "registry", down: true, req: blobRange, want: unavailable, reason: "connection refused"},
		{name: "registry resets mid-blob every time", peer: "registry", req: blob, want: abortedOr503, reason: "connection reset",
			fault: f(fault{path: blobs, kind: resetBody, after: 3 << 20})},
		{name: "registry resets mid-blob once (resumed)", peer: "registry", req: blob, want: served, reason: "resuming blob download",
			fault: f(fault{path: blobs, kind: resetBody, after: 3 << 20, times: 1})},
		{name: "registry flipped byte in blob", peer: "registry", req: blob, want: abortedOr503, reason: "digest mismatch",
			fault: f(fault{path: blobs, kind: flip, after: 5 << 20})},
		{name: "registry flipped byte in blob, Range", peer: "registry", req: blobRange, want: abortedOr503, reason: "digest mismatch",
			fault: f(fault{path: blobs, kind: flip, after: 1000})},
		{name: "registry slow blob", peer: "registry", req: blob, want: unavailable, reason: "no response headers within",
			fault: f(fault{path: blobs, kind: stall, delay: faultStall})},
		{name: "registry flipped byte in a trickled blob", peer: "registry", req: smallBlob, want: abortedOr503, reason: "digest mismatch",
			fault: f(fault{path: blobs, kind: flip, after: 600, rate: 3000})},
		// The layer's descriptor in the signed manifest gives its size: another Content-Length is
		// refused before a byte, and a body without one is read no further than that size.
		{name: "registry garbage blob", peer: "registry", req: blob, want: unavailable, reason: "the verified size is",
			fault: f(fault{path: blobs, kind: garbage})},
		{name: "registry oversized blob", peer: "registry", req: blob, want: unavailable, reason: "the verified size is",
			fault: f(fault{path: blobs, kind: oversize, size: 17 << 20})},
		{name: "registry oversized blob, no Content-Length", peer: "registry", req: blob, want: abortedOr503, reason: "longer than its size",
			fault: f(fault{path: blobs, kind: oversize, size: 17 << 20, chunked: true})},
	}
}

// TestFaults runs every fault case against a fresh trustgate (fresh trust_dir and caches, so the
// fault meets a cold path), then clears the fault and checks that the same request recovers.
func TestFaults(t *testing.T) {
	fw := newFaultWorld(t)
	for _, tc := range faultCases() {
		t.Run(tc.name, func(t *testing.T) { runFaultCase(t, fw, tc) })
	}
}

// runFaultCase starts a fresh trustgate, makes the prepared request, injects the fault, checks
// the outcome and the log, clears the fault and checks recovery.
func runFaultCase(t *testing.T, fw *faultWorld, tc faultCase) {
	fr := fw.regFront
	if tc.peer == "notary" {
		fr = fw.notaryFront
	}
	g := fw.gate(t, peers.GateConfig{})
	path, gun, want, prepare := fw.target(tc.req)
	if prepare != "" {
		if got := get(t, http.MethodGet, g.URL+prepare, manifestAccept...); got.code != http.StatusOK {
			t.Fatalf("preparing with GET %s: %d %s", prepare, got.code, got.body)
		}
	}
	var ft *fault
	if tc.down {
		fr.down()
	} else {
		ft = fr.inject(tc.fault())
	}
	recovered := false
	defer func() {
		if !recovered { // leave the shared fronts clean for the next case
			fr.clear()
			if tc.down {
				fr.up()
			}
		}
	}()

	hdr := http.Header{"Accept": manifestAccept}
	if tc.req == blobRange {
		hdr.Set("Range", layerRange)
	}
	// Blobs are fanned out: several clients share one download, and each must see the outcome.
	clients := 1
	if tc.req == blob || tc.req == blobRange || tc.req == smallBlob {
		clients = 4
	}
	outs := make([]streamOutcome, clients)
	var wg sync.WaitGroup
	for i := range outs {
		wg.Go(func() { outs[i] = fetch(g.URL+path, hdr) })
	}
	wg.Wait()
	for _, got := range outs {
		checkFaultOutcome(t, tc, got, gun, want)
	}
	if tc.want == unavailable && (tc.req == byTag || tc.req == byDigest) {
		// HEAD is how docker and containerd resolve a tag: the same verdict, no body.
		if h := get(t, http.MethodHead, g.URL+path, manifestAccept...); h.code != http.StatusServiceUnavailable || len(h.body) != 0 {
			t.Errorf("HEAD: %d %q, want 503 without a body", h.code, h.body)
		}
	}
	switch {
	case tc.req == smallBlob && tc.want == served: // in one go: no download cut off and resumed
		for _, l := range g.Log.Lines() {
			if strings.Contains(l, "resuming blob download") || strings.Contains(l, "blob download failed") {
				t.Errorf("a slow download was cut off: %s", l)
			}
		}
		checkBlobDecisions(t, g, gun, fw.app.Layers[0].Digest, clients, tc)
	case tc.req == smallBlob:
		checkBlobLog(t, g, fw.app.Layers[0].Digest, tc.reason)
		checkBlobDecisions(t, g, gun, fw.app.Layers[0].Digest, clients, tc)
	case tc.req == blob || tc.req == blobRange:
		checkBlobLog(t, g, fw.big.Layers[0].Digest, tc.reason)
		checkBlobDecisions(t, g, gun, fw.big.Layers[0].Digest, clients, tc)
	default:
		checkDecision(t, g, gun, tc.reason)
	}
	if ft != nil && fr.hits(ft) == 0 {
		t.Errorf("the fault was never triggered: the case tests nothing")
	}

	fr.clear()
	if tc.down {
		fr.up()
	}
	recovered = true
	again := fetch(g.URL+path, hdr)
	if !again.complete || !succeeded(again.code) || (want != "" && again.digest != want) ||
		((tc.req == tagList || tc.req == openTagList) && !bytes.Contains(again.body, []byte(`"v1"`))) {
		t.Errorf("after the fault cleared: %s; want 200 with %s", again, want)
	}
}

// fetch GETs url and keeps the start of the body for inspection.
func fetch(url string, hdr http.Header) streamOutcome {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return stream(ctx, url, hdr, 64<<10, nil)
}

// succeeded: 200, or 206 for a Range request.
func succeeded(code int) bool { return code == http.StatusOK || code == http.StatusPartialContent }

func checkFaultOutcome(t *testing.T, tc faultCase, got streamOutcome, gun, want string) {
	t.Helper()
	if got.code == http.StatusNotFound {
		t.Fatalf("an outage was answered 404: %s", got)
	}
	if succeeded(got.code) && got.complete && want != "" && got.digest != want {
		t.Fatalf("a complete %d with wrong bytes: %s; want %s", got.code, got, want)
	}
	repo := strings.TrimPrefix(gun, "docker.io/")
	switch tc.want {
	case served:
		if !succeeded(got.code) || !got.complete || got.digest != want {
			t.Fatalf("got %s; want the complete, correct %s", got, want)
		}
	case unavailable:
		if got.code != http.StatusServiceUnavailable {
			t.Fatalf("got %s; want 503", got)
		}
		if !bytes.Contains(got.body, []byte("UNAVAILABLE")) || !bytes.Contains(got.body, []byte(repo)) {
			t.Errorf("503 body does not name the repository %s and the reason: %s", repo, got.body)
		}
	case rateLimited:
		if got.code != http.StatusTooManyRequests || !bytes.Contains(got.body, []byte("TOOMANYREQUESTS")) {
			t.Fatalf("got %s; want 429 TOOMANYREQUESTS", got)
		}
	case abortedOr503:
		switch {
		case got.code == http.StatusServiceUnavailable:
			if !bytes.Contains(got.body, []byte("UNAVAILABLE")) {
				t.Errorf("503 body without a reason: %s", got.body)
			}
		case succeeded(got.code) && !got.complete:
			t.Logf("aborted after %d bytes: %v", got.n, got.err)
		default:
			t.Fatalf("got %s; want 503 or an aborted transfer", got)
		}
	}
}

// checkBlobLog: trustgate logged the blob download's failure (or, for a download that
// recovered, its resumption) with reason in the record.
func checkBlobLog(t *testing.T, g *peers.Trustgate, dgst, reason string) {
	t.Helper()
	type record struct {
		Msg    string `json:"msg"`
		Digest string `json:"digest"`
		Err    string `json:"err"`
	}
	var seen []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		seen = seen[:0]
		for _, l := range g.Log.Lines() {
			var r record
			if json.Unmarshal([]byte(l), &r) != nil || r.Digest != dgst || r.Err == "" {
				continue
			}
			seen = append(seen, r.Msg+": "+r.Err)
			if strings.Contains(r.Msg+": "+r.Err, reason) {
				t.Logf("logged: %s", r.Msg+": "+r.Err)
				return
			}
		}
	}
	t.Errorf("no log record for blob %s mentions %q; records: %q\n%s", dgst, reason, seen, g.Log.Tail(8))
}

// checkBlobDecisions: each of the clients' requests for blob dgst was logged as exactly one
// decision record: allow if the case serves it, else error with the case's reason, aborted
// streams included.
func checkBlobDecisions(t *testing.T, g *peers.Trustgate, gun, dgst string, clients int, tc faultCase) {
	t.Helper()
	var ds []peers.Decision
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ds = ds[:0]
		for _, d := range g.Decisions() {
			if d.Repo == gun && d.Digest == dgst {
				ds = append(ds, d)
			}
		}
		if len(ds) >= clients || time.Now().After(deadline) {
			break
		}
	}
	if len(ds) != clients {
		t.Errorf("%d decision records for blob %s, want one per request (%d): %+v", len(ds), dgst, clients, ds)
	}
	for _, d := range ds {
		switch {
		case tc.want == served && d.Decision != "allow":
			t.Errorf("served blob logged as %s (%s)", d.Decision, d.Reason)
		case tc.want != served && (d.Decision != "error" || !strings.Contains(d.Reason, tc.reason)):
			t.Errorf("blob decision %s (%s); want error with reason containing %q", d.Decision, d.Reason, tc.reason)
		}
	}
}

// checkDecision: the decision log says "error" for the repository, with reason in its reason.
// The record is written just after the response, so it is waited for.
func checkDecision(t *testing.T, g *peers.Trustgate, gun, reason string) {
	t.Helper()
	var ds []peers.Decision
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ds = ds[:0]
		for _, d := range g.Decisions() {
			if d.Repo == gun && d.Decision != "allow" {
				ds = append(ds, d)
			}
		}
		if len(ds) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(ds) == 0 {
		t.Errorf("no refusing decision logged for %s", gun)
		return
	}
	d := ds[len(ds)-1]
	t.Logf("decision: %s (%s)", d.Decision, d.Reason)
	if d.Decision != "error" || !strings.Contains(d.Reason, reason) {
		t.Errorf("decision for %s = %s (%s); want error with reason containing %q", gun, d.Decision, d.Reason, reason)
	}
}
