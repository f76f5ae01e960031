package notation

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/notaryproject/notation-go/verifier/truststore"
)

func policyDoc(level string) string {
	if level == "skip" {
		return `{"version":"1.0","trustPolicies":[{"name":"p","registryScopes":["*"],"signatureVerification":{"level":"skip"}}]}`
	}
	return `{"version":"1.0","trustPolicies":[{"name":"p","registryScopes":["*"],"signatureVerification":{"level":"` + level +
		`"},"trustStores":["ca:demo"],"trustedIdentities":["*"]}]}`
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "truststore")
	_ = os.MkdirAll(filepath.Join(store, "x509", "ca", "demo"), 0o755)
	for _, c := range []struct {
		level, want string
	}{
		{"strict", ""},
		{"permissive", ""},
		{"audit", "does not enforce authenticity"},
		{"skip", "does not enforce authenticity"},
	} {
		p := filepath.Join(dir, c.level+".json")
		_ = os.WriteFile(p, []byte(policyDoc(c.level)), 0o644)
		_, err := New(Config{TrustPolicy: p, TrustStore: store})
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("level %s: err = %v, want %q", c.level, err, c.want)
		}
	}
	if _, err := New(Config{TrustPolicy: filepath.Join(dir, "strict.json")}); err == nil {
		t.Error("no trust store accepted")
	}
	bad := filepath.Join(dir, "bad.json")
	_ = os.WriteFile(bad, []byte(`{"version":"1.0","trustPolicies":[]}`), 0o644)
	if _, err := New(Config{TrustPolicy: bad, TrustStore: store}); err == nil {
		t.Error("an empty trust policy document accepted")
	}
}

func TestDirStore(t *testing.T) {
	dir := t.TempDir()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "demo"}, NotBefore: time.Now(),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	ca := filepath.Join(dir, "x509", "ca", "demo")
	_ = os.MkdirAll(ca, 0o755)
	_ = os.WriteFile(filepath.Join(ca, "demo.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	_ = os.WriteFile(filepath.Join(ca, "demo.crt"), der, 0o644)
	s := dirStore(dir)
	certs, err := s.GetCertificates(context.Background(), truststore.TypeCA, "demo")
	if err != nil || len(certs) != 2 || certs[0].Subject.CommonName != "demo" {
		t.Fatalf("GetCertificates = %d, %v", len(certs), err)
	}
	for _, name := range []string{"..", "../ca", "", "a/b", "missing"} {
		if _, err := s.GetCertificates(context.Background(), truststore.TypeCA, name); err == nil {
			t.Errorf("store name %q accepted", name)
		}
	}
	if _, err := s.GetCertificates(context.Background(), "../x509", "demo"); err == nil {
		t.Error("store type outside the layout accepted")
	}
}
