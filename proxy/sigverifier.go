package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/singleflight"

	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/resolver"
	"github.com/trustgate/trustgate/sigverify"
	"github.com/trustgate/trustgate/sigverify/binding"
)

// Bounds of the digest verifiers' memory.
const (
	maxVerifiedPerRepo = 256 // verified digests remembered per repository (reachability roots)
)

// digestVerifier is the Verifier of one system that signs digests (cosign, Notation) for one
// upstream. A tag is resolved through the upstream (untrusted: the bytes are hashed, the digest
// is theirs), the digest's signatures are discovered and verified by the rule's checker, and the
// tag's binding (package binding) refuses moves to older signed digests. Verified results are
// cached per (rule, repository, digest) for ttl; a repository's verified digests are the roots
// reachability is derived from.
type digestVerifier struct {
	kind string // "cosign" or "notation"
	rule func(policy.Decision) *policy.DigestRule
	srv  *Server
	up   *upstream
	ttl  time.Duration
	bind *binding.Binder

	results *lru.Cache[string, verifiedDigest]   // rule, gun, digest → result
	flights singleflight.Group                   // concurrent verifications of one digest share one
	tags    *lru.Cache[string, Signature]        // rule, gun, tag → signature
	repos   *lru.Cache[string, *verifiedDigests] // rule, gun → verified digests
}

type verifiedDigest struct {
	res sigverify.Result
	sig Signature // Tag empty
}

// verifiedDigests is a repository's recently verified digests, oldest first.
type verifiedDigests struct {
	mu   sync.Mutex
	sigs []Signature
}

func (v *verifiedDigests) add(sig Signature) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.sigs = slices.DeleteFunc(v.sigs, func(s Signature) bool { return s.Digest == sig.Digest })
	v.sigs = append(v.sigs, sig)
	if len(v.sigs) > maxVerifiedPerRepo {
		v.sigs = slices.Delete(v.sigs, 0, len(v.sigs)-maxVerifiedPerRepo)
	}
}

func (v *verifiedDigests) live(now time.Time) []Signature {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []Signature
	for _, s := range v.sigs {
		if now.Before(s.Expires) {
			out = append(out, s)
		}
	}
	return out
}

// maxVerifiedRepos bounds the repositories whose verified digests a digest verifier remembers,
// at the trust cache's default size rather than the manifest cache's.
const maxVerifiedRepos = 1024

func newDigestVerifier(kind string, rule func(policy.Decision) *policy.DigestRule, s *Server, up *upstream, ttl time.Duration, bind *binding.Binder, size int) (*digestVerifier, error) {
	v := &digestVerifier{kind: kind, rule: rule, srv: s, up: up, ttl: ttl, bind: bind}
	var err error
	if v.results, err = lru.New[string, verifiedDigest](size); err != nil {
		return nil, err
	}
	if v.tags, err = lru.New[string, Signature](size); err != nil {
		return nil, err
	}
	if v.repos, err = lru.New[string, *verifiedDigests](min(size, maxVerifiedRepos)); err != nil {
		return nil, err
	}
	return v, nil
}

// Signatures implements Verifier. The value is bound to ctx (a tag is resolved upstream when
// asked for): it is one request's view, not shared.
func (v *digestVerifier) Signatures(ctx context.Context, gun string, dec policy.Decision) (Signatures, error) {
	r := v.rule(dec)
	if r == nil || r.Checker == nil {
		return nil, errNoVerifier
	}
	repo, ok := strings.CutPrefix(gun, v.up.gunPrefix+"/")
	if !ok {
		return nil, fmt.Errorf("%w: %s is not a repository of upstream %s", resolver.ErrInvalid, gun, v.up.cfg.Name)
	}
	return &digestSignatures{v: v, ctx: ctx, gun: gun, repo: repo, rule: dec.Rule, check: r.Checker}, nil
}

// digestSignatures is one request's view of a repository under a digest-signing verifier.
type digestSignatures struct {
	v     *digestVerifier
	ctx   context.Context
	gun   string
	repo  string
	rule  string
	check sigverify.Checker

	once sync.Once
	all  []Signature
}

func (s *digestSignatures) key(x string) string { return s.rule + "\x00" + s.gun + "\x00" + x }

