package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

// notationSign signs p with the notation CLI's key name (JWS unless format is "cose").
func notationSign(t *testing.T, s *signer, reg *peers.Registry, keyName, format string, p peers.Pushed) {
	t.Helper()
	args := []string{"sign", "--insecure-registry", "--key", keyName}
	if format != "" {
		args = append(args, "--signature-format", format)
	}
	s.run(t, append(args, reg.Host+"/"+p.Repo+"@"+p.Digest)...)
}

// TestNotation is issue #9 with notation v1.3.2: JWS and COSE envelopes from `notation cert
// generate-test` keys, found through the tag schema and verified in-process under a trust policy
// document and the CLI's trust store directory.
func TestNotation(t *testing.T) {
	w := newWorld(t)
	ns := newSigner(t, "notation")
	ns.run(t, "cert", "generate-test", "--default", "demo.io")
	ns.run(t, "cert", "generate-test", "other.io") // a second CA the policy does not trust
	store := filepath.Join(ns.dir, ".config", "notation", "truststore")
	if _, err := os.Stat(filepath.Join(store, "x509", "ca", "demo.io")); err != nil {
		t.Fatalf("notation trust store not where expected: %v", err)
	}
	policyDoc := map[string]any{"version": "1.0", "trustPolicies": []any{map[string]any{
		"name":                  "trustgate-e2e",
		"registryScopes":        []string{"docker.io/sig/app", "docker.io/sig/rel"},
		"signatureVerification": map[string]string{"level": "strict"},
		"trustStores":           []string{"ca:demo.io"},
		"trustedIdentities":     []string{"*"},
	}}}
	b, _ := json.Marshal(policyDoc)
	policyFile := filepath.Join(t.TempDir(), "trustpolicy.json")
	must(t, os.WriteFile(policyFile, b, 0o644))

	const repo = "sig/app"
	jws := w.push(t, repo, "jws")
	notationSign(t, ns, w.reg, "demo.io", "", jws)
	cose := w.push(t, repo, "cose")
	notationSign(t, ns, w.reg, "demo.io", "cose", cose)
	unsigned := w.push(t, repo, "unsigned")
	wrongCA := w.push(t, repo, "wrong-ca")
	notationSign(t, ns, w.reg, "other.io", "", wrongCA)
	outScope := w.push(t, "sig/other", "jws") // signed by the trusted key, outside the trust policy's scopes
	notationSign(t, ns, w.reg, "demo.io", "", outScope)
	tampered := w.push(t, repo, "tampered")
	notationSign(t, ns, w.reg, "demo.io", "cose", tampered)
	plain := w.push(t, "plain/app", "signed")
	notationSign(t, ns, w.reg, "demo.io", "", plain)

	// tampered: the signature manifest's envelope replaced by another image's envelope.
	var idx struct {
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
	}
	must(t, json.Unmarshal(rawManifest(t, w.reg, repo, indexTag(tampered.Digest)), &idx))
	var other struct {
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
	}
	must(t, json.Unmarshal(rawManifest(t, w.reg, repo, indexTag(cose.Digest)), &other))
	var tm, om map[string]any
	must(t, json.Unmarshal(rawManifest(t, w.reg, repo, idx.Manifests[0].Digest), &tm))
	must(t, json.Unmarshal(rawManifest(t, w.reg, repo, other.Manifests[0].Digest), &om))
	tm["layers"] = om["layers"] // cose's valid envelope, under tampered's subject
	b, _ = json.Marshal(tm)
	d, err := peers.PutManifest(t.Context(), w.reg.URL, repo, "", "application/vnd.oci.image.manifest.v1+json", b)
	must(t, err)
	ib, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
		"manifests": []any{map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d,
			"size": len(b), "artifactType": "application/vnd.cncf.notary.signature"}}})
	putRaw(t, w.reg, repo, indexTag(tampered.Digest), "application/vnd.oci.image.index.v1+json", ib)

	verifiers := "{notation: {trust_policy: " + q(policyFile) + ", trust_store: " + q(store) + "}}"
	g := w.gate(t, peers.GateConfig{
		TrustTTL: time.Second,
		Rules:    []peers.GateRule{{Match: "docker.io/sig/**", Mode: "enforce", Verifiers: verifiers}},
	})

	t.Run("JWS signature is served", func(t *testing.T) {
		expectServed(t, g, repo, "jws", jws.Digest, "notation")
		r := getManifest(t, g, repo, "jws")
		if s := r.header.Get("X-Trustgate-Signer"); !strings.Contains(s, "demo.io") {
			t.Errorf("X-Trustgate-Signer = %q", s)
		}
	})
	t.Run("COSE signature is served", func(t *testing.T) {
		expectServed(t, g, repo, "cose", cose.Digest, "notation")
	})
	t.Run("signed digest is served by digest", func(t *testing.T) {
		if r := getManifest(t, g, repo, cose.Digest); r.code != http.StatusOK {
			t.Errorf("GET by digest = %d %s", r.code, r.body)
		}
	})
	for _, c := range []struct{ repo, tag, digest, why, reason string }{
		{repo, "unsigned", unsigned.Digest, "no signature", "no Notation signature of"},
		{repo, "wrong-ca", wrongCA.Digest, "signed under a CA the policy does not trust", "verifies"},
		{repo, "tampered", tampered.Digest, "another image's envelope", "verifies"},
		{"sig/other", "jws", outScope.Digest, "repository outside the trust policy's scopes", "verifies"},
	} {
		t.Run("refused: "+c.why, func(t *testing.T) {
			expectRefused(t, g, c.repo, c.tag, http.StatusNotFound, c.digest)
			expectReason(t, g, gun(c.repo), c.tag, "refuse", c.reason)
		})
	}
	t.Run("repository outside the rule: its own rule's mode", func(t *testing.T) {
		expectRefused(t, g, "plain/app", "signed", http.StatusNotFound, plain.Digest)
	})
	t.Run("tag moved to an older signed digest is refused (signed signing time)", func(t *testing.T) {
		// Notation's signing time is a signed attribute, so the rollback is caught even for a
		// digest trustgate never served: r1 is signed first, r2 later, and only r2 is pulled.
		r1 := w.push(t, "sig/rel", "v1")
		notationSign(t, ns, w.reg, "demo.io", "", r1)
		time.Sleep(1100 * time.Millisecond) // signing times have second resolution
		r2 := w.push(t, "sig/rel", "rel")
		notationSign(t, ns, w.reg, "demo.io", "cose", r2)
		expectServed(t, g, "sig/rel", "rel", r2.Digest, "notation")
		if r := peers.Crane(t, "tag", w.reg.Host+"/sig/rel@"+r1.Digest, "rel"); r.Err != nil {
			t.Fatal(r.Err)
		}
		eventually(t, 10*time.Second, "rollback to r1 refused", func() (bool, string) {
			r := getManifest(t, g, "sig/rel", "rel")
			return r.code == http.StatusServiceUnavailable, string(r.body)
		})
		expectReason(t, g, gun("sig/rel"), "rel", "error", "signer")
	})
}

