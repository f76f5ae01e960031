package proxy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/trustgate/trustgate/frozen"
	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/resolver"
)

// frozenVerifier answers from a frozen trust file (package frozen) for the repositories the file
// holds, in place of Notary (policy.FrozenRule): no trust server is asked, the file's own expiry
// is the only one (past it: frozen.ErrExpired, 503), and every answer names the file.
type frozenVerifier struct {
	file *frozen.File
	desc string // "frozen: <path> (frozen at …, expires …)", for the decision log
	now  func() time.Time

	mu   sync.Mutex
	memo map[string]*frozenSignatures // gun + roles: bounded by the file's repositories and the policy's role lists
}

func newFrozenVerifier(path string, f *frozen.File, now func() time.Time) *frozenVerifier {
	return &frozenVerifier{file: f, desc: f.Describe(path), now: now, memo: map[string]*frozenSignatures{}}
}

func (v *frozenVerifier) name() string { return "frozen" }

// covers reports whether the file holds gun's bindings.
func (v *frozenVerifier) covers(gun string) bool {
	_, ok := v.file.Repository(gun)
	return ok
}

// Signatures returns gun's frozen bindings in the roles dec accepts (all frozen roles if dec names
// none), or frozen.ErrExpired once the file's expiry has passed.
func (v *frozenVerifier) Signatures(_ context.Context, gun string, dec policy.Decision) (Signatures, error) {
	repo, ok := v.file.Repository(gun)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not in the frozen trust; %s", resolver.ErrNoTrustData, gun, v.desc)
	}
	if !v.now().Before(v.file.Expires) {
		return nil, fmt.Errorf("%w: %s", frozen.ErrExpired, v.desc)
	}
	roles := repo.Roles
	if dec.Notary != nil && len(dec.Notary.Roles) > 0 {
		roles = dec.Notary.Roles
	}
	key := gun + "\x00" + strings.Join(roles, "\x00")
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok := v.memo[key]; ok {
		return s, nil
	}
	s := &frozenSignatures{gun: gun, desc: v.desc, byDigest: map[digest.Digest]Signature{}}
	for _, t := range repo.Tags {
		if !slices.Contains(roles, t.Role) {
			continue
		}
		sig := Signature{Tag: t.Tag, Digest: t.Digest, Size: t.Size, Signer: t.Role, Expires: v.file.Expires}
		s.all = append(s.all, sig)
		if _, dup := s.byDigest[sig.Digest]; !dup {
			s.byDigest[sig.Digest] = sig
		}
	}
	v.memo[key] = s
	return s, nil
}

// frozenSignatures is one repository's frozen bindings under one policy's roles; immutable.
type frozenSignatures struct {
	gun      string
	desc     string
	all      []Signature // sorted by tag
	byDigest map[digest.Digest]Signature
}

func (s *frozenSignatures) source() string { return s.desc }

func (s *frozenSignatures) Tag(tag string) (Signature, error) {
	i, ok := slices.BinarySearchFunc(s.all, tag, func(sig Signature, t string) int { return strings.Compare(sig.Tag, t) })
	if !ok {
		return Signature{}, fmt.Errorf("%w: %s:%s is not in the frozen trust; %s", resolver.ErrTagNotSigned, s.gun, tag, s.desc)
	}
	return s.all[i], nil
}

func (s *frozenSignatures) Tags() []string {
	tags := make([]string, len(s.all))
	for i, sig := range s.all {
		tags[i] = sig.Tag
	}
	return tags
}

func (s *frozenSignatures) All() ([]Signature, error) { return s.all, nil }

func (s *frozenSignatures) Signed(d digest.Digest) (Signature, bool) {
	sig, ok := s.byDigest[d]
	return sig, ok
}