// Tag resolves tag upstream and verifies the digest it names, then applies the tag's binding.
func (s *digestSignatures) Tag(tag string) (Signature, error) {
	v := s.v
	now := v.srv.now()
	if sig, ok := v.tags.Get(s.key(tag)); ok && now.Before(sig.Expires) {
		return sig, nil
	}
	m, err := v.srv.manifests.byTag(s.ctx, v.up, s.repo, tag)
	if errors.Is(err, errNotFound) {
		return Signature{}, fmt.Errorf("%w: %s:%s does not exist upstream", resolver.ErrTagNotSigned, s.gun, tag)
	}
	if err != nil {
		return Signature{}, err
	}
	sig, err := s.verify(m)
	if err != nil {
		return Signature{}, err
	}
	t, src, err := v.bind.TimeOf(s.ctx, s.gun, m.digest, sig.SignedAt, sig.TimeSource)
	if err != nil {
		return Signature{}, fmt.Errorf("%w: recording the signature time: %w", resolver.ErrUnavailable, err)
	}
	if _, err := v.bind.Check(s.ctx, s.gun, tag, m.digest, t, src); err != nil {
		if errors.Is(err, binding.ErrRollback) {
			return Signature{}, fmt.Errorf("%w: %s: %w", resolver.ErrRollback, v.kind, err)
		}
		return Signature{}, fmt.Errorf("%w: tag binding: %w", resolver.ErrUnavailable, err)
	}
	sig.Tag, sig.SignedAt, sig.TimeSource = tag, t, src
	v.tags.Add(s.key(tag), sig)
	return sig, nil
}

// SignedDigest verifies the signatures of manifest d itself (a pull by digest).
func (s *digestSignatures) SignedDigest(ctx context.Context, d digest.Digest) (Signature, error) {
	if sig, ok := s.v.results.Get(s.key(d.String())); ok && s.v.srv.now().Before(sig.sig.Expires) {
		return sig.sig, nil
	}
	m, _, err := s.v.srv.manifests.byDigest(ctx, s.v.up, s.repo, d)
	if errors.Is(err, errNotFound) {
		return Signature{}, fmt.Errorf("%w: %s@%s does not exist upstream", resolver.ErrTagNotSigned, s.gun, d)
	}
	if err != nil {
		return Signature{}, err
	}
	sig, err := s.verify(m)
	if err != nil {
		return Signature{}, err
	}
	if _, _, err := s.v.bind.TimeOf(ctx, s.gun, d, sig.SignedAt, sig.TimeSource); err != nil {
		return Signature{}, fmt.Errorf("%w: recording the signature time: %w", resolver.ErrUnavailable, err)
	}
	return sig, nil
}

// verify returns the cached or fresh verification of manifest m's signatures.
func (s *digestSignatures) verify(m *manifest) (Signature, error) {
	v := s.v
	now := v.srv.now()
	key := s.key(m.digest.String())
	if c, ok := v.results.Get(key); ok && now.Before(c.sig.Expires) {
		return c.sig, nil
	}
	// Concurrent requests for one digest share one discovery and verification, detached from any
	// one client (bounded by the upstream timeout per fetch) so a disconnect fails no other.
	ch := v.flights.DoChan(key, func() (any, error) {
		if c, ok := v.results.Get(key); ok && v.srv.now().Before(c.sig.Expires) {
			return c.sig, nil
		}
		return s.verifyNow(context.WithoutCancel(s.ctx), m, key)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return Signature{}, res.Err
		}
		return res.Val.(Signature), nil
	case <-s.ctx.Done():
		return Signature{}, s.ctx.Err()
	}
}

func (s *digestSignatures) verifyNow(ctx context.Context, m *manifest, key string) (Signature, error) {
	v := s.v
	f := &sigFetcher{srv: v.srv, up: v.up, repo: s.repo}
	subj := sigverify.Subject{
		Descriptor: ocispec.Descriptor{MediaType: m.mediaType, Digest: m.digest, Size: int64(len(m.body))},
		Names:      []string{s.gun, v.up.cfg.URL.Host + "/" + s.repo},
		Reference:  s.gun,
	}
	arts, derr := sigverify.Discover(ctx, f, m.digest)
	res, err := s.check.Verify(ctx, f, subj, arts)
	switch {
	case err == nil:
	case errors.Is(err, sigverify.ErrUnavailable):
		return Signature{}, fmt.Errorf("%w: %s: %w", resolver.ErrUnavailable, v.kind, err)
	case derr != nil:
		// Nothing found verified, and something could not be read: it may have been the
		// signature.
		return Signature{}, fmt.Errorf("%w: %s: %w (%w)", resolver.ErrUnavailable, v.kind, derr, err)
	default:
		return Signature{}, fmt.Errorf("%w: %s: %w", resolver.ErrTagNotSigned, v.kind, err)
	}
	now := v.srv.now()
	exp := now.Add(v.ttl)
	if !res.NotAfter.IsZero() && res.NotAfter.Before(exp) && res.TimeSource != "tlog" && res.TimeSource != "tsa" {
		exp = res.NotAfter // checked at the current time: valid only until then
	}
	sig := Signature{Digest: m.digest, Size: int64(len(m.body)), Verifier: v.kind, Signer: res.Signer,
		Expires: exp, SignedAt: res.SignedAt, TimeSource: res.TimeSource}
	v.results.Add(key, verifiedDigest{res: res, sig: sig})
	set := &verifiedDigests{}
	if prev, ok, _ := v.repos.PeekOrAdd(s.rule+"\x00"+s.gun, set); ok {
		set = prev
	}
	set.add(sig)
	return sig, nil
}

