// Package tuftest makes Notary v1 (TUF) trust data the way notary v0.7.0 does, byte for byte
// in format, so the resolver can be tested on delegations, rotations and attacks that the
// stock notary-server cannot produce (it rejects delegation uploads when built with Go >= 1.17),
// and serves it over HTTP with notary-server's URL scheme.
package tuftest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"testing"
	"time"

	"github.com/trustgate/trustgate/notaryserve"
)

// Alg is the key algorithm of a test key.
type Alg string

// Key algorithms notary signs with: ECDSA P-256 ("ecdsa"), Ed25519 ("eddsa"), RSA ("rsapss").
const (
	ECDSA   Alg = "ecdsa"
	Ed25519 Alg = "ed25519"
	RSA     Alg = "rsa"
	// ECDSAP384 is an ecdsa key on P-384 (notary verifies any curve, always over sha256).
	ECDSAP384 Alg = "ecdsa-p384"
	// RSA1024 is an RSA key below notary's 2048-bit minimum, for negative tests.
	RSA1024 Alg = "rsa-1024"
)

// tufType is the keytype notary lists for a plain key of alg.
func (a Alg) tufType() string {
	switch a {
	case ECDSA, ECDSAP384:
		return "ecdsa"
	case RSA, RSA1024:
		return "rsa"
	}
	return "ed25519"
}

// Key is a signing key together with the TUF public key notary would list for it.
type Key struct {
	// Type is the TUF keytype: ecdsa, ed25519, rsa, ecdsa-x509 or rsa-x509.
	Type string
	// Public is keyval.public before base64: PKIX DER, raw ed25519 bytes, or a certificate PEM.
	Public []byte
	// Cert is the certificate of an x509 key, nil otherwise.
	Cert *x509.Certificate

	alg    Alg
	signer crypto.Signer
}

// NewKey makes a plain (non-certificate) key, as notary uses for targets, snapshot, timestamp
// and delegations.
func NewKey(t testing.TB, alg Alg) *Key {
	t.Helper()
	signer := newSigner(t, alg)
	k := &Key{alg: alg, signer: signer}
	switch alg {
	case Ed25519:
		k.Type = "ed25519"
		k.Public = []byte(signer.Public().(ed25519.PublicKey))
	default:
		der, err := x509.MarshalPKIXPublicKey(signer.Public())
		if err != nil {
			t.Fatalf("tuftest: marshal public key: %v", err)
		}
		k.Type = alg.tufType()
		k.Public = der
	}
	return k
}

// NewCertKey makes an x509 key the way notary makes root keys: a self-signed certificate with
// CommonName cn (the GUN), valid from notBefore to notAfter. alg must be ECDSA or RSA.
func NewCertKey(t testing.TB, alg Alg, cn string, notBefore, notAfter time.Time) *Key {
	t.Helper()
	signer := newSigner(t, alg)
	return certKey(t, alg, signer, cn, notBefore, notAfter)
}

// WithCert returns a copy of k that uses the same private key but lists a fresh self-signed
// certificate; notary's "same key, new certificate" case (and the cert-expiry tests) need it.
func (k *Key) WithCert(t testing.TB, cn string, notBefore, notAfter time.Time) *Key {
	t.Helper()
	return certKey(t, k.alg, k.signer, cn, notBefore, notAfter)
}

func certKey(t testing.TB, alg Alg, signer crypto.Signer, cn string, notBefore, notAfter time.Time) *Key {
	t.Helper()
	if alg == Ed25519 {
		t.Fatalf("tuftest: notary has no ed25519 x509 keys")
	}
	// Same template as notary's tuf/utils.NewCertificate.
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		t.Fatalf("tuftest: create certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("tuftest: parse certificate: %v", err)
	}
	return &Key{
		Type:   alg.tufType() + "-x509",
		Public: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Cert:   cert,
		alg:    alg,
		signer: signer,
	}
}