// TestVerifiersCombined is a rule naming several verifiers: require any (Docker Content Trust and
// cosign side by side in one repository, as during a migration) and require all (cosign and
// Notation must both sign the digest).
func TestVerifiersCombined(t *testing.T) {
	w := newWorld(t)
	cs := newSigner(t, "cosign")
	cs.run(t, "generate-key-pair")
	key, pub := filepath.Join(cs.dir, "cosign.key"), filepath.Join(cs.dir, "cosign.pub")
	ns := newSigner(t, "notation")
	ns.run(t, "cert", "generate-test", "--default", "demo.io")
	store := filepath.Join(ns.dir, ".config", "notation", "truststore")
	b, _ := json.Marshal(map[string]any{"version": "1.0", "trustPolicies": []any{map[string]any{
		"name": "all", "registryScopes": []string{"*"}, "signatureVerification": map[string]string{"level": "strict"},
		"trustStores": []string{"ca:demo.io"}, "trustedIdentities": []string{"*"}}}})
	policyFile := filepath.Join(t.TempDir(), "trustpolicy.json")
	must(t, os.WriteFile(policyFile, b, 0o644))

	dct := w.pushSigned(t, "mix/app", "dct")
	cos := w.push(t, "mix/app", "cosign")
	cosignSign(t, cs, w.reg.Host, key, cos)
	none := w.push(t, "mix/app", "none")
	both := w.push(t, "both/app", "both")
	cosignSign(t, cs, w.reg.Host, key, both)
	notationSign(t, ns, w.reg, "demo.io", "", both)
	half := w.push(t, "both/app", "half")
	cosignSign(t, cs, w.reg.Host, key, half)

	g := w.gate(t, peers.GateConfig{Rules: []peers.GateRule{
		{Match: "docker.io/mix/**", Mode: "enforce", Verifiers: "{require: any, notary: {}, cosign: {keys: [" + q(pub) + "]}}"},
		{Match: "docker.io/both/**", Mode: "enforce", Verifiers: "{require: all, cosign: {keys: [" + q(pub) + "]}, notation: {trust_policy: " +
			q(policyFile) + ", trust_store: " + q(store) + "}}"},
	}})
	t.Run("any: a DCT-signed tag", func(t *testing.T) {
		expectServed(t, g, "mix/app", "dct", dct.Digest, "notary")
		if r := getManifest(t, g, "mix/app", "dct"); r.header.Get("X-Trustgate-Role") != "targets" {
			t.Errorf("X-Trustgate-Role = %q", r.header.Get("X-Trustgate-Role"))
		}
	})
	t.Run("any: a cosign-signed tag in the same repository", func(t *testing.T) {
		expectServed(t, g, "mix/app", "cosign", cos.Digest, "cosign")
	})
	t.Run("any: neither", func(t *testing.T) {
		expectRefused(t, g, "mix/app", "none", http.StatusNotFound, none.Digest)
	})
	t.Run("all: signed by both", func(t *testing.T) {
		expectServed(t, g, "both/app", "both", both.Digest, "cosign+notation")
	})
	t.Run("all: cosign only", func(t *testing.T) {
		expectRefused(t, g, "both/app", "half", http.StatusNotFound, half.Digest)
		expectReason(t, g, gun("both/app"), "half", "refuse", "no Notation signature")
	})
}
