// Package proxy is trustgate's registry v2 read API. It answers pulls on behalf of configured
// upstream registries and serves only what the repository's policy allows, as decided by one
// function, judge (verdict.go), for every endpoint and mode. In enforce mode a tag is rewritten to
// the digest its verified signature names and fetched upstream by that digest, and anything asked
// for by digest must be reachable from the repository's CURRENT signatures.
//
// Choices a client or operator can observe:
//
//   - Unsigned tag (enforce): 404 MANIFEST_UNKNOWN naming repository and tag. Trust data that
//     can't be verified (server down, expired, rolled back, bad signatures): 503 UNAVAILABLE with
//     the reason, never 404, so an outage is not mistaken for a missing tag.
//   - By digest (enforce): the digests a repository allows are derived from the verified trust
//     state that answers its tags: the signed manifests, the entries of signed indexes, and the
//     config and layers of every reachable manifest. When the trust state changes (re-sign,
//     remove, expiry, rollback) what is allowed changes with it, within trust_ttl. A digest none of
//     the signatures reach: 404 MANIFEST_UNKNOWN or BLOB_UNKNOWN naming digest and repository;
//     trust that can't be verified: 503, as for the tag.
//   - Reachability is walked over manifest edges (EdgeStore; on disk under trust_dir), learned only
//     from manifest bytes trustgate hashed. A fresh or restarted process serves a signed digest at
//     once and derives the rest from stored edges, fetching (by digest, verified) only manifests
//     whose edges are unknown, a bounded number per request. So "pull repo@sha256:..." works
//     without the tag being pulled first.
//   - deny mode: 403 DENIED "repository ... is not allowed by trustgate policy". 403 rather than
//     404 because the repository may well exist: the operator forbade it, and containerd (>= 2.3)
//     and docker print a 403's message, where a 404 on HEAD shows only "not found".
//   - warn mode: signed content is served exactly as in enforce mode; an unsigned or unverifiable
//     tag is served from the upstream tag (bytes still hashed; Docker-Content-Digest is their
//     hash) with `Warning: 299 - "trustgate: <reason>"` and X-Trustgate-Decision: warn, and is
//     logged at warn level. By-digest content not reachable from a signature is served the same way.
//   - off mode: plain pull-through; manifests are still hashed and cached by digest.
//   - A mode this trustgate does not know: 503 on every endpoint (fails closed).
//   - A signed digest the upstream doesn't have: 404 MANIFEST_UNKNOWN "<repo>:<tag> is signed to
//     <digest>, but upstream has no manifest with that digest" (X-Trustgate-Decision: error).
//     Not 503: it is not an outage, and retrying won't help. Upstream 5xx or unreachable: 503.
//   - Upstream bytes that don't hash to the requested or signed digest, or a length that differs
//     from the signed length, or a manifest over 4 MiB: 503, and not a byte of it is sent.
//   - A blob reachable from a verified manifest has the size the manifest's descriptor states:
//     an upstream announcing another Content-Length is refused (503) before a byte is sent or
//     spool space reserved, and a body is never read beyond that size. Where no verified
//     descriptor gives the size (warn, off), the upstream's Content-Length reserves spool only
//     within the free spool budget (see fanout.WithSize).
//   - Error bodies name the repository and the reason; the upstream layer returns one typed
//     UpstreamError and clientError words every failure from its kind, so no upstream or trust
//     server URL, address or file path reaches a client (the log has them).
//   - Upstream redirects (Docker Hub sends blobs to a CDN with 307) are followed by trustgate,
//     not passed on: see upstream.client.
//   - Referrers in enforce mode: always an empty OCI index, because DCT signs tags, not referrer
//     artifacts (cosign signatures, SBOMs); trustgate can't vouch for them.
//   - Blob HEAD: answered from a verified spool on disk when there is one, else from the blob
//     store, else by an upstream HEAD; never a download.
//   - Blob store (Options.BlobStore, shared by replicas): a blob the verdict allows is read from
//     the store before upstream, through the same fan-out (one read per digest per process,
//     every byte hashed, the last held back until the digest matched), and a blob verified from
//     upstream is written to it. A stored object that is not the verified blob (size or digest)
//     is deleted; responses reading it are aborted (never complete), and the next request goes
//     upstream. A store that fails is skipped: the pull goes upstream, never a 5xx because of it.
//   - A trust change applies to requests judged after it: one judged before (a blob streaming,
//     a walk in progress) finishes under the verdict it got. Only verified manifests add edges to
//     the graph; off and warn pulls add none.
//
// cosign and Notation (docs/signatures.md): a tag resolves through the upstream to a digest whose
// signatures, discovered by digest, must verify under the rule; the tag's binding refuses moves to
// older signed digests (503). By digest, a manifest signed itself is served, and anything a recently
// verified digest reaches.
//
// Response headers: X-Trustgate-Decision (allow, refuse, warn, error), X-Trustgate-Role (the Notary
// role that signed), X-Trustgate-Signed-Digest (the digest a tag is signed to, or the signed
// manifest a digest is reached from), X-Trustgate-Verifier (notary; frozen when a frozen trust file
// answered; cosign, notation), X-Trustgate-Signer (who signed) and X-Trustgate-Expires (a frozen
// file's expiry, or until when a cosign or Notation verdict holds). Every request judge decides
// (manifests, blobs, tag lists, referrers) is logged as exactly one slog record with msg
// "decision" naming repository, tag or digest, decision and reason (blob allows at debug level);
// a blob download that fails, before its headers or after (the response aborted), makes it
// "error" with the failure's kind.
package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/trustgate/trustgate/frozen"
	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/proxy/blobstore"
	"github.com/trustgate/trustgate/proxy/fanout"
	"github.com/trustgate/trustgate/sigverify/binding"
)

