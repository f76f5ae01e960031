package resolver

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"
)

// TrustPinning decides which root certificates may anchor a GUN. Its rules and precedence are
// Notary's trust_pinning, and so is when it applies: to a root fetched without a trusted one
// (first contact, or a successor to an expired cached root) and to any rotation followed in
// the same Update; a rotation that the trusted root signs is not checked against the pins.
type TrustPinning struct {
	// Certs maps a GUN, or a "prefix*" wildcard, to the allowed root certificate key IDs
	// (the TUF IDs of the ecdsa-x509/rsa-x509 keys, as root signatures reference them).
	Certs map[string][]string
	// CA maps a GUN prefix to a PEM bundle (file contents) the root leaf must chain to.
	CA map[string]string
	// DisableTOFU refuses a first root that no pin covers instead of trusting it on first use.
	DisableTOFU bool
	// EveryRoot applies Certs and CA to every root: the cached one on every Update and every
	// rotated one, so a pinned GUN only ever trusts pinned keys (a rotation needs the new key
	// pinned first) and a changed pin takes effect on trust already established. Notary does
	// not do this; it is off by default.
	EveryRoot bool
}

// pinCheck reports whether a root leaf (with the root's own valid intermediates) is allowed.
type pinCheck func(leaf *x509.Certificate, inter []*x509.Certificate) bool

// pinChecker picks the rule for gun the way Notary's NewTrustPinChecker does: exact Certs
// entry, then the longest wildcard Certs entry, then the longest CA prefix, then TOFU.
// DisableTOFU only matters on first bootstrap: once a root is trusted it is the pin.
func (p TrustPinning) pinChecker(gun string, firstBootstrap bool, now time.Time) (pinCheck, error) {
	if ids, ok := p.Certs[gun]; ok {
		return certsCheck(ids), nil
	}
	if ids, ok := wildcardPin(gun, p.Certs); ok {
		return certsCheck(ids), nil
	}
	if bundle, ok := caPin(gun, p.CA); ok {
		certs, err := parseCertBundle([]byte(bundle))
		if err != nil {
			return nil, fmt.Errorf("%w: pinned CA for %s: %w", ErrPinMismatch, gun, err)
		}
		pool := x509.NewCertPool()
		n := 0
		for _, c := range certs {
			if validateCertificate(c, true, now) == nil {
				pool.AddCert(c)
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("%w: pinned CA bundle for %s has no valid certificates", ErrPinMismatch, gun)
		}
		return func(leaf *x509.Certificate, inter []*x509.Certificate) bool {
			ip := x509.NewCertPool()
			for _, c := range inter {
				ip.AddCert(c)
			}
			_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: ip, CurrentTime: now})
			return err == nil
		}, nil
	}
	if p.DisableTOFU && firstBootstrap {
		return nil, fmt.Errorf("%w: no pin for %s and TOFU is disabled", ErrPinMismatch, gun)
	}
	return func(*x509.Certificate, []*x509.Certificate) bool { return true }, nil
}

func certsCheck(ids []string) pinCheck {
	return func(leaf *x509.Certificate, inter []*x509.Certificate) bool {
		k, err := certBundleKey(leaf, inter)
		return err == nil && slices.Contains(ids, k.id())
	}
}

func wildcardPin(gun string, certs map[string][]string) ([]string, bool) {
	longest, found := "", false
	var ids []string
	for prefix, v := range certs {
		if strings.HasSuffix(prefix, "*") && strings.HasPrefix(gun, prefix[:len(prefix)-1]) && (!found || len(prefix) > len(longest)) {
			longest, ids, found = prefix, v, true
		}
	}
	return ids, found
}

func caPin(gun string, cas map[string]string) (string, bool) {
	longest, found := "", false
	var bundle string
	for prefix, v := range cas {
		if strings.HasPrefix(gun, prefix) && (!found || len(prefix) > len(longest)) {
			longest, bundle, found = prefix, v, true
		}
	}
	return bundle, found
}
