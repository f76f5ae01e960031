package resolver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"os"
	"testing"
	"time"
)

func TestMatchCN(t *testing.T) {
	tests := []struct {
		cn, gun string
		want    bool
	}{
		{"docker.io/library/alpine", "docker.io/library/alpine", true},
		{"docker.io/library/alpine", "docker.io/library/alpine2", false},
		{"docker.io/library/*", "docker.io/library/alpine", true},
		{"docker.io/library/**", "docker.io/library/alpine", true},
		{"docker.io/lib*", "docker.io/library/alpine", true},
		{"docker.io/team/*", "docker.io/library/alpine", false},
		{"*", "anything", true},
		{"", "x", false},
	}
	for _, tc := range tests {
		if got := matchCN(tc.cn, tc.gun); got != tc.want {
			t.Errorf("matchCN(%q, %q) = %v", tc.cn, tc.gun, got)
		}
	}
}

func selfSigned(t *testing.T, key any, pub any, sigAlg x509.SignatureAlgorithm, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: gunApp},
		NotBefore: notBefore, NotAfter: notAfter, SignatureAlgorithm: sigAlg}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestValidateCertificate(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaShort, _ := rsa.GenerateKey(rand.Reader, 1024)
	now := fixtureNow
	good := selfSigned(t, ec, &ec.PublicKey, x509.ECDSAWithSHA256, now.Add(-time.Hour), now.AddDate(1, 0, 0))
	short := selfSigned(t, rsaShort, &rsaShort.PublicKey, x509.SHA256WithRSA, now.Add(-time.Hour), now.AddDate(1, 0, 0))
	tests := []struct {
		name        string
		c           *x509.Certificate
		checkExpiry bool
		at          time.Time
		err         bool
		expired     bool
	}{
		{"valid", good, true, now, false, false},
		{"expired", good, true, now.AddDate(2, 0, 0), true, true},
		{"expired but not checked", good, false, now.AddDate(2, 0, 0), false, false},
		{"not yet valid beyond a day", good, true, now.AddDate(0, 0, -2), true, true},
		{"not yet valid within a day", good, true, now.Add(-2 * time.Hour), false, false},
		{"short RSA", short, false, now, true, false},
	}
	// A SHA-1 signed certificate is refused whatever its dates.
	sha1 := *good
	sha1.SignatureAlgorithm = x509.ECDSAWithSHA1
	tests = append(tests, struct {
		name        string
		c           *x509.Certificate
		checkExpiry bool
		at          time.Time
		err         bool
		expired     bool
	}{"sha1", &sha1, false, now, true, false})
	inverted := *good
	inverted.NotBefore, inverted.NotAfter = good.NotAfter, good.NotBefore
	tests = append(tests, struct {
		name        string
		c           *x509.Certificate
		checkExpiry bool
		at          time.Time
		err         bool
		expired     bool
	}{"inverted window", &inverted, false, now, true, false})
	for _, tc := range tests {
		err := validateCertificate(tc.c, tc.checkExpiry, tc.at)
		if (err != nil) != tc.err || errors.Is(err, errCertExpired) != tc.expired {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
}

func TestValidateRootFixtures(t *testing.T) {
	raw, _ := os.ReadFile(dirApp + "/root.json")
	tests := []struct {
		name string
		rc   rootCheck
		err  error
	}{
		{"tofu", rootCheck{gun: gunApp, now: fixtureNow}, nil},
		{"wrong GUN", rootCheck{gun: "localhost:5000/test/other", now: fixtureNow}, ErrInvalid},
		{"certificates expired", rootCheck{gun: gunApp, now: time.Date(2037, 1, 1, 0, 0, 0, 0, time.UTC)}, ErrExpired},
		{"certificates not yet valid", rootCheck{gun: gunApp, now: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)}, ErrExpired},
	}
	for _, tc := range tests {
		r, err := validateRoot(raw, tc.rc)
		if tc.err == nil && (err != nil || r.signed.Version != 5) || tc.err != nil && !errors.Is(err, tc.err) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.err)
		}
	}
	// v5 is not signed by a threshold of v2's keys: a rotation failure, not a plain one.
	v2raw, _ := os.ReadFile(dirApp + "/2.root.json")
	v2, err := validateRoot(v2raw, rootCheck{gun: gunApp, now: fixtureNow})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := validateRoot(raw, rootCheck{gun: gunApp, now: fixtureNow, prev: v2}); !errors.Is(err, errRotation) || !errors.Is(err, ErrThreshold) {
		t.Fatalf("v5 after v2: err = %v", err)
	}
	v3raw, _ := os.ReadFile(dirApp + "/3.root.json")
	if _, err := validateRoot(v3raw, rootCheck{gun: gunApp, now: fixtureNow, prev: v2}); err != nil {
		t.Fatalf("v3 after v2: %v", err)
	}
}
