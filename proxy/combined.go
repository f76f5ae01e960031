package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/resolver"
)

// combined is several verifiers' Signatures of one repository under a rule's require: any (one
// verifier's signature suffices; the first in the rule's order that verifies is the one served)
// or all (every verifier must verify, and at the same digest).
type combined struct {
	all   bool
	parts []Signatures
}

// Tag: under any, the first signature that verifies; when none does, "not signed" only if every
// verifier says so, else the first other failure (503: one that could not verify might have).
// Under all, the first failure, or a mismatch of digests.
func (c *combined) Tag(tag string) (Signature, error) {
	return c.pick(func(s Signatures) (Signature, error) { return s.Tag(tag) })
}

func (c *combined) SignedDigest(ctx context.Context, d digest.Digest) (Signature, error) {
	return c.pick(func(s Signatures) (Signature, error) {
		if dc, ok := s.(digestChecker); ok {
			return dc.SignedDigest(ctx, d)
		}
		if sig, ok := s.Signed(d); ok {
			return sig, nil
		}
		return Signature{}, fmt.Errorf("%w: %s is not signed itself", resolver.ErrTagNotSigned, d)
	})
}

func (c *combined) pick(get func(Signatures) (Signature, error)) (Signature, error) {
	var sigs []Signature
	var notSigned, other error
	for _, s := range c.parts {
		sig, err := get(s)
		switch {
		case err == nil && !c.all:
			return sig, nil
		case err == nil:
			sigs = append(sigs, sig)
		case c.all:
			return Signature{}, err
		case resolver.IsNotSigned(err):
			notSigned = errors.Join(notSigned, err)
		case other == nil:
			other = err
		}
	}
	if !c.all {
		if other != nil {
			return Signature{}, other
		}
		return Signature{}, notSigned
	}
	out := sigs[0]
	var names, who []string
	for _, s := range sigs {
		if s.Digest != out.Digest || s.Size != out.Size {
			return Signature{}, fmt.Errorf("%w: verifiers disagree: %s %s@%s (%d bytes), %s %s (%d bytes)",
				resolver.ErrInvalid, out.Verifier, out.Tag, out.Digest, out.Size, s.Verifier, s.Digest, s.Size)
		}
		if !s.Expires.IsZero() && (out.Expires.IsZero() || s.Expires.Before(out.Expires)) {
			out.Expires = s.Expires
		}
		names = append(names, s.Verifier)
		who = append(who, s.Signer)
	}
	out.Verifier, out.Signer = strings.Join(names, "+"), strings.Join(who, "+")
	return out, nil
}

// Tags: the union (any) or intersection (all) of the verifiers' signed tags.
func (c *combined) Tags() []string {
	count := map[string]int{}
	for _, s := range c.parts {
		for _, t := range s.Tags() {
			count[t]++
		}
	}
	var out []string
	for t, n := range count {
		if !c.all || n == len(c.parts) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// All: every verifier's signatures (any), or those whose digest every verifier signs (all).
func (c *combined) All() ([]Signature, error) {
	var out []Signature
	var first error
	count := map[digest.Digest]int{}
	for _, s := range c.parts {
		sigs, err := s.All()
		if err != nil && first == nil {
			first = err
		}
		seen := map[digest.Digest]bool{}
		for _, sig := range sigs {
			if !seen[sig.Digest] {
				seen[sig.Digest] = true
				count[sig.Digest]++
			}
			out = append(out, sig)
		}
	}
	if c.all {
		out = slices.DeleteFunc(out, func(s Signature) bool { return count[s.Digest] != len(c.parts) })
	}
	return out, first
}

func (c *combined) Signed(d digest.Digest) (Signature, bool) {
	var found Signature
	for _, s := range c.parts {
		sig, ok := s.Signed(d)
		switch {
		case ok && !c.all:
			return sig, true
		case !ok && c.all:
			return Signature{}, false
		case ok && found.Digest == "":
			found = sig
		}
	}
	return found, found.Digest != ""
}

// signatures returns the repository's Signatures under every verifier dec names, combined as
// it requires, and the name of what answers (X-Trustgate-Verifier when nothing verified: notary,
// frozen, cosign, notation, joined with "," under any and "+" under all). The Notary slot is
// answered by a frozen trust file for the repositories it holds (Server.verifier).
func (s *Server) signatures(ctx context.Context, ref repoRef, dec policy.Decision) (Signatures, string, error) {
	var vers []Verifier
	var names []string
	if dec.Notary != nil || dec.Frozen != nil {
		v, err := s.verifier(ref, dec)
		if err != nil {
			return nil, "", err
		}
		vers, names = append(vers, v), append(names, "notary")
		if n, ok := v.(interface{ name() string }); ok {
			names[0] = n.name()
		}
	}
	if dec.Cosign != nil {
		vers, names = append(vers, s.cosign[ref.up.cfg.Name]), append(names, "cosign")
	}
	if dec.Notation != nil {
		vers, names = append(vers, s.notation[ref.up.cfg.Name]), append(names, "notation")
	}
	sep := ","
	if dec.Require == policy.All {
		sep = "+"
	}
	name := strings.Join(names, sep)
	switch len(vers) {
	case 0:
		return nil, "", errNoVerifier
	case 1:
		sigs, err := vers[0].Signatures(ctx, ref.gun, dec)
		return sigs, name, err
	}
	c := &combined{all: dec.Require == policy.All}
	var notSigned, other error
	for _, v := range vers {
		sigs, err := v.Signatures(ctx, ref.gun, dec)
		switch {
		case err == nil:
			c.parts = append(c.parts, sigs)
		case c.all:
			return nil, name, err
		case resolver.IsNotSigned(err):
			notSigned = errors.Join(notSigned, err) // e.g. no Notary trust data: the others may sign
		case other == nil:
			other = err
		}
	}
	if len(c.parts) == 0 {
		if other != nil {
			return nil, name, other
		}
		return nil, name, notSigned
	}
	if other != nil {
		// One verifier could not be asked at all: under any, what the others verify is still
		// served, but nothing is called unsigned (its Tag reports the failure).
		c.parts = append(c.parts, failed{other})
	}
	if len(c.parts) == 1 {
		return c.parts[0], name, nil
	}
	return c, name, nil
}

// failed is a verifier that could not establish anything: every question gets err.
type failed struct{ err error }

func (f failed) Tag(string) (Signature, error)          { return Signature{}, f.err }
func (f failed) Tags() []string                         { return nil }
func (f failed) All() ([]Signature, error)              { return nil, f.err }
func (f failed) Signed(digest.Digest) (Signature, bool) { return Signature{}, false }
