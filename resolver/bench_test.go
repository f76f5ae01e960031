package resolver

import (
	"context"
	"os"
	"testing"

	"github.com/trustgate/trustgate/internal/tuftest"
)

// The verification hot path on real notary-produced metadata (testdata/notary-v1): what a cold
// resolution and every trust_ttl re-check cost in CPU, separately from the network. `make bench`
// runs these with a CPU profile; they assert nothing about speed.

func readFixture(b *testing.B, path string) []byte {
	b.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

var benchFiles = []struct{ name, path string }{
	{"root-rsa-x509", dirAlpine + "/root.json"},
	{"root-ecdsa-x509", dirApp + "/root.json"},
	{"targets", dirAlpine + "/targets.json"},
	{"snapshot", dirAlpine + "/snapshot.json"},
	{"timestamp", dirAlpine + "/timestamp.json"},
	{"delegation", dirApp + "/targets/releases.json"},
}

// BenchmarkCanonicalSigned: decoding the signed section into generic maps and re-encoding it
// canonically, the bytes every signature is checked over.
func BenchmarkCanonicalSigned(b *testing.B) {
	for _, f := range benchFiles {
		b.Run(f.name, func(b *testing.B) {
			raw := readFixture(b, f.path)
			env, err := parseEnvelope(raw)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := canonicalSigned(env.Signed); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify: parse + canonical form + signature check of one file against its keys, as an
// update does for each role (root: certificate checks and pinning too).
func BenchmarkVerify(b *testing.B) {
	roots := map[string]*trustedRoot{}
	for _, r := range []struct{ name, gun, path string }{
		{"root-rsa-x509/rsapss", gunAlpine, dirAlpine + "/root.json"},
		{"root-ecdsa-x509/ecdsa", gunApp, dirApp + "/root.json"},
	} {
		raw := readFixture(b, r.path)
		rc := rootCheck{gun: r.gun, now: fixtureNow}
		tr, err := validateRoot(raw, rc)
		if err != nil {
			b.Fatalf("%s: %v", r.path, err)
		}
		roots[r.gun] = tr
		b.Run(r.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := validateRoot(raw, rc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, f := range []struct{ name, gun, path, role string }{
		{"timestamp/ecdsa", gunAlpine, dirAlpine + "/timestamp.json", roleTimestamp},
		{"snapshot/ecdsa", gunAlpine, dirAlpine + "/snapshot.json", roleSnapshot},
		{"targets/ecdsa", gunAlpine, dirAlpine + "/targets.json", roleTargets},
		{"timestamp/eddsa", gunApp, dirApp + "/timestamp.json", roleTimestamp},
		{"snapshot/eddsa", gunApp, dirApp + "/snapshot.json", roleSnapshot},
	} {
		b.Run(f.name, func(b *testing.B) {
			raw := readFixture(b, f.path)
			ks := roots[f.gun].keySet(f.role)
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				env, err := parseEnvelope(raw)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := verifySignatures(env, ks); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUpdate: a whole Client.Update over loopback HTTP against a notary-like server holding
// metadata from the test signer. cold = a new client (root, timestamp, snapshot, targets fetched
// and verified); warm = the trust_ttl re-check of an unchanged repository (timestamp only).
func BenchmarkUpdate(b *testing.B) {
	const gun = "docker.io/library/bench"
	repo := tuftest.NewRepo(b, gun)
	repo.AddTargetDigest("targets", "v1", "sha256:"+sha256Hex([]byte("manifest")), 528)
	srv := tuftest.Serve(b, gun, repo.Publish())
	ctx := context.Background()
	newClient := func() *Client {
		c, err := NewClient(Config{ServerURL: srv.URL})
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := newClient().Update(ctx, gun); err != nil {
				b.Fatal(err)
			}
		}
	})
	// cold with a trust_dir: every verified role (and its floor) is written, fsynced, on the
	// way; this is the price of floors that survive a crash mid-update.
	b.Run("cold-trust-dir", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, err := NewClient(Config{ServerURL: srv.URL, TrustDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Update(ctx, gun); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("warm", func(b *testing.B) {
		c := newClient()
		if _, err := c.Update(ctx, gun); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Update(ctx, gun); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("lookup", func(b *testing.B) {
		st, err := newClient().Update(ctx, gun)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := st.Lookup("v1", DefaultRoles); err != nil {
				b.Fatal(err)
			}
		}
	})
}
