package resolver

import (
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
)

// Key types as they appear in "keytype".
const (
	keyED25519   = "ed25519"
	keyECDSA     = "ecdsa"
	keyECDSAx509 = "ecdsa-x509"
	keyRSA       = "rsa"
	keyRSAx509   = "rsa-x509"
)

// keyID computes the ID Notary gives a key (tuf/data/keys.go TUFKey.ID): sha256 over the
// canonical JSON of {"keytype":…,"keyval":{"private":null,"public":…}}. The explicit
// "private":null is what makes these IDs differ from go-tuf's; it is built as a map and
// canonicalised with cjson so no struct field order can leak in.
func keyID(keyType string, public []byte) string {
	var pub any // a missing or null public key encodes as null, as a nil []byte does in notary
	if public != nil {
		pub = base64.StdEncoding.EncodeToString(public)
	}
	obj := map[string]any{
		"keytype": keyType,
		"keyval": map[string]any{
			"private": nil,
			"public":  pub,
		},
	}
	b, err := cjson.EncodeCanonical(obj)
	if err != nil {
		// Only strings and nil are encoded; cjson cannot fail on them.
		panic(fmt.Sprintf("resolver: canonicalising key: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (k tufKey) id() string { return keyID(k.Type, k.Value.Public) }

// cryptoKey turns key material into a Go public key the way Notary's verifiers do: PKIX DER
// for ecdsa/rsa, the first PEM certificate for the x509 types, raw 32 bytes for ed25519.
func cryptoKey(k tufKey) (crypto.PublicKey, error) {
	switch k.Type {
	case keyED25519:
		if len(k.Value.Public) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: ed25519 key has %d bytes", ErrInvalid, len(k.Value.Public))
		}
		return ed25519.PublicKey(k.Value.Public), nil
	case keyECDSA, keyRSA:
		pub, err := x509.ParsePKIXPublicKey(k.Value.Public)
		if err != nil {
			return nil, fmt.Errorf("%w: %s key: %v", ErrInvalid, k.Type, err)
		}
		return pub, nil
	case keyECDSAx509, keyRSAx509:
		block, _ := pem.Decode(k.Value.Public)
		if block == nil {
			return nil, fmt.Errorf("%w: %s key is not PEM", ErrInvalid, k.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %s key: %v", ErrInvalid, k.Type, err)
		}
		return cert.PublicKey, nil
	default:
		return nil, fmt.Errorf("%w: unsupported key type %q", ErrInvalid, k.Type)
	}
}

// parseCertBundle is Notary's utils.LoadCertBundleFromPEM: every PEM block must be a
// certificate and at least one must be present.
func parseCertBundle(pemBytes []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, pemBytes = pem.Decode(pemBytes)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: invalid PEM block type %q", ErrInvalid, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%w: no certificates found", ErrInvalid)
	}
	return certs, nil
}

// certBundleKey rebuilds an x509 TUF key from a leaf and its intermediates the way Notary's
// utils.CertBundleToKey does. Root signatures must reference the ID of this re-encoded
// bundle, not whatever PEM the file carried.
func certBundleKey(leaf *x509.Certificate, inter []*x509.Certificate) (tufKey, error) {
	var pemBytes []byte
	for _, c := range append([]*x509.Certificate{leaf}, inter...) {
		pemBytes = append(pemBytes, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	var k tufKey
	switch leaf.PublicKeyAlgorithm {
	case x509.RSA:
		k.Type = keyRSAx509
	case x509.ECDSA:
		k.Type = keyECDSAx509
	default:
		return k, fmt.Errorf("%w: unsupported certificate key algorithm %v", ErrInvalid, leaf.PublicKeyAlgorithm)
	}
	k.Value.Public = pemBytes
	return k, nil
}
