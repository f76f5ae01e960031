package resolver

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"runtime"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
)

// testKey is a generated key pair able to sign the way notary's signers do.
type testKey struct {
	pub  tufKey
	sign func(msg []byte) []byte
}

func newEd25519(t *testing.T) testKey {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	k := tufKey{Type: keyED25519}
	k.Value.Public = pub
	return testKey{k, func(m []byte) []byte { return ed25519.Sign(priv, m) }}
}

func newECDSA(t *testing.T, curve elliptic.Curve, der bool) testKey {
	priv, _ := ecdsa.GenerateKey(curve, rand.Reader)
	spki, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	k := tufKey{Type: keyECDSA}
	k.Value.Public = spki
	return testKey{k, func(m []byte) []byte {
		d := sha256.Sum256(m)
		if der {
			s, _ := ecdsa.SignASN1(rand.Reader, priv, d[:])
			return s
		}
		r, s, _ := ecdsa.Sign(rand.Reader, priv, d[:])
		size := (curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out
	}}
}

func newRSA(t *testing.T, bits int, pss bool) testKey {
	priv, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	k := tufKey{Type: keyRSA}
	k.Value.Public = spki
	return testKey{k, func(m []byte) []byte {
		d := sha256.Sum256(m)
		if pss {
			s, _ := rsa.SignPSS(rand.Reader, priv, crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: 32})
			return s
		}
		s, _ := rsa.SignPKCS1v15(rand.Reader, priv, crypto.SHA256, d[:])
		return s
	}}
}

// signEnvelope signs signed (canonicalised first, as notary does) with keys using method.
func signEnvelope(t *testing.T, signed any, method string, keys ...testKey) *envelope {
	t.Helper()
	raw, err := cjson.EncodeCanonical(signed)
	if err != nil {
		t.Fatal(err)
	}
	env := &envelope{Signed: raw}
	for _, k := range keys {
		env.Signatures = append(env.Signatures, signature{KeyID: k.pub.id(), Method: method, Sig: k.sign(raw)})
	}
	return env
}

func ks(threshold int, keys ...testKey) keySet {
	s := keySet{name: "test", keys: map[string]tufKey{}, threshold: threshold}
	for _, k := range keys {
		s.keys[k.pub.id()] = k.pub
	}
	return s
}

func TestSignatureMethods(t *testing.T) {
	body := map[string]any{"_type": "Targets", "version": 1, "x": "<&>\u2028é"}
	ed := newEd25519(t)
	p256 := newECDSA(t, elliptic.P256(), false)
	p256der := newECDSA(t, elliptic.P256(), true)
	p384 := newECDSA(t, elliptic.P384(), false)
	pss := newRSA(t, 2048, true)
	pkcs := newRSA(t, 2048, false)
	short := newRSA(t, 1024, true)
	shortPKCS := newRSA(t, 1024, false)
	tests := []struct {
		name   string
		key    testKey
		method string
		ok     bool
	}{
		{"eddsa", ed, "eddsa", true},
		{"eddsa upper-case method", ed, "EdDSA", true},
		{"ecdsa raw r||s", p256, "ecdsa", true},
		{"ecdsa P-384 raw", p384, "ecdsa", true},
		{"ecdsa DER refused", p256der, "ecdsa", false},
		{"rsapss", pss, "rsapss", true},
		{"rsapkcs1v15", pkcs, "rsapkcs1v15", true},
		{"pss sig as pkcs1v15", pss, "rsapkcs1v15", false},
		{"pkcs1v15 sig as pss", pkcs, "rsapss", false},
		{"short rsa pss", short, "rsapss", false},
		{"short rsa pkcs1v15", shortPKCS, "rsapkcs1v15", false},
		{"eddsa method, ecdsa key", p256, "eddsa", false},
		{"ecdsa method, ed25519 key", ed, "ecdsa", false},
		{"unknown method", ed, "pycrypto-pkcs#1 pss", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := signEnvelope(t, body, tc.method, tc.key)
			raw, _ := json.Marshal(env)
			env, err := parseEnvelope(raw) // exercise method lower-casing
			if err != nil {
				t.Fatal(err)
			}
			ids, err := verifySignatures(env, ks(1, tc.key))
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (len(ids) != 1 || ids[0] != tc.key.pub.id()) {
				t.Fatalf("signers %v", ids)
			}
			if !tc.ok && !errors.Is(err, ErrThreshold) {
				t.Fatalf("err = %v, want ErrThreshold", err)
			}
		})
	}
}