func newSigner(t testing.TB, alg Alg) crypto.Signer {
	t.Helper()
	var (
		s   crypto.Signer
		err error
	)
	switch alg {
	case ECDSA:
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		s, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case RSA1024:
		s, err = rsa.GenerateKey(rand.Reader, 1024)
	case Ed25519:
		_, s, err = ed25519.GenerateKey(rand.Reader)
	case RSA:
		s, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("tuftest: unknown key algorithm %q", alg)
	}
	if err != nil {
		t.Fatalf("tuftest: generate %s key: %v", alg, err)
	}
	return s
}

// ID is notary's key ID: hex sha256 of the canonical JSON of the public key with an explicit
// "private": null. For x509 keys it is computed over the certificate PEM.
func (k *Key) ID() string { return notaryserve.KeyID(k.Type, k.Public) }

// JSON is the key as it appears in root "keys" and delegation "keys".
func (k *Key) JSON() map[string]interface{} {
	return map[string]interface{}{
		"keytype": k.Type,
		"keyval": map[string]interface{}{
			"private": nil,
			"public":  base64.StdEncoding.EncodeToString(k.Public),
		},
	}
}

// Method is the signature method notary uses for this key.
func (k *Key) Method() string {
	switch k.alg.tufType() {
	case "ecdsa":
		return "ecdsa"
	case "ed25519":
		return "eddsa"
	default:
		return "rsapss"
	}
}

// Sign signs msg the way notary does: ecdsa as raw r||s (each padded to the curve size) over
// sha256, ed25519 over the message, RSA-PSS with sha256 and a 32-byte salt.
func (k *Key) Sign(msg []byte) Signature {
	sig, err := k.sign(msg)
	if err != nil {
		panic("tuftest: sign: " + err.Error())
	}
	return Signature{KeyID: k.ID(), Method: k.Method(), Sig: sig}
}

func (k *Key) sign(msg []byte) ([]byte, error) {
	switch s := k.signer.(type) {
	case *ecdsa.PrivateKey:
		h := sha256.Sum256(msg)
		r, ss, err := ecdsa.Sign(rand.Reader, s, h[:])
		if err != nil {
			return nil, err
		}
		size := (s.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		ss.FillBytes(out[size:])
		return out, nil
	case ed25519.PrivateKey:
		return ed25519.Sign(s, msg), nil
	case *rsa.PrivateKey:
		h := sha256.Sum256(msg)
		return rsa.SignPSS(rand.Reader, s, crypto.SHA256, h[:], &rsa.PSSOptions{SaltLength: sha256.Size})
	}
	panic("unreachable")
}

// SignASN1 signs msg with an ECDSA key but encodes the signature as ASN.1 DER, which notary
// rejects; it exists for that negative test.
func (k *Key) SignASN1(msg []byte) Signature {
	s, ok := k.signer.(*ecdsa.PrivateKey)
	if !ok {
		panic("tuftest: SignASN1 needs an ecdsa key")
	}
	h := sha256.Sum256(msg)
	der, err := ecdsa.SignASN1(rand.Reader, s, h[:])
	if err != nil {
		panic("tuftest: sign: " + err.Error())
	}
	return Signature{KeyID: k.ID(), Method: "ecdsa", Sig: der}
}

// Signature is one entry of a metadata file's "signatures"; it marshals to the wire form
// {"keyid","method","sig": base64}.
type Signature = notaryserve.Signature

// NewCertKeyFor is NewCertKey for a whole-repository option list, where no testing.TB is at
// hand yet: it makes a self-signed root certificate valid for ten years from an hour ago and
// panics on failure.
func NewCertKeyFor(alg Alg, cn string) *Key {
	return NewCertKey(panicTB{}, alg, cn, time.Now().Add(-time.Hour), time.Now().AddDate(10, 0, 0))
}

// panicTB satisfies testing.TB for key generation outside a test's flow.
type panicTB struct{ testing.TB }

func (panicTB) Helper() {}
func (panicTB) Fatalf(format string, args ...interface{}) {
	panic(fmt.Sprintf(format, args...))
}
