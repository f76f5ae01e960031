package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with the given serial to cert and key.
func writeCert(t *testing.T, cert, key string, serial int64) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "trustgate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReloadRenewsCertificate: a reload serves the certificate now in tls.cert_file to new
// connections, and a certificate that does not load is rejected naming the key, the old one
// still served.
func TestReloadRenewsCertificate(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCert(t, cert, key, 1)
	load := func() *Config {
		cfg, err := parseConfig([]byte(minimalConfig+"listen: 127.0.0.1:0\ntrust_dir: \":memory:\"\n"+
			"tls: {cert_file: "+cert+", key_file: "+key+"}\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	g := startServe(t, load())
	serial := func() int64 {
		t.Helper()
		c, err := tls.Dial("tcp", strings.TrimPrefix(g.url, "http://"), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reads the served certificate
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if s := serial(); s != 1 {
		t.Fatalf("serving certificate %d, want 1", s)
	}
	writeCert(t, cert, key, 2)
	if out := g.reloadWith(t, load(), nil); !strings.Contains(out, "configuration reloaded") {
		t.Fatalf("reload: %s", out)
	}
	if s := serial(); s != 2 {
		t.Errorf("after reload serving certificate %d, want 2", s)
	}
	if err := os.WriteFile(key, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := g.reloadWith(t, load(), nil); !strings.Contains(out, "reload rejected") || !strings.Contains(out, "tls.cert_file, tls.key_file") {
		t.Errorf("a broken key file: %s", out)
	}
	if s := serial(); s != 2 {
		t.Errorf("after a rejected reload serving certificate %d, want 2", s)
	}
}