func TestThresholdCountsDistinctKeys(t *testing.T) {
	a, b := newEd25519(t), newEd25519(t)
	body := map[string]any{"v": 1}
	dup := signEnvelope(t, body, "eddsa", a, a, a)
	if _, err := verifySignatures(dup, ks(2, a, b)); !errors.Is(err, ErrThreshold) {
		t.Fatalf("duplicate signatures met threshold 2: %v", err)
	}
	both := signEnvelope(t, body, "eddsa", a, b)
	if ids, err := verifySignatures(both, ks(2, a, b)); err != nil || len(ids) != 2 {
		t.Fatalf("two keys: %v %v", ids, err)
	}
	// Signatures by keys outside the role do not count.
	c := newEd25519(t)
	if _, err := verifySignatures(signEnvelope(t, body, "eddsa", a, c), ks(2, a, b)); !errors.Is(err, ErrThreshold) {
		t.Fatalf("outsider counted: %v", err)
	}
	// No signatures at all.
	if _, err := verifySignatures(&envelope{Signed: []byte(`{}`)}, ks(1, a)); !errors.Is(err, errNoSignatures) {
		t.Fatalf("no signatures: %v", err)
	}
	// A signature whose keyid names a key stored under a different ID is a hard error.
	set := ks(1, a)
	set.keys["deadbeef"] = b.pub
	env := signEnvelope(t, body, "eddsa", b)
	env.Signatures[0].KeyID = "deadbeef"
	if _, err := verifySignatures(env, set); !errors.Is(err, ErrInvalid) {
		t.Fatalf("mismatched key ID: %v", err)
	}
	// Tampering with the signed bytes invalidates.
	env = signEnvelope(t, body, "eddsa", a)
	env.Signed = []byte(`{"v":2}`)
	if _, err := verifySignatures(env, ks(1, a)); !errors.Is(err, ErrThreshold) {
		t.Fatalf("tampered: %v", err)
	}
	// Whitespace does not matter to signatures (they are over the canonical form).
	env = signEnvelope(t, body, "eddsa", a)
	env.Signed = []byte(" { \"v\" : 1 } ")
	if _, err := verifySignatures(env, ks(1, a)); err != nil {
		t.Fatalf("re-spaced: %v", err)
	}
}

func TestCanonicalJSON(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{`{"b":1,"a":[true,false,null]}`, `{"a":[true,false,null],"b":1}`, false},
		{`{"s":"<&>"}`, `{"s":"<&>"}`, false},
		{`{"s":"\u2028\u0001é\\\""}`, "{\"s\":\"\u2028\u0001é\\\\\\\"\"}", false},
		{`{"n":1.0}`, `{"n":1}`, false},
		{`{"n":1e3}`, `{"n":1000}`, false},
		{`{"n":1.5}`, ``, true},
		{`{"a":{"z":1,"y":{"b":2,"a":1}}}`, `{"a":{"y":{"a":1,"b":2},"z":1}}`, false},
		{`not json`, ``, true},
	}
	for _, tc := range tests {
		got, err := canonicalSigned([]byte(tc.in))
		if tc.err != (err != nil) || !tc.err && string(got) != tc.want {
			t.Errorf("canonical(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	// Every fixture's signed section is already canonical, as notary produced it.
	for _, f := range []string{dirApp + "/root.json", dirApp + "/targets.json", dirAlpine + "/root.json"} {
		raw, _ := os.ReadFile(f)
		env, _ := parseEnvelope(raw)
		got, err := canonicalSigned(env.Signed)
		if err != nil || string(got) != string(env.Signed) {
			t.Errorf("%s: signed section is not reproduced canonically (%v)", f, err)
		}
	}
}

func TestVerifyECDSAWrongLength(t *testing.T) {
	k := newECDSA(t, elliptic.P256(), false)
	pub, _ := cryptoKey(k.pub)
	sig := k.sign([]byte("m"))
	d := sha256.Sum256([]byte("m"))
	if verifyECDSA(pub, sig, d[:]) != nil {
		t.Fatal("good signature refused")
	}
	for _, s := range [][]byte{sig[:63], append(sig, 0), append([]byte{0}, sig...)} {
		if verifyECDSA(pub, s, d[:]) == nil {
			t.Fatalf("signature of length %d accepted", len(s))
		}
	}
	zero := make([]byte, 64)
	if verifyECDSA(pub, zero, d[:]) == nil {
		t.Fatal("zero signature accepted")
	}
	_ = big.NewInt
}

// TestVerifySignaturesMemory pins what checking an ECDSA signature over a large signed section
// holds besides the section itself: the canonical form is hashed as it is produced, never held
// whole (nor the section copied), so a targets file of many tags is in memory once.
func TestVerifySignaturesMemory(t *testing.T) {
	targets := map[string]any{}
	for i := range 20_000 {
		targets[fmt.Sprintf("tag-%d", i)] = map[string]any{
			"hashes": map[string]any{"sha256": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}, "length": i,
		}
	}
	body := map[string]any{"_type": "Targets", "version": 1, "expires": "2030-01-01T00:00:00Z", "targets": targets}
	for _, tc := range []struct {
		name  string
		key   testKey
		sigOK string
	}{
		{"ecdsa", newECDSA(t, elliptic.P256(), false), "ecdsa"},
		{"rsapss", newRSA(t, 2048, true), "rsapss"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := signEnvelope(t, body, tc.sigOK, tc.key)
			wire, err := json.Marshal(env)
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			env, err = parseEnvelope(wire)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := verifySignatures(env, ks(1, tc.key)); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			// The bracket index (8 bytes per object) and a hashing buffer; a copy of the section
			// or its canonical form would each be len(wire) on their own.
			t.Logf("%d bytes: %d allocated", len(wire), after.TotalAlloc-before.TotalAlloc)
			if got := after.TotalAlloc - before.TotalAlloc; got > uint64(len(wire))/2 {
				t.Errorf("parsing and verifying %d bytes allocated %d", len(wire), got)
			}
		})
	}
}
