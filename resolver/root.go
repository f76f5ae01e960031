package resolver

import (
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

// trustedRoot is a root that passed validation, with its raw bytes (for hash checks against
// snapshot meta and for persistence).
type trustedRoot struct {
	raw    []byte
	signed *rootSigned
	// signers are the re-encoded root certificate IDs with a valid signature.
	signers []string
}

// errRotation marks a new root that the previously trusted root did not sign: Notary's
// ErrRootRotationFail, the one failure that makes it walk N.root.json.
var errRotation = errors.New("root not signed by a threshold of the previous root's keys")

// errCertExpired distinguishes expired certificates from otherwise bad ones.
var errCertExpired = errors.New("certificate expired or not yet valid")

// validateCertificate is Notary's utils.ValidateCertificate: sane validity window, no SHA-1,
// RSA ≥ 2048 bits and, when asked, valid now (with a day of leeway on NotBefore).
func validateCertificate(c *x509.Certificate, checkExpiry bool, now time.Time) error {
	if c.NotBefore.After(c.NotAfter) {
		return errors.New("certificate validity window is invalid")
	}
	switch c.SignatureAlgorithm {
	case x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1:
		return fmt.Errorf("certificate with CN %q uses a SHA-1 signature", c.Subject.CommonName)
	}
	if c.PublicKeyAlgorithm == x509.RSA {
		k, ok := c.PublicKey.(*rsa.PublicKey)
		if !ok || k.N.BitLen() < minRSABits {
			return errors.New("RSA certificate key is shorter than 2048 bits")
		}
	}
	if checkExpiry && (now.AddDate(0, 0, 1).Before(c.NotBefore) || now.After(c.NotAfter)) {
		return fmt.Errorf("certificate with CN %q: %w", c.Subject.CommonName, errCertExpired)
	}
	return nil
}

// matchCN is Notary's MatchCNToGun: exact, or a CN ending in '*' prefix-matches the GUN.
func matchCN(cn, gun string) bool {
	if strings.HasSuffix(cn, "*") {
		return strings.HasPrefix(gun, strings.TrimRight(cn, "*"))
	}
	return cn == gun
}

// rootCerts is parseAllCerts: for every root-role key, a bundle of exactly one leaf, first,
// plus CA intermediates. Keys that are not such bundles are ignored (and so cannot sign).
func rootCerts(r *rootSigned) (leaves map[string]*x509.Certificate, inters map[string][]*x509.Certificate) {
	leaves = map[string]*x509.Certificate{}
	inters = map[string][]*x509.Certificate{}
	for _, id := range r.Roles[roleRoot].KeyIDs {
		k, ok := r.Keys[id]
		if !ok || (k.Type != keyECDSAx509 && k.Type != keyRSAx509) {
			continue
		}
		certs, err := parseCertBundle(k.Value.Public)
		if err != nil || certs[0].IsCA {
			continue
		}
		var leaf []*x509.Certificate
		var in []*x509.Certificate
		for _, c := range certs {
			if c.IsCA {
				in = append(in, c)
			} else {
				leaf = append(leaf, c)
			}
		}
		if len(leaf) != 1 {
			continue
		}
		leaves[id], inters[id] = leaf[0], in
	}
	return leaves, inters
}

// validLeaves keeps the leaves whose CN matches gun and that pass certificate checks.
func validLeaves(leaves map[string]*x509.Certificate, gun string, checkExpiry bool, now time.Time) (map[string]*x509.Certificate, error) {
	out := map[string]*x509.Certificate{}
	expired := false
	for id, c := range leaves {
		if !matchCN(c.Subject.CommonName, gun) {
			continue
		}
		if err := validateCertificate(c, checkExpiry, now); err != nil {
			expired = expired || errors.Is(err, errCertExpired)
			continue
		}
		out[id] = c
	}
	if len(out) == 0 {
		if expired {
			return nil, fmt.Errorf("%w: root of %s: no unexpired leaf certificate matches the GUN", ErrExpired, gun)
		}
		return nil, fmt.Errorf("%w: root of %s: unable to retrieve valid leaf certificates", ErrInvalid, gun)
	}
	return out, nil
}

// certKeys is utils.CertsToKeys: the re-encoded key for each leaf, keyed by its new ID.
func certKeys(leaves map[string]*x509.Certificate, inters map[string][]*x509.Certificate) map[string]tufKey {
	keys := map[string]tufKey{}
	for id, leaf := range leaves {
		if k, err := certBundleKey(leaf, inters[id]); err == nil {
			keys[k.id()] = k
		}
	}
	return keys
}

// rootCheck carries everything validateRoot needs besides the bytes.
type rootCheck struct {
	gun  string
	prev *trustedRoot  // nil on first bootstrap
	pin  *TrustPinning // nil: the trusted chain alone decides, no pin is applied
	now  time.Time
}

// validateRoot is trustpinning.ValidateRoot: a new root must be signed by a threshold (the
// previous root's threshold) of the previous root's GUN-matching leaves (expiry not
// checked), and by a threshold of its own unexpired leaves that rc.pin (if any) approves.
// Version and expiry are the caller's business because the rotation walk treats them
// differently.
func validateRoot(raw []byte, rc rootCheck) (*trustedRoot, error) {
	env, err := parseEnvelope(raw)
	if err != nil {
		return nil, fmt.Errorf("root of %s: %w", rc.gun, err)
	}
	r, err := parseRoot(env)
	if err != nil {
		return nil, fmt.Errorf("root of %s: %w", rc.gun, err)
	}
	leaves, inters := rootCerts(r)
	current, err := validLeaves(leaves, rc.gun, true, rc.now)
	if err != nil {
		return nil, err
	}
	validInters := map[string][]*x509.Certificate{}
	for id, list := range inters {
		for _, c := range list {
			if validateCertificate(c, true, rc.now) == nil {
				validInters[id] = append(validInters[id], c)
			}
		}
	}
	if rc.prev != nil {
		pl, pi := rootCerts(rc.prev.signed)
		trusted, err := validLeaves(pl, rc.gun, false, rc.now)
		if err != nil {
			return nil, fmt.Errorf("previous root of %s: %w", rc.gun, err)
		}
		ks := keySet{name: "root (previous keys)", keys: certKeys(trusted, pi), threshold: rc.prev.signed.Roles[roleRoot].Threshold}
		if _, err := verifySignatures(env, ks); err != nil {
			return nil, fmt.Errorf("%w: root of %s v%d: %w: %w", ErrThreshold, rc.gun, r.Version, errRotation, err)
		}
	}
	check := func(*x509.Certificate, []*x509.Certificate) bool { return true }
	if rc.pin != nil {
		if check, err = rc.pin.pinChecker(rc.gun, rc.prev == nil, rc.now); err != nil {
			return nil, err
		}
	}
	pinned := map[string]*x509.Certificate{}
	for id, c := range current {
		if check(c, validInters[id]) {
			pinned[id] = c
		}
	}
	if len(pinned) == 0 {
		return nil, fmt.Errorf("%w: root of %s: no certificate matches the trust pinning", ErrPinMismatch, rc.gun)
	}
	signers, err := verifySignatures(env, keySet{name: "root", keys: certKeys(pinned, validInters), threshold: r.Roles[roleRoot].Threshold})
	if err != nil {
		return nil, fmt.Errorf("root of %s: %w", rc.gun, err)
	}
	return &trustedRoot{raw: raw, signed: r, signers: signers}, nil
}

// keySet returns the keys and threshold root assigns to a top-level role.
func (t *trustedRoot) keySet(role string) keySet {
	rr := t.signed.Roles[role]
	ks := keySet{name: role, keys: map[string]tufKey{}, threshold: rr.Threshold}
	for _, id := range rr.KeyIDs {
		ks.keys[id] = t.signed.Keys[id]
	}
	return ks
}