// Policy maps a full repository name (the GUN) to what trustgate must do with it.
type Policy interface {
	Decide(name string) policy.Decision
}

// Upstream is one registry trustgate pulls from.
type Upstream struct {
	// Name is matched against containerd's ?ns= and against a path prefix /v2/<Name>/..., e.g.
	// "docker.io". Only configured names are ever dialled, so a client can't make trustgate fetch
	// from a host of its choosing.
	Name      string
	URL       *url.URL // e.g. https://registry-1.docker.io
	GUNPrefix string   // GUN = GUNPrefix + "/" + repo; "" means Name
	// DockerHub makes single-segment names official images ("alpine" → "library/alpine"), as the
	// docker CLI does for docker.io names but not for names addressed to trustgate directly.
	DockerHub bool
	// Username and Password are trustgate's own upstream credentials; a client's are never used.
	Username, Password string
	// TokenRealms are origins (https://auth.example.com[:port]) besides the upstream's own host
	// that may receive Username and Password as a token realm (see package credscope).
	TokenRealms []string
	Transport   http.RoundTripper // TLS settings baked in; nil = http.DefaultTransport
	Trust       TrustSource       // this upstream's Notary trust states (normally NotaryStates(cache.State))
	// Edges persists the manifest graph learned from this upstream (normally a FileEdges under
	// trust_dir), so that after a restart reachability is derived without fetching manifests
	// again. nil keeps edges in memory only.
	Edges EdgeStore
}

// Options configure a Server.
type Options struct {
	Upstreams []*Upstream
	// Default names the upstream used when a request carries neither ?ns= nor a path prefix (the
	// docker registry-mirror case). "" means such requests are refused with NAME_UNKNOWN.
	Default string
	Policy  Policy
	Logger  *slog.Logger // nil = slog.Default()
	// ManifestCacheSize bounds the verified-manifest LRU, the per-repository reachability LRU and
	// the in-memory manifest edges of each upstream. 0 = 4096.
	ManifestCacheSize int
	TempDir           string // blob fan-out spool; "" = os.TempDir()
	// BlobSpoolBytes bounds, per upstream, verified blobs kept on disk after their download for later pulls;
	// 0 keeps none (each cold pull streams from upstream, concurrent ones still share one download).
	BlobSpoolBytes int64
	Metrics        prometheus.Registerer // nil = no metrics; Servers given the same one share its counters
	// Now is the clock a signed target's expiry is checked against; nil = time.Now.
	Now func() time.Time
	// Frozen holds the frozen trust files the policy names (policy.FrozenRule), loaded and
	// checked against their pinned sha256 by the caller. A rule naming a file missing here
	// fails closed (503).
	Frozen map[policy.FrozenRule]*frozen.File
	// TrustTTL is how long a cosign or Notation verification of a digest (and a tag's resolution
	// to it) is reused before it is done again; 0 = 5m.
	TrustTTL time.Duration
	// Bindings persists the tag bindings of cosign and Notation (package binding); nil keeps them
	// in memory only.
	Bindings binding.Store
	// UpstreamTimeout bounds a manifest, tag-list or referrers round trip, and the wait for a blob's
	// response headers (the blob body itself is bounded by the fan-out). 0 = 30s.
	UpstreamTimeout time.Duration
	// BlobStore, if set, is the verified-blob store shared by replicas: a blob download reads it
	// before upstream, and a blob verified from upstream is written to it (see blobs.go).
	BlobStore *blobstore.Store
}

