package resolver

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Every key in every fixture file is stored under the ID notary computed for it.
func TestKeyIDsMatchFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/notary-v1/*/*.json")
	more, _ := filepath.Glob("testdata/notary-v1/*/targets/*.json")
	n := 0
	for _, f := range append(files, more...) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		env, err := parseEnvelope(raw)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var keys map[string]tufKey
		var body struct {
			Keys        map[string]tufKey `json:"keys"`
			Delegations struct {
				Keys map[string]tufKey `json:"keys"`
			} `json:"delegations"`
		}
		if err := decodeSigned(env, "x", &body); err != nil {
			t.Fatal(err)
		}
		keys = body.Keys
		if keys == nil {
			keys = body.Delegations.Keys
		}
		for id, k := range keys {
			n++
			if got := k.id(); got != id {
				t.Errorf("%s: key %s (%s) computes to %s", f, id, k.Type, got)
			}
			if _, err := cryptoKey(k); err != nil {
				t.Errorf("%s: key %s: %v", f, id, err)
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d keys checked", n)
	}
}

func TestKeyIDKnownValue(t *testing.T) {
	// The explicit "private":null matters: this is the ID notary shows for this
	// (timestamp) key in the fixture root.
	raw, _ := os.ReadFile(dirApp + "/root.json")
	env, _ := parseEnvelope(raw)
	r, err := parseRoot(env)
	if err != nil {
		t.Fatal(err)
	}
	const id = "f3d227021c226d3a90a9938e9b747b389dfad3573eb98fe1147258700d463043"
	k := r.Keys[id]
	if k.Type != keyED25519 || keyID(k.Type, k.Value.Public) != id {
		t.Fatalf("key %s: type %s id %s", id, k.Type, keyID(k.Type, k.Value.Public))
	}
	if keyID("ED25519", k.Value.Public) == id {
		t.Fatal("key type is part of the ID")
	}
}

func TestCryptoKeyRejects(t *testing.T) {
	tests := []tufKey{
		{Type: keyED25519},
		{Type: keyECDSA},
		{Type: keyRSAx509},
		{Type: "dsa"},
	}
	tests[0].Value.Public = make([]byte, 31)
	tests[1].Value.Public = []byte("not DER")
	tests[2].Value.Public = []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	for _, k := range tests {
		if _, err := cryptoKey(k); err == nil {
			t.Errorf("%s key accepted", k.Type)
		}
	}
}

func TestKeyIDNullPublic(t *testing.T) {
	// {"keytype":"ed25519","keyval":{"private":null,"public":null}} vs "public":"".
	if keyID("ed25519", nil) == keyID("ed25519", []byte{}) {
		t.Fatal("null and empty public keys share an ID")
	}
	var k tufKey
	if err := json.Unmarshal([]byte(`{"keytype":"ed25519","keyval":{"public":""}}`), &k); err != nil || k.Value.Public == nil {
		t.Fatalf("empty public decoded as %v (%v)", k.Value.Public, err)
	}
}
