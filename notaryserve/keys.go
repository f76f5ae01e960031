// Package notaryserve signs Notary v1 (TUF) trust data the way notary v0.7.0 writes it and serves
// it over the read API notary-server speaks, so that a Notary client — trustgate's resolver, the
// notary CLI, docker with content trust — verifies it as it would verify a real repository.
//
// It is the trust server of `trustgate demo`: keys are generated in memory when a Repo is made
// and never written anywhere. Only what a reader needs is implemented: ECDSA P-256 keys, a
// self-signed x509 root certificate per GUN, the four base roles (root, targets, snapshot,
// timestamp) and GET of current and checksummed files. Delegations, key rotation and writes
// (notary-server's POST) are not.
package notaryserve

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
)

// Key types as notary lists them in "keytype".
const (
	KeyTypeECDSA     = "ecdsa"
	KeyTypeECDSAx509 = "ecdsa-x509"
)

// Key is an ECDSA P-256 signing key with the TUF public key notary lists for it.
type Key struct {
	// Type is KeyTypeECDSA or KeyTypeECDSAx509.
	Type string
	// Public is keyval.public before base64: PKIX DER for ecdsa, the certificate PEM for
	// ecdsa-x509.
	Public []byte
	// Cert is the certificate of an ecdsa-x509 key, nil otherwise.
	Cert *x509.Certificate

	priv *ecdsa.PrivateKey
	id   string
}

// NewKey generates a plain ECDSA P-256 key, as notary uses for targets, snapshot and timestamp.
func NewKey() (*Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("notaryserve: generate key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("notaryserve: marshal public key: %w", err)
	}
	return newKey(KeyTypeECDSA, der, nil, priv), nil
}

// NewRootKey generates an ECDSA P-256 root key with a self-signed certificate whose CommonName
// is gun, valid from notBefore to notAfter, as notary's tuf/utils.NewCertificate makes it. A
// Notary client accepts a root only if a certificate's CommonName matches the GUN.
func NewRootKey(gun string, notBefore, notAfter time.Time) (*Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("notaryserve: generate root key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("notaryserve: certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: gun},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, fmt.Errorf("notaryserve: create root certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("notaryserve: parse root certificate: %w", err)
	}
	return newKey(KeyTypeECDSAx509, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), cert, priv), nil
}

func newKey(typ string, public []byte, cert *x509.Certificate, priv *ecdsa.PrivateKey) *Key {
	k := &Key{Type: typ, Public: public, Cert: cert, priv: priv}
	k.id = KeyID(typ, public)
	return k
}

// KeyID is notary's key ID (tuf/data/keys.go TUFKey.ID): hex sha256 of the canonical JSON of
// {"keytype":typ,"keyval":{"private":null,"public":base64(public)}}. For an x509 key, public is
// the certificate PEM, so the ID names the certificate, which is what trust pinning lists.
func KeyID(typ string, public []byte) string {
	b, err := cjson.EncodeCanonical(keyJSON(typ, public))
	if err != nil {
		panic("notaryserve: canonical key: " + err.Error()) // strings and nil always encode
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func keyJSON(typ string, public []byte) map[string]any {
	return map[string]any{
		"keytype": typ,
		"keyval": map[string]any{
			"private": nil,
			"public":  base64.StdEncoding.EncodeToString(public),
		},
	}
}

// ID is the key's notary key ID.
func (k *Key) ID() string { return k.id }

// JSON is the key as root "keys" lists it.
func (k *Key) JSON() map[string]any { return keyJSON(k.Type, k.Public) }

// Sign signs msg as notary's ECDSA signer does: sha256, then r||s, each left-padded to 32 bytes
// (not ASN.1, which notary's verifier rejects).
func (k *Key) Sign(msg []byte) (Signature, error) {
	h := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, k.priv, h[:])
	if err != nil {
		return Signature{}, fmt.Errorf("notaryserve: sign: %w", err)
	}
	size := (k.priv.Curve.Params().BitSize + 7) / 8
	sig := make([]byte, 2*size)
	r.FillBytes(sig[:size])
	s.FillBytes(sig[size:])
	return Signature{KeyID: k.id, Method: "ecdsa", Sig: sig}, nil
}

// Signature is one entry of a metadata file's "signatures".
type Signature struct {
	KeyID  string
	Method string
	Sig    []byte
}

// MarshalJSON writes the wire form {"keyid","method","sig": base64}.
func (s Signature) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{
		"keyid":  s.KeyID,
		"method": s.Method,
		"sig":    base64.StdEncoding.EncodeToString(s.Sig),
	})
}