// Server implements the registry v2 read API. Create it with New.
type Server struct {
	upstreams map[string]*upstream
	def       *upstream
	policy    Policy
	log       *slog.Logger
	manifests *manifestCache
	reach     *reachability
	notary    map[string]Verifier   // per upstream
	cosign    map[string]Verifier   // per upstream
	notation  map[string]Verifier   // per upstream
	graph     map[string]*edgeCache // per upstream
	frozen    map[policy.FrozenRule]*frozenVerifier
	metrics   *metrics
	handler   http.Handler
	timeout   time.Duration
	now       func() time.Time
	store     *blobstore.Store
}

// New validates opts and builds the handler.
func New(opts Options) (*Server, error) {
	if opts.Policy == nil {
		return nil, errors.New("proxy: Options.Policy is required")
	}
	if len(opts.Upstreams) == 0 {
		return nil, errors.New("proxy: at least one upstream is required")
	}
	s := &Server{
		upstreams: map[string]*upstream{},
		notary:    map[string]Verifier{},
		cosign:    map[string]Verifier{},
		notation:  map[string]Verifier{},
		graph:     map[string]*edgeCache{},
		policy:    opts.Policy,
		log:       opts.Logger,
		timeout:   opts.UpstreamTimeout,
		now:       opts.Now,
		store:     opts.BlobStore,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.timeout <= 0 {
		s.timeout = 30 * time.Second
	}
	size := opts.ManifestCacheSize
	if size <= 0 {
		size = 4096
	}
	for i, u := range opts.Upstreams {
		if u == nil || u.Name == "" || u.URL == nil || u.URL.Host == "" {
			return nil, fmt.Errorf("proxy: upstream %d: Name and an absolute URL are required", i)
		}
		if u.Trust == nil {
			return nil, fmt.Errorf("proxy: upstream %q: Trust is required", u.Name)
		}
		if _, dup := s.upstreams[u.Name]; dup {
			return nil, fmt.Errorf("proxy: upstream %q configured twice", u.Name)
		}
		up, err := newUpstream(u, size, s.timeout)
		if err != nil {
			return nil, fmt.Errorf("proxy: upstream %q: %w", u.Name, err)
		}
		s.upstreams[u.Name] = up
		s.notary[u.Name] = newNotaryVerifier(u.Trust, s.now)
		if s.graph[u.Name], err = newEdgeCache(size, u.Edges, s.log.With("upstream", u.Name)); err != nil {
			return nil, err
		}
	}
	s.frozen = map[policy.FrozenRule]*frozenVerifier{}
	for rule, f := range opts.Frozen {
		if f == nil {
			return nil, fmt.Errorf("proxy: frozen trust %s: no file", rule.File)
		}
		s.frozen[rule] = newFrozenVerifier(rule.File, f, s.now)
	}
	ttl := opts.TrustTTL
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	store := opts.Bindings
	if store == nil {
		store = &binding.MemStore{}
	}
	binder := binding.NewBinder(store, s.now)
	for name, up := range s.upstreams {
		var err error
		if s.cosign[name], err = newDigestVerifier("cosign", func(d policy.Decision) *policy.DigestRule { return d.Cosign },
			s, up, ttl, binder, size); err != nil {
			return nil, err
		}
		if s.notation[name], err = newDigestVerifier("notation", func(d policy.Decision) *policy.DigestRule { return d.Notation },
			s, up, ttl, binder, size); err != nil {
			return nil, err
		}
	}
	if opts.Default != "" {
		s.def = s.upstreams[opts.Default]
		if s.def == nil {
			return nil, fmt.Errorf("proxy: default upstream %q is not configured", opts.Default)
		}
	}
	var err error
	if s.metrics, err = newMetrics(opts.Metrics); err != nil {
		return nil, err
	}
	received := func(up string, n int) { s.metrics.upstreamBytes.WithLabelValues(up, "manifest").Add(float64(n)) }
	if s.manifests, err = newManifestCache(size, received); err != nil {
		return nil, err
	}
	if s.reach, err = newReachability(size); err != nil {
		return nil, err
	}
	dir := opts.TempDir
	if dir == "" {
		dir = os.TempDir()
	}
	for _, up := range s.upstreams {
		up.blobs = fanout.New(fanout.Options{Dir: dir, Logger: s.log.With("upstream", up.cfg.Name),
			MaxSpoolBytes: opts.BlobSpoolBytes, OnError: s.onBlobError, OnAbort: s.onBlobAbort, OnDone: s.onBlobDone})
	}
	s.handler = s.routes()
	return s, nil
}

// ServeHTTP answers a registry request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// Close stops blob downloads in flight and removes spooled blobs.
func (s *Server) Close() error {
	var errs []error
	for _, up := range s.upstreams {
		errs = append(errs, up.blobs.Close())
	}
	return errors.Join(errs...)
}
