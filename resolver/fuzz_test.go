package resolver

import (
	"crypto/sha256"
	"os"
	"testing"
)

// Seeds beyond the committed corpus in testdata/fuzz: the fixtures themselves.
func fixtureSeeds(f *testing.F) [][]byte {
	var out [][]byte
	for _, p := range []string{
		dirApp + "/root.json", dirApp + "/2.root.json", dirApp + "/timestamp.json", dirApp + "/snapshot.json",
		dirApp + "/targets.json", dirApp + "/targets/releases.json", dirAlpine + "/root.json",
	} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func FuzzParseSigned(f *testing.F) {
	for _, b := range fixtureSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		env, err := parseEnvelope(raw)
		if err != nil {
			return
		}
		_, _ = canonicalSigned(env.Signed)
		_, _ = parseRoot(env)
		_, _ = parseTimestamp(env)
		_, _ = parseSnapshot(env)
		if tg, err := parseTargets(env, "targets"); err == nil {
			for _, d := range tg.Delegations.Roles {
				_ = restrictPaths([]string{""}, d.Paths)
			}
		}
		_, _ = parseTargets(env, "targets/releases")
		_ = checkHashes(raw, "x", hashes{"sha256": raw, "sha512": raw, "md5": raw})
	})
}

func FuzzVerifyRoot(f *testing.F) {
	seeds := fixtureSeeds(f)
	for _, b := range seeds {
		f.Add(b)
	}
	prev, err := validateRoot(seeds[1], rootCheck{gun: gunApp, now: fixtureNow})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, rc := range []rootCheck{
			{gun: gunApp, now: fixtureNow},
			{gun: gunApp, now: fixtureNow, prev: prev},
			{gun: gunApp, now: fixtureNow, pin: &TrustPinning{Certs: map[string][]string{"localhost:5000/*": {"x"}}}},
		} {
			r, err := validateRoot(raw, rc)
			if err != nil {
				continue
			}
			// A root that validated is usable without further checks.
			for _, role := range []string{roleRoot, roleTargets, roleSnapshot, roleTimestamp} {
				_ = r.keySet(role)
			}
			if len(r.signers) < r.signed.Roles[roleRoot].Threshold {
				t.Fatalf("accepted root with %d signers below threshold", len(r.signers))
			}
		}
	})
}

func FuzzKeyParse(f *testing.F) {
	for _, b := range fixtureSeeds(f) {
		env, err := parseEnvelope(b)
		if err != nil {
			continue
		}
		var body struct {
			Keys map[string]tufKey `json:"keys"`
		}
		_ = decodeSigned(env, "x", &body)
		for _, k := range body.Keys {
			f.Add(k.Type, k.Value.Public, []byte("sig"))
		}
	}
	f.Fuzz(func(t *testing.T, keyType string, public, sig []byte) {
		k := tufKey{Type: keyType}
		k.Value.Public = public
		_ = k.id()
		_, _ = cryptoKey(k)
		if certs, err := parseCertBundle(public); err == nil {
			_ = validateCertificate(certs[0], true, fixtureNow)
			_, _ = certBundleKey(certs[0], certs[1:])
		}
		_ = verifySignature(k, "eddsa", sig, []byte("msg"))
		// Ed25519 is left out of the forgery check: small-order public keys (e.g. all zeros)
		// verify trivial signatures in Go's (and so notary's) ed25519. Such a key can only
		// sit in metadata its parent's signers chose, so it is their key to weaken.
		for _, m := range []string{"ecdsa", "rsapss", "rsapkcs1v15"} {
			if verifySignature(k, m, sig, []byte("msg")) == nil {
				t.Fatalf("%s signature %x verified over a message it was not made for", m, sig)
			}
		}
	})
}

// verifySignature checks sig over the whole message msg (see verifyMessage).
func verifySignature(k tufKey, method string, sig, msg []byte) error {
	return verifyMessage(k, method, sig, message{full: msg, digest: sha256.Sum256(msg)})
}
