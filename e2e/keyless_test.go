package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

// oidIssuerV2 is Fulcio's OIDC issuer extension (a DER UTF8String).
var oidIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, name string) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name, Organization: []string{"trustgate-e2e"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	cert, err := x509.ParseCertificate(der)
	must(t, err)
	return testCA{cert: cert, key: key}
}

// leaf issues a Fulcio-style code-signing certificate for email from issuer, and writes its key
// and certificate as PEM files in dir.
func (ca testCA) leaf(t *testing.T, dir, email, issuer string) (keyFile, certFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	ext, err := asn1.MarshalWithParams(issuer, "utf8")
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(2 * time.Hour), EmailAddresses: []string{email},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		ExtraExtensions: []pkix.Extension{{Id: oidIssuerV2, Value: ext}}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	must(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	must(t, err)
	keyFile, certFile = filepath.Join(dir, "leaf.key"), filepath.Join(dir, "leaf.pem")
	must(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600))
	must(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	return keyFile, certFile
}

// trustedRoot writes a Sigstore trusted_root.json whose only certificate authority is ca.
func (ca testCA) trustedRoot(t *testing.T) string {
	t.Helper()
	b, _ := json.Marshal(map[string]any{
		"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
		"certificateAuthorities": []any{map[string]any{
			"subject":   map[string]string{"organization": "trustgate-e2e", "commonName": ca.cert.Subject.CommonName},
			"uri":       "https://ca.e2e.invalid",
			"certChain": map[string]any{"certificates": []any{map[string]string{"rawBytes": base64.StdEncoding.EncodeToString(ca.cert.Raw)}}},
			"validFor":  map[string]string{"start": ca.cert.NotBefore.UTC().Format(time.RFC3339)},
		}},
		"tlogs": []any{}, "ctlogs": []any{}, "timestampAuthorities": []any{},
	})
	p := filepath.Join(t.TempDir(), "trusted_root.json")
	must(t, os.WriteFile(p, b, 0o644))
	return p
}

// TestCosignKeyless is issue #9's keyless case offline: a private CA standing in for Fulcio, a
// hand-written trusted root listing only it, cosign v3 signing with the CA's certificate (bundle
// layout, no transparency log), and rules naming the certificate identity.
func TestCosignKeyless(t *testing.T) {
	w := newWorld(t)
	const issuer, email = "https://issuer.e2e.invalid", "dev@example.com"
	ca := newTestCA(t, "e2e CA")
	rogue := newTestCA(t, "rogue CA")

	cs := newSigner(t, "cosign")
	sign := func(ca testCA, p peers.Pushed) {
		dir := t.TempDir()
		key, cert := ca.leaf(t, dir, email, issuer)
		cs.dir = dir
		cs.run(t, "import-key-pair", "--key", key)
		cosignSign(t, cs, w.reg.Host, filepath.Join(dir, "import-cosign.key"), p, "--certificate", cert)
	}
	good := w.push(t, "kl/app", "good")
	sign(ca, good)
	rogueSigned := w.push(t, "kl/app", "rogue")
	sign(rogue, rogueSigned)
	unsigned := w.push(t, "kl/app", "unsigned")
	other := w.push(t, "kl2/app", "good")
	sign(ca, other)

	root := ca.trustedRoot(t)
	ident := func(subject string) string {
		return "{cosign: {trusted_root: " + q(root) + ", identities: [{issuer: " + q(issuer) + ", subject: " + q(subject) + "}]}}"
	}
	g := w.gate(t, peers.GateConfig{Rules: []peers.GateRule{
		{Match: "docker.io/kl/**", Mode: "enforce", Verifiers: ident(email)},
		{Match: "docker.io/kl2/**", Mode: "enforce", Verifiers: ident("someone-else@example.com")},
	}})
	t.Run("certificate from the trusted CA with the identity", func(t *testing.T) {
		expectServed(t, g, "kl/app", "good", good.Digest, "cosign")
		r := getManifest(t, g, "kl/app", "good")
		if s := r.header.Get("X-Trustgate-Signer"); s != email+" ("+issuer+")" {
			t.Errorf("X-Trustgate-Signer = %q", s)
		}
	})
	t.Run("certificate from another CA", func(t *testing.T) {
		expectRefused(t, g, "kl/app", "rogue", http.StatusNotFound, rogueSigned.Digest)
		expectReason(t, g, gun("kl/app"), "rogue", "refuse", "identity")
	})
	t.Run("unsigned", func(t *testing.T) {
		expectRefused(t, g, "kl/app", "unsigned", http.StatusNotFound, unsigned.Digest)
	})
	t.Run("another identity", func(t *testing.T) {
		expectRefused(t, g, "kl2/app", "good", http.StatusNotFound, other.Digest)
		expectReason(t, g, gun("kl2/app"), "good", "refuse", "identity")
	})
}
