package proxy

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/trustgate/trustgate/resolver"
)

// stubSigs answers every tag with sig or err.
type stubSigs struct {
	sig  Signature
	err  error
	tags []string
}

func (s stubSigs) Tag(string) (Signature, error) { return s.sig, s.err }
func (s stubSigs) Tags() []string                { return s.tags }
func (s stubSigs) All() ([]Signature, error) {
	if s.err != nil && !resolver.IsNotSigned(s.err) {
		return nil, s.err
	}
	if s.sig.Digest == "" {
		return nil, nil
	}
	return []Signature{s.sig}, nil
}
func (s stubSigs) Signed(d digest.Digest) (Signature, bool) {
	return s.sig, s.sig.Digest == d && d != ""
}

func TestCombined(t *testing.T) {
	d1, d2 := digest.FromString("1"), digest.FromString("2")
	notary := stubSigs{sig: Signature{Digest: d1, Size: 10, Verifier: "notary", Signer: "targets"}, tags: []string{"a", "b"}}
	cosign := stubSigs{sig: Signature{Digest: d1, Size: 10, Verifier: "cosign", Signer: "sha256:k"}, tags: []string{"b"}}
	other := stubSigs{sig: Signature{Digest: d2, Size: 10, Verifier: "notation", Signer: "CN=x"}}
	unsigned := stubSigs{err: fmt.Errorf("%w: none", resolver.ErrTagNotSigned)}
	down := stubSigs{err: fmt.Errorf("%w: down", resolver.ErrUnavailable)}

	for _, c := range []struct {
		name     string
		all      bool
		parts    []Signatures
		verifier string // "" = an error
		err      error
	}{
		{"any: first that verifies", false, []Signatures{unsigned, cosign, notary}, "cosign", nil},
		{"any: none signed", false, []Signatures{unsigned, unsigned}, "", resolver.ErrTagNotSigned},
		{"any: one down, none signed is not 'unsigned'", false, []Signatures{unsigned, down}, "", resolver.ErrUnavailable},
		{"any: one down, another verifies", false, []Signatures{down, cosign}, "cosign", nil},
		{"all: both verify the same digest", true, []Signatures{notary, cosign}, "notary+cosign", nil},
		{"all: one unsigned", true, []Signatures{notary, unsigned}, "", resolver.ErrTagNotSigned},
		{"all: one down", true, []Signatures{notary, down}, "", resolver.ErrUnavailable},
		{"all: digests disagree", true, []Signatures{notary, other}, "", resolver.ErrInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			cb := &combined{all: c.all, parts: c.parts}
			sig, err := cb.Tag("t")
			if c.verifier != "" {
				if err != nil || sig.Verifier != c.verifier {
					t.Fatalf("Tag = %+v, %v; want verifier %s", sig, err, c.verifier)
				}
				return
			}
			if !errors.Is(err, c.err) {
				t.Fatalf("Tag err = %v, want %v", err, c.err)
			}
			if _, err := cb.SignedDigest(context.Background(), d1); err == nil && c.err != resolver.ErrInvalid {
				t.Errorf("SignedDigest verified what Tag refused")
			}
		})
	}

	anyC := &combined{parts: []Signatures{notary, cosign, other}}
	allC := &combined{all: true, parts: []Signatures{notary, cosign, other}}
	if got := fmt.Sprint(anyC.Tags()); got != "[a b]" {
		t.Errorf("any tags %s", got)
	}
	if got := fmt.Sprint((&combined{all: true, parts: []Signatures{notary, cosign}}).Tags()); got != "[b]" {
		t.Errorf("all tags %s", got)
	}
	if all, _ := anyC.All(); len(all) != 3 {
		t.Errorf("any roots %v", all)
	}
	if all, _ := allC.All(); len(all) != 0 {
		t.Errorf("all roots %v: d1 is not signed by notation, d2 only by it", all)
	}
	if _, ok := allC.Signed(d1); ok {
		t.Error("all: Signed(d1) although notation does not sign it")
	}
	if s, ok := anyC.Signed(d2); !ok || s.Verifier != "notation" {
		t.Errorf("any: Signed(d2) = %+v %t", s, ok)
	}
}
