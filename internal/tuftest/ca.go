package tuftest

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// CA is a certificate authority for trust_pinning.ca tests: root certificates it issues chain
// to it, and PEM is what a pinning configuration holds.
type CA struct {
	Cert *x509.Certificate
	PEM  []byte
	key  *Key
}

// NewCA makes a self-signed ECDSA CA valid from notBefore to notAfter.
func NewCA(t testing.TB, cn string, notBefore, notAfter time.Time) *CA {
	t.Helper()
	k := NewKey(t, ECDSA)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.signer.Public(), k.signer)
	if err != nil {
		t.Fatalf("tuftest: create CA: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("tuftest: parse CA: %v", err)
	}
	return &CA{Cert: cert, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: k}
}

// Issue makes an x509 root key whose certificate (CommonName cn) is signed by the CA. eku is
// the leaf's extended key usage: notary's own root certificates carry code signing, which Go's
// chain verification (used by notary's CA pinning) rejects unless it is empty or allows
// server auth. With bundle, the CA certificate follows the leaf in the key's PEM, as an
// intermediate would.
func (ca *CA) Issue(t testing.TB, alg Alg, cn string, notBefore, notAfter time.Time, eku []x509.ExtKeyUsage, bundle bool) *Key {
	t.Helper()
	signer := newSigner(t, alg)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, signer.Public(), ca.key.signer)
	if err != nil {
		t.Fatalf("tuftest: issue certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("tuftest: parse certificate: %v", err)
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if bundle {
		pub = append(pub, ca.PEM...)
	}
	return &Key{Type: alg.tufType() + "-x509", Public: pub, Cert: cert, alg: alg, signer: signer}
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatalf("tuftest: serial: %v", err)
	}
	return n
}
