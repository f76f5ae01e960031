package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/resolver"
)

// Signature is one verified statement that a digest is signed in a repository.
type Signature struct {
	Tag    string        // the tag the signature binds to the digest
	Digest digest.Digest // the signed manifest (or index)
	Size   int64         // the signed length of its bytes
	// Signer says who signed, in the verifier's terms (for Notary: the role; cosign: the key ID
	// or certificate identity; Notation: the signing certificate's subject).
	Signer string
	// Expires is when the signature stops counting unless the trust data is refreshed.
	Expires time.Time
	// Verifier is the system that verified it: notary, cosign or notation ("" means notary).
	Verifier string
	// SignedAt is the signature's time as the verifier established it, and TimeSource who
	// vouches for it (see package binding); zero for Notary.
	SignedAt   time.Time
	TimeSource string
}

// digestChecker is implemented by the Signatures of systems that sign digests: a manifest asked
// for by digest may be signed itself, which no tag needs to be resolved for.
type digestChecker interface {
	// SignedDigest returns the verified signature of manifest d, or an error for which
	// resolver.IsNotSigned holds if d has none.
	SignedDigest(ctx context.Context, d digest.Digest) (Signature, error)
}

// Signatures is one verified view of what is signed in a repository. A value is immutable: when
// the repository's trust data changes, the Verifier returns a different value, and everything
// derived from the old one (reachability) is derived again. A pointer is best: an equal value
// is reused without a look at what it signs, and a value that is not comparable is never equal.
type Signatures interface {
	// Tag returns the signature of tag; an error for which resolver.IsNotSigned holds means the
	// tag is verifiably unsigned, any other means it could not be verified.
	Tag(tag string) (Signature, error)
	// Tags lists the signed tags, sorted and without duplicates. The slice may be shared: callers
	// must not modify it.
	Tags() []string
	// All returns every signature: the roots that reachability by digest is derived from. err
	// reports a signature that exists but does not verify (its digest is unknowable): a digest
	// none of the others reach may be its, so it can't be called unsigned.
	All() (sigs []Signature, err error)
	// Signed returns a signature of digest d itself, if there is one.
	Signed(d digest.Digest) (Signature, bool)
}

// Verifier establishes what is signed in a repository. The implementations are Notary (Docker
// Content Trust, notaryVerifier) and the digest-signing systems cosign and Notation
// (digestVerifier); policy.Decision chooses them, and Server.signatures combines several.
type Verifier interface {
	// Signatures returns gun's currently verified signatures under dec. An error for which
	// resolver.IsNotSigned holds means the repository verifiably has none (404); any other
	// error means trust could not be established (503).
	Signatures(ctx context.Context, gun string, dec policy.Decision) (Signatures, error)
}

// errNoVerifier: the policy asks for a verifier this trustgate does not implement.
var errNoVerifier = errors.New("policy requires a verifier this trustgate does not implement")

// TrustSource returns a repository's current verified Notary trust state (cache.Cache, through
// NotaryStates). It is an interface so the proxy does not care whether answers come from a cache,
// a resolver or a test; resolver errors pass through it so resolver.IsNotSigned still tells
// "unsigned" (404) from "cannot verify" (503).
type TrustSource interface {
	State(ctx context.Context, gun string) (TrustState, error)
}

// TrustState is one verified Notary trust state; *resolver.State implements it. Values must be
// comparable (pointers): an unchanged value is how the proxy knows nothing was re-verified.
type TrustState interface {
	Lookup(tag string, roles []string) (resolver.Target, error)
	Tags(roles []string) []string
}

// NotaryStates adapts a function returning *resolver.State, such as cache.Cache.State, to a
// TrustSource.
type NotaryStates func(ctx context.Context, gun string) (*resolver.State, error)

// State implements TrustSource.
func (f NotaryStates) State(ctx context.Context, gun string) (TrustState, error) {
	st, err := f(ctx, gun)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return nil, fmt.Errorf("%w: no trust state for %s", resolver.ErrUnavailable, gun)
	}
	return st, nil
}

// notaryVerifier is the Verifier for Docker Content Trust. The Signatures it builds for a trust
// state are kept on the state itself (resolver.State.Memo), so a state unchanged since the last
// request costs a lookup, and a view lives no longer than its state: once the trust cache evicts
// a state and the last request using it returns, both can be collected (a memo of its own,
// keyed by repository, would pin up to its size of states beyond cache.trust_bytes).
type notaryVerifier struct {
	trust TrustSource
	now   func() time.Time
	key   string // prefix of this verifier's keys in a state's memo
}

