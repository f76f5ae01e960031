package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// verifiersConfig is validConfig with a cosign and a Notation rule; %KEY%, %POLICY% and %STORE%
// are replaced by files the test writes.
const verifiersConfig = validConfig + `    - match: "docker.io/team/**"
      mode: enforce
      verifiers:
        require: all
        cosign: {keys: ["%KEY%"]}
        notation: {trust_policy: "%POLICY%", trust_store: "%STORE%"}
`

func writeVerifierFiles(t *testing.T, level string) (key, policy, store string) {
	t.Helper()
	dir := t.TempDir()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	key = filepath.Join(dir, "cosign.pub")
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	policy = filepath.Join(dir, "trustpolicy.json")
	doc := `{"version":"1.0","trustPolicies":[{"name":"p","registryScopes":["*"],"signatureVerification":{"level":"` + level +
		`"},"trustStores":["ca:demo"],"trustedIdentities":["*"]}]}`
	if err := os.WriteFile(policy, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	store = filepath.Join(dir, "truststore")
	if err := os.MkdirAll(filepath.Join(store, "x509", "ca", "demo"), 0o755); err != nil {
		t.Fatal(err)
	}
	return key, policy, store
}

func render(key, policy, store string) []byte {
	return []byte(strings.NewReplacer("%KEY%", key, "%POLICY%", policy, "%STORE%", store).Replace(verifiersConfig))
}

func TestParseConfigVerifiers(t *testing.T) {
	key, policy, store := writeVerifierFiles(t, "strict")
	cfg, err := parseConfig(render(key, policy, store), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := p.Decide("docker.io/team/app")
	if d.Cosign == nil || d.Notation == nil || d.Notary != nil || d.Require != "all" {
		t.Errorf("decision %+v", d)
	}
	if d := p.Decide("docker.io/library/alpine"); d.Notary == nil || d.Cosign != nil {
		t.Errorf("default rule changed: %+v", d)
	}
}

func TestBuildVerifiersErrorsNameTheKey(t *testing.T) {
	key, policy, store := writeVerifierFiles(t, "strict")
	_, auditPolicy, _ := writeVerifierFiles(t, "audit")
	for _, c := range []struct {
		name, key, policy, store, want string
	}{
		{"missing key file", "/nonexistent/cosign.pub", policy, store, "policy.rules[1] (docker.io/team/**): verifiers.cosign: keys[0] (/nonexistent/cosign.pub)"},
		{"not a key", policy, policy, store, "verifiers.cosign: keys[0] (" + policy + "): not a PEM public key"},
		{"missing trust policy", key, "/nonexistent.json", store, "verifiers.notation: trust_policy"},
		{"audit level", key, auditPolicy, store, `verification level "audit" does not enforce authenticity`},
		{"trust store not a directory", key, policy, policy, "verifiers.notation: trust_store (" + policy + "): not a directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := buildConfigErr(t, render(c.key, c.policy, c.store))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v\nwant %q", err, c.want)
			}
		})
	}
}