// Tags is empty: a digest-signing system signs no tag, so the signed tags can't be listed
// without resolving every upstream tag.
func (s *digestSignatures) Tags() []string { return nil }

// All returns the repository's digests verified within trust_ttl (by tag or by digest).
func (s *digestSignatures) All() ([]Signature, error) {
	s.once.Do(func() {
		if set, ok := s.v.repos.Get(s.rule + "\x00" + s.gun); ok {
			s.all = set.live(s.v.srv.now())
		}
	})
	return s.all, nil
}

func (s *digestSignatures) Signed(d digest.Digest) (Signature, bool) {
	all, _ := s.All()
	for _, sig := range all {
		if sig.Digest == d {
			return sig, true
		}
	}
	return Signature{}, false
}

// sigFetcher reads signature artifacts from an upstream repository (sigverify.Fetcher).
type sigFetcher struct {
	srv  *Server
	up   *upstream
	repo string
}

func notFound(err error) error {
	if errors.Is(err, errNotFound) {
		return fmt.Errorf("%w: %w", sigverify.ErrNotFound, err)
	}
	return err
}

func (f *sigFetcher) Manifest(ctx context.Context, ref string, max int64) ([]byte, digest.Digest, error) {
	var m *manifest
	var err error
	if d, perr := digest.Parse(ref); perr == nil {
		m, _, err = f.srv.manifests.byDigest(ctx, f.up, f.repo, d)
	} else {
		fctx, cancel := f.up.withTimeout(ctx)
		m, err = f.srv.manifests.fetch(fctx, f.up, f.repo, ref, "")
		cancel()
	}
	if err != nil {
		return nil, "", notFound(err)
	}
	if int64(len(m.body)) > max {
		return nil, "", fmt.Errorf("manifest %s: %d bytes, more than %d", ref, len(m.body), max)
	}
	return m.body, m.digest, nil
}

func (f *sigFetcher) Blob(ctx context.Context, d digest.Digest, max int64) ([]byte, error) {
	if !d.Algorithm().Available() {
		return nil, fmt.Errorf("blob %s: unsupported digest", d)
	}
	b, err := f.get(ctx, max, "blobs", d.String())
	if err != nil {
		return nil, err
	}
	if got := d.Algorithm().FromBytes(b); got != d {
		return nil, fmt.Errorf("blob %s: %w (got %s)", d, errDigestMismatch, got)
	}
	return b, nil
}

func (f *sigFetcher) Referrers(ctx context.Context, d digest.Digest, max int64) ([]byte, error) {
	return f.get(ctx, max, "referrers", d.String())
}

func (f *sigFetcher) get(ctx context.Context, max int64, path ...string) ([]byte, error) {
	fctx, cancel := f.up.withTimeout(ctx)
	defer cancel()
	hdr := http.Header{}
	if path[0] == "referrers" {
		hdr.Set("Accept", ocispec.MediaTypeImageIndex)
	}
	resp, err := f.up.request(fctx, http.MethodGet, f.repo, hdr, path...)
	if err != nil {
		return nil, notFound(err)
	}
	defer resp.Body.Close()
	if resp.ContentLength > max {
		return nil, fmt.Errorf("%s %s: announces %d bytes, more than %d", path[0], path[1], resp.ContentLength, max)
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(resp.Body, max+1)); err != nil {
		return nil, &UpstreamError{Upstream: f.up.cfg.Name, Op: "GET " + path[0] + " (reading the body)", Err: err}
	}
	if int64(buf.Len()) > max {
		return nil, fmt.Errorf("%s %s: more than %d bytes", path[0], path[1], max)
	}
	return buf.Bytes(), nil
}
