package resolver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"testing"
	"time"
)

// rootCertIDs returns the TUF key IDs of the root role's keys in a fixture root.
func rootCertIDs(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Signed struct {
			Roles map[string]struct {
				KeyIDs []string `json:"keyids"`
			} `json:"roles"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	return env.Signed.Roles["root"].KeyIDs
}

func TestPinningFixtures(t *testing.T) {
	srv := fixtureServer(t)
	appIDs := rootCertIDs(t, dirApp+"/root.json")
	ca, _, _ := testCA(t, "some other CA")
	tests := []struct {
		name string
		pin  TrustPinning
		err  error
	}{
		{name: "tofu", pin: TrustPinning{}},
		{name: "exact cert", pin: TrustPinning{Certs: map[string][]string{gunApp: appIDs}}},
		{name: "exact wrong cert", pin: TrustPinning{Certs: map[string][]string{gunApp: {"0123"}}}, err: ErrPinMismatch},
		{name: "exact wins over wildcard", pin: TrustPinning{Certs: map[string][]string{gunApp: {"0123"}, "localhost:5000/*": appIDs}}, err: ErrPinMismatch},
		{name: "wildcard", pin: TrustPinning{Certs: map[string][]string{"localhost:5000/*": appIDs}}},
		{name: "longest wildcard wins", pin: TrustPinning{Certs: map[string][]string{"localhost:5000/*": appIDs, "localhost:5000/test/*": {"0123"}}}, err: ErrPinMismatch},
		{name: "wildcard elsewhere is TOFU", pin: TrustPinning{Certs: map[string][]string{"docker.io/*": {"0123"}}}},
		{name: "disable tofu without pin", pin: TrustPinning{DisableTOFU: true}, err: ErrPinMismatch},
		{name: "disable tofu with pin", pin: TrustPinning{DisableTOFU: true, Certs: map[string][]string{gunApp: appIDs}}},
		{name: "wrong CA", pin: TrustPinning{CA: map[string]string{"localhost:5000/": ca}}, err: ErrPinMismatch},
		{name: "cert pin beats CA", pin: TrustPinning{CA: map[string]string{"localhost:5000/": ca}, Certs: map[string][]string{gunApp: appIDs}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(t, srv, func(cfg *Config) { cfg.Pinning = tc.pin })
			_, err := c.Update(context.Background(), gunApp)
			if tc.err == nil && err != nil || tc.err != nil && !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
		})
	}
}

// testCA makes a CA and a leaf for cn signed by it; it returns the CA PEM, the leaf, and
// the CA certificate.
func testCA(t *testing.T, cn string) (string, *x509.Certificate, *x509.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: fixtureNow.Add(-time.Hour), NotAfter: fixtureNow.AddDate(5, 0, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
		NotBefore: fixtureNow.Add(-time.Hour), NotAfter: fixtureNow.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})), leaf, caCert
}

func TestPinCheckerCA(t *testing.T) {
	caPEM, leaf, _ := testCA(t, gunApp)
	otherPEM, _, _ := testCA(t, gunApp)
	tests := []struct {
		name string
		cas  map[string]string
		want bool
	}{
		{"chains to pinned CA", map[string]string{"localhost:5000/": caPEM}, true},
		{"other CA", map[string]string{"localhost:5000/": otherPEM}, false},
		{"longest prefix wins", map[string]string{"localhost:5000/": caPEM, "localhost:5000/test/": otherPEM}, false},
		{"longest prefix wins (2)", map[string]string{"localhost:5000/": otherPEM, "localhost:5000/test/": caPEM}, true},
		{"bundle with both", map[string]string{"localhost": otherPEM + caPEM}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			check, err := TrustPinning{CA: tc.cas}.pinChecker(gunApp, true, fixtureNow)
			if err != nil {
				t.Fatal(err)
			}
			if got := check(leaf, nil); got != tc.want {
				t.Fatalf("check = %v, want %v", got, tc.want)
			}
		})
	}
	// The chain is checked at the injected time, not the wall clock.
	check, _ := TrustPinning{CA: map[string]string{"": caPEM}}.pinChecker(gunApp, true, fixtureNow.AddDate(3, 0, 0))
	if check(leaf, nil) {
		t.Fatal("expired leaf accepted")
	}
	// An unusable CA bundle is a pin failure, never a silent TOFU.
	if _, err := (TrustPinning{CA: map[string]string{"": "garbage"}}).pinChecker(gunApp, true, fixtureNow); !errors.Is(err, ErrPinMismatch) {
		t.Fatalf("garbage CA: err = %v", err)
	}
	if _, err := NewClient(Config{ServerURL: "http://x", Pinning: TrustPinning{CA: map[string]string{"": "garbage"}}}); err == nil {
		t.Fatal("NewClient accepted a garbage CA bundle")
	}
}