// memoizer is a TrustState that can keep values derived from it (*resolver.State); others get
// a new view on every request.
type memoizer interface {
	Memo(key string, build func() any) any
}

func newNotaryVerifier(trust TrustSource, now func() time.Time) *notaryVerifier {
	v := &notaryVerifier{trust: trust, now: now}
	v.key = fmt.Sprintf("proxy.notaryVerifier %p\x00", v)
	return v
}

// notaryRoles is the roles a Decision accepts.
func notaryRoles(dec policy.Decision) ([]string, bool) {
	if dec.Notary == nil {
		return nil, false
	}
	if len(dec.Notary.Roles) == 0 {
		return resolver.DefaultRoles, true
	}
	return dec.Notary.Roles, true
}

func (v *notaryVerifier) name() string { return "notary" }

func (v *notaryVerifier) Signatures(ctx context.Context, gun string, dec policy.Decision) (Signatures, error) {
	roles, ok := notaryRoles(dec)
	if !ok {
		return nil, errNoVerifier
	}
	st, err := v.trust.State(ctx, gun)
	if err != nil {
		return nil, err
	}
	build := func() any { return &notarySignatures{gun: gun, state: st, roles: roles, now: v.now} }
	m, ok := st.(memoizer)
	if !ok {
		return build().(*notarySignatures), nil
	}
	return m.Memo(v.key+strings.Join(roles, "\x00"), build).(*notarySignatures), nil
}

// notarySignatures is a TrustState read under one policy's roles.
type notarySignatures struct {
	gun   string
	state TrustState
	roles []string
	now   func() time.Time

	mu  sync.Mutex                // serialises computing all
	all atomic.Pointer[signedSet] // nil until All is first asked
}

// signedSet is every signature of a state under one policy's roles, as of when it was computed.
// A delegation can expire before the state that holds it does, so a set with an expired
// signature is computed again (see lapsed).
type signedSet struct {
	all      []Signature
	err      error                       // the first tag that did not verify
	byDigest map[digest.Digest]Signature // the first (in tag order) signature of each digest
	earliest time.Time                   // the first expiry among all
}

// lapsed reports whether a signature of the set has expired by now: the set no longer says what
// verifies.
func (set *signedSet) lapsed(now time.Time) bool {
	return !set.earliest.IsZero() && !now.Before(set.earliest)
}

func (s *notarySignatures) Tag(tag string) (Signature, error) {
	tgt, err := s.state.Lookup(tag, s.roles)
	switch {
	case err != nil:
		return Signature{}, err
	case tgt.Digest.Validate() != nil:
		return Signature{}, fmt.Errorf("%w: trust data names the invalid digest %q", resolver.ErrInvalid, tgt.Digest)
	case !tgt.Expires.IsZero() && !s.now().Before(tgt.Expires):
		// The trust source must not return an expired answer; checking again costs nothing
		// and keeps a stale cache entry from being served.
		return Signature{}, fmt.Errorf("%w at %s", resolver.ErrExpired, tgt.Expires.UTC().Format(time.RFC3339))
	}
	return Signature{Tag: tag, Digest: tgt.Digest, Size: tgt.Size, Signer: tgt.Role, Expires: tgt.Expires, Verifier: "notary"}, nil
}

func (s *notarySignatures) Tags() []string { return s.state.Tags(s.roles) }

func (s *notarySignatures) All() ([]Signature, error) {
	set := s.signed()
	return set.all, set.err
}

// signed returns the signature set, computing it if there is none yet or the last has lapsed.
func (s *notarySignatures) signed() *signedSet {
	if set := s.all.Load(); set != nil && !set.lapsed(s.now()) {
		return set
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if set := s.all.Load(); set != nil && !set.lapsed(s.now()) {
		return set
	}
	set := &signedSet{byDigest: map[digest.Digest]Signature{}}
	for _, tag := range s.Tags() {
		sig, err := s.Tag(tag)
		if err != nil {
			if set.err == nil && !resolver.IsNotSigned(err) {
				set.err = fmt.Errorf("tag %s: %w", tag, err)
			}
			continue
		}
		set.all = append(set.all, sig)
		if _, dup := set.byDigest[sig.Digest]; !dup {
			set.byDigest[sig.Digest] = sig
		}
		if !sig.Expires.IsZero() && (set.earliest.IsZero() || sig.Expires.Before(set.earliest)) {
			set.earliest = sig.Expires
		}
	}
	s.all.Store(set)
	return set
}

func (s *notarySignatures) Signed(d digest.Digest) (Signature, bool) {
	sig, ok := s.signed().byDigest[d]
	return sig, ok
}
