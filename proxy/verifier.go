package proxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
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

// notaryVerifier is the Verifier for Docker Content Trust. It remembers the Signatures it built
// for each trust state, so a state unchanged since the last request costs a pointer comparison.
type notaryVerifier struct {
	trust TrustSource
	now   func() time.Time
	memo  *lru.Cache[string, *notarySignatures]
}

// maxVerifiedRepos bounds the Signatures a verifier remembers; each pins a trust state in memory,
// so this stays at the trust cache's default size rather than the manifest cache's.
const maxVerifiedRepos = 1024

func newNotaryVerifier(trust TrustSource, now func() time.Time, size int) (*notaryVerifier, error) {
	memo, err := lru.New[string, *notarySignatures](size)
	if err != nil {
		return nil, err
	}
	return &notaryVerifier{trust: trust, now: now, memo: memo}, nil
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
	key := gun + "\x00" + strings.Join(roles, "\x00")
	if s, ok := v.memo.Get(key); ok && s.state == st && !s.lapsed(v.now()) {
		return s, nil
	}
	s := &notarySignatures{gun: gun, state: st, roles: roles, now: v.now}
	v.memo.Add(key, s)
	return s, nil
}

// notarySignatures is a TrustState read under one policy's roles.
type notarySignatures struct {
	gun   string
	state TrustState
	roles []string
	now   func() time.Time

	once     sync.Once
	all      []Signature
	allErr   error                       // the first tag that did not verify
	byDigest map[digest.Digest]Signature // the first (in tag order) signature of each digest
	// earliest is the first expiry among all; done is set once all, allErr, byDigest and
	// earliest are. A delegation can expire before the state that holds it does, so a value
	// whose All has an expired signature is not reused for the same state (see lapsed).
	earliest time.Time
	done     atomic.Bool
}

// lapsed reports whether a signature that All returned has expired by now: the value no longer
// says what verifies, and a new one must be read from the state.
func (s *notarySignatures) lapsed(now time.Time) bool {
	return s.done.Load() && !s.earliest.IsZero() && !now.Before(s.earliest)
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
	s.once.Do(func() {
		s.byDigest = map[digest.Digest]Signature{}
		for _, tag := range s.Tags() {
			sig, err := s.Tag(tag)
			if err != nil {
				if s.allErr == nil && !resolver.IsNotSigned(err) {
					s.allErr = fmt.Errorf("tag %s: %w", tag, err)
				}
				continue
			}
			s.all = append(s.all, sig)
			if _, dup := s.byDigest[sig.Digest]; !dup {
				s.byDigest[sig.Digest] = sig
			}
			if !sig.Expires.IsZero() && (s.earliest.IsZero() || sig.Expires.Before(s.earliest)) {
				s.earliest = sig.Expires
			}
		}
		s.done.Store(true)
	})
	return s.all, s.allErr
}

func (s *notarySignatures) Signed(d digest.Digest) (Signature, bool) {
	_, _ = s.All()
	sig, ok := s.byDigest[d]
	return sig, ok
}
