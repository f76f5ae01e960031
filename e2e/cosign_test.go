package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

// cosignSign signs p by key with a cosign CLI, offline (no Rekor, no signing config, no TUF).
func cosignSign(t *testing.T, s *signer, host, key string, p peers.Pushed, extra ...string) {
	t.Helper()
	args := []string{"sign", "--key", key, "--allow-http-registry", "--tlog-upload=false", "-y"}
	if filepath.Base(s.bin) == "cosign" {
		args = append(args, "--use-signing-config=false")
	}
	args = append(args, extra...)
	s.run(t, append(args, host+"/"+p.Repo+"@"+p.Digest)...)
}

// cosignRule is a rule trusting cosign signatures by the given public keys.
func cosignRule(match string, keys ...string) peers.GateRule {
	var qs []string
	for _, k := range keys {
		qs = append(qs, q(k))
	}
	return peers.GateRule{Match: match, Mode: "enforce", Verifiers: "{cosign: {keys: [" + strings.Join(qs, ", ") + "]}}"}
}

// TestCosign is issue #9 with cosign v3.1.3 signing by key, offline: the bundle layout (v3's
// default) and the legacy layout, each found through the tag schema (registry v3.1.2 has no
// referrers API), verified in-process, and the tag binding refusing a rollback.
func TestCosign(t *testing.T) {
	w := newWorld(t)
	cs := newSigner(t, "cosign")
	cs.run(t, "generate-key-pair")
	key, pub := filepath.Join(cs.dir, "cosign.key"), filepath.Join(cs.dir, "cosign.pub")
	other := newSigner(t, "cosign")
	other.run(t, "generate-key-pair")
	badKey := filepath.Join(other.dir, "cosign.key")
	legacy := "--new-bundle-format=false"

	const repo = "team/app"
	bundle := w.push(t, repo, "bundle")
	cosignSign(t, cs, w.reg.Host, key, bundle)
	leg := w.push(t, repo, "legacy")
	cosignSign(t, cs, w.reg.Host, key, leg, legacy)
	unsigned := w.push(t, repo, "unsigned")
	wrongB := w.push(t, repo, "wrong-bundle")
	cosignSign(t, other, w.reg.Host, badKey, wrongB)
	wrongL := w.push(t, repo, "wrong-legacy")
	cosignSign(t, other, w.reg.Host, badKey, wrongL, legacy)
	tampered := w.push(t, repo, "tampered")
	cosignSign(t, cs, w.reg.Host, key, tampered, legacy)
	tamperedB := w.push(t, repo, "tampered-bundle")
	cosignSign(t, cs, w.reg.Host, key, tamperedB)
	transplant := w.push(t, repo, "transplant")
	plain := w.push(t, "plain/app", "signed")
	cosignSign(t, cs, w.reg.Host, key, plain)
	open := w.push(t, "open/app", "unsigned")

	// tampered: one byte of the legacy signature flipped, pushed back under the .sig tag.
	var sigm map[string]any
	must(t, json.Unmarshal(rawManifest(t, w.reg, repo, sigTag(tampered.Digest)), &sigm))
	ann := sigm["layers"].([]any)[0].(map[string]any)["annotations"].(map[string]any)
	raw, err := base64.StdEncoding.DecodeString(ann["dev.cosignproject.cosign/signature"].(string))
	must(t, err)
	raw[len(raw)/2] ^= 1
	ann["dev.cosignproject.cosign/signature"] = base64.StdEncoding.EncodeToString(raw)
	b, _ := json.Marshal(sigm)
	putRaw(t, w.reg, repo, sigTag(tampered.Digest), sigm["mediaType"].(string), b)
	// tampered-bundle: one byte of the DSSE signature flipped in a new bundle blob, the referrer
	// manifest and the sha256-<hex> index rewritten to it (all by digest, as an attacker can).
	var idx map[string]any
	must(t, json.Unmarshal(rawManifest(t, w.reg, repo, indexTag(tamperedB.Digest)), &idx))
	entry := idx["manifests"].([]any)[0].(map[string]any)
	var bm map[string]any
	must(t, json.Unmarshal(rawManifest(t, w.reg, repo, entry["digest"].(string)), &bm))
	layer := bm["layers"].([]any)[0].(map[string]any)
	bundleBytes := get(t, http.MethodGet, w.reg.URL+"/v2/"+repo+"/blobs/"+layer["digest"].(string)).body
	var bj map[string]any
	must(t, json.Unmarshal(bundleBytes, &bj))
	env := bj["dsseEnvelope"].(map[string]any)
	sig0 := env["signatures"].([]any)[0].(map[string]any)
	raw, err = base64.StdEncoding.DecodeString(sig0["sig"].(string))
	must(t, err)
	raw[len(raw)/2] ^= 1
	sig0["sig"] = base64.StdEncoding.EncodeToString(raw)
	nb, _ := json.Marshal(bj)
	blob, err := peers.UploadBlob(t.Context(), w.reg.URL, repo, bytes.NewReader(nb))
	must(t, err)
	layer["digest"], layer["size"] = blob.Digest, blob.Size
	nm, _ := json.Marshal(bm)
	md, err := peers.PutManifest(t.Context(), w.reg.URL, repo, "", "application/vnd.oci.image.manifest.v1+json", nm)
	must(t, err)
	entry["digest"], entry["size"] = md, len(nm)
	ni, _ := json.Marshal(idx)
	putRaw(t, w.reg, repo, indexTag(tamperedB.Digest), "application/vnd.oci.image.index.v1+json", ni)
	// transplant: leg's valid signature copied to another image's .sig tag (payload names leg).
	legSig := rawManifest(t, w.reg, repo, sigTag(leg.Digest))
	putRaw(t, w.reg, repo, sigTag(transplant.Digest), "application/vnd.oci.image.manifest.v1+json", legSig)
	// Both signed images and their signatures copied to another repository under the same rule.
	for _, ref := range []string{"@" + leg.Digest, ":" + sigTag(leg.Digest), "@" + bundle.Digest, ":" + indexTag(bundle.Digest)} {
		if r := peers.Crane(t, "cp", w.reg.Host+"/"+repo+ref, w.reg.Host+"/team/copy"+strings.Replace(ref, "@", "@", 1)); r.Err != nil {
			t.Fatalf("crane cp %s: %v\n%s", ref, r.Err, r.Stderr)
		}
	}
	peers.Crane(t, "tag", w.reg.Host+"/team/copy@"+leg.Digest, "legacy")
	peers.Crane(t, "tag", w.reg.Host+"/team/copy@"+bundle.Digest, "bundle")

	g := w.gate(t, peers.GateConfig{
		TrustTTL: time.Second,
		Rules: []peers.GateRule{
			cosignRule("docker.io/team/**", pub),
			{Match: "docker.io/open/**", Mode: "off"},
		},
	})

	t.Run("signed bundle is served at its digest", func(t *testing.T) {
		expectServed(t, g, repo, "bundle", bundle.Digest, "cosign")
		expectReason(t, g, gun(repo), "bundle", "allow", "signed")
		getManifest(t, g, repo, "bundle")
		getManifest(t, g, repo, "legacy")
		ds := findDecision(g, gun(repo), "bundle")
		// Reported, not asserted: the first request resolves the tag, discovers and verifies;
		// the second is answered from the verified result (trust_ttl).
		for _, d := range append(ds, findDecision(g, gun(repo), "legacy")...) {
			t.Logf("GET %s:%s: %s in %v", repo, d.Tag, d.Decision, time.Duration(d.Latency))
		}
		if d := ds[len(ds)-1]; d.Verifier != "cosign" || !strings.HasPrefix(d.Signer, "sha256:") {
			t.Errorf("decision log: verifier %q signer %q", d.Verifier, d.Signer)
		}
	})
	t.Run("signed legacy is served at its digest", func(t *testing.T) {
		expectServed(t, g, repo, "legacy", leg.Digest, "cosign")
	})
	t.Run("crane pulls a signed image through trustgate", func(t *testing.T) {
		if r := peers.Crane(t, "pull", g.Host+"/"+repo+":bundle", filepath.Join(t.TempDir(), "i.tar")); r.Err != nil {
			t.Errorf("crane pull: %v\n%s", r.Err, r.Stderr)
		}
	})
	t.Run("signed digest is served by digest, its blobs too", func(t *testing.T) {
		r := getManifest(t, g, repo, leg.Digest)
		if r.code != http.StatusOK || r.header.Get("X-Trustgate-Verifier") != "cosign" {
			t.Errorf("GET by digest = %d %s %v", r.code, r.body, r.header)
		}
		l := leg.Layers[0].Digest
		if r := get(t, http.MethodGet, g.URL+"/v2/"+repo+"/blobs/"+l); r.code != http.StatusOK {
			t.Errorf("GET layer %s = %d %s", l, r.code, r.body)
		}
		if r := getManifest(t, g, repo, unsigned.Digest); r.code != http.StatusNotFound {
			t.Errorf("GET unsigned by digest = %d %s", r.code, r.body)
		}
	})
	for _, c := range []struct{ tag, digest, why, reason string }{
		{"unsigned", unsigned.Digest, "no signature", "no cosign signature of"},
		{"wrong-bundle", wrongB.Digest, "bundle by another key", "verifies"},
		{"wrong-legacy", wrongL.Digest, "legacy by another key", "no configured key verifies it"},
		{"tampered", tampered.Digest, "legacy signature with a flipped byte", "no configured key verifies it"},
		{"tampered-bundle", tamperedB.Digest, "bundle signature with a flipped byte", "could not verify envelope"},
		{"transplant", transplant.Digest, "another image's valid legacy signature", "legacy payload signs " + leg.Digest},
	} {
		t.Run("refused: "+c.why, func(t *testing.T) {
			r := expectRefused(t, g, repo, c.tag, http.StatusNotFound, c.digest)
			if !bytes.Contains(r.body, []byte("MANIFEST_UNKNOWN")) || !bytes.Contains(r.body, []byte(c.tag)) {
				t.Errorf("body %s", r.body)
			}
			expectReason(t, g, gun(repo), c.tag, "refuse", c.reason)
		})
	}
	t.Run("legacy payload names its repository: a copy elsewhere is refused", func(t *testing.T) {
		expectRefused(t, g, "team/copy", "legacy", http.StatusNotFound, leg.Digest)
		expectReason(t, g, gun("team/copy"), "legacy", "refuse", `legacy payload names repository "`+w.reg.Host+"/"+repo)
	})
	t.Run("bundle names only the digest: a copy elsewhere verifies", func(t *testing.T) {
		expectServed(t, g, "team/copy", "bundle", bundle.Digest, "cosign")
	})
	t.Run("repository outside the rule: its own rule's mode", func(t *testing.T) {
		// The default rule (Notary) knows nothing of cosign: refused although cosign-signed.
		expectRefused(t, g, "plain/app", "signed", http.StatusNotFound, plain.Digest)
		if r := getManifest(t, g, "open/app", "unsigned"); r.code != http.StatusOK || r.digest() != open.Digest {
			t.Errorf("off-mode repository: %d %s", r.code, r.body)
		}
	})

	t.Run("tag moved to an older signed digest is refused until accepted", func(t *testing.T) {
		r1 := w.push(t, repo, "rel")
		cosignSign(t, cs, w.reg.Host, key, r1)
		expectServed(t, g, repo, "rel", r1.Digest, "cosign")
		r2 := w.push(t, repo, "rel")
		cosignSign(t, cs, w.reg.Host, key, r2, legacy)
		eventually(t, 10*time.Second, "rel moves forward to r2", func() (bool, string) {
			r := getManifest(t, g, repo, "rel")
			return r.code == 200 && r.digest() == r2.Digest, r.digest()
		})
		if r := peers.Crane(t, "tag", w.reg.Host+"/"+repo+"@"+r1.Digest, "rel"); r.Err != nil {
			t.Fatal(r.Err)
		}
		var last response
		eventually(t, 10*time.Second, "rollback to r1 refused", func() (bool, string) {
			last = getManifest(t, g, repo, "rel")
			return last.code == http.StatusServiceUnavailable, string(last.body)
		})
		if last.digest() == r1.Digest || !bytes.Contains(last.body, []byte("rolled back")) {
			t.Errorf("rollback answer: %s", last.body)
		}
		expectReason(t, g, gun(repo), "rel", "error", "trust accept")
		out, err := exec.Command(trustgateBin, "trust", "accept", "--config", g.ConfigPath, gun(repo)+":rel", r1.Digest).CombinedOutput()
		if err != nil {
			t.Fatalf("trust accept: %v\n%s", err, out)
		}
		expectServed(t, g, repo, "rel", r1.Digest, "cosign")
	})
}

// TestCosignV2 is issue #9 with cosign v2.6.5 by key, offline: its legacy default, its bundle
// format (whose index entry says application/vnd.oci.empty.v1+json, so discovery reads the
// manifest), and the legacy signature stored as an OCI 1.1 referrer (found through the tag schema's
// index, the registry having no referrers API).
func TestCosignV2(t *testing.T) {
	w := newWorld(t)
	cs := newSigner(t, "cosign2")
	cs.run(t, "generate-key-pair")
	key, pub := filepath.Join(cs.dir, "cosign.key"), filepath.Join(cs.dir, "cosign.pub")
	other := newSigner(t, "cosign2")
	other.run(t, "generate-key-pair")

	const repo = "team/v2"
	leg := w.push(t, repo, "legacy")
	cosignSign(t, cs, w.reg.Host, key, leg)
	bundle := w.push(t, repo, "bundle")
	cosignSign(t, cs, w.reg.Host, key, bundle, "--new-bundle-format=true")
	ref := w.push(t, repo, "referrer")
	cs.env = append(cs.env, "COSIGN_EXPERIMENTAL=1")
	cosignSign(t, cs, w.reg.Host, key, ref, "--registry-referrers-mode=oci-1-1")
	wrong := w.push(t, repo, "wrong")
	cosignSign(t, other, w.reg.Host, filepath.Join(other.dir, "cosign.key"), wrong)
	unsigned := w.push(t, repo, "unsigned")

	// The referrer-mode signature is in the tag schema's index, not under the .sig tag.
	if r := get(t, http.MethodGet, w.reg.URL+"/v2/"+repo+"/manifests/"+sigTag(ref.Digest)); r.code != http.StatusNotFound {
		t.Fatalf("referrer-mode signature also under the .sig tag: %d", r.code)
	}
	rawManifest(t, w.reg, repo, indexTag(ref.Digest))

	g := w.gate(t, peers.GateConfig{Rules: []peers.GateRule{cosignRule("docker.io/team/**", pub)}})
	expectServed(t, g, repo, "legacy", leg.Digest, "cosign")
	expectServed(t, g, repo, "bundle", bundle.Digest, "cosign")
	expectServed(t, g, repo, "referrer", ref.Digest, "cosign")
	expectRefused(t, g, repo, "wrong", http.StatusNotFound, wrong.Digest)
	expectReason(t, g, gun(repo), "wrong", "refuse", "no configured key verifies it")
	expectRefused(t, g, repo, "unsigned", http.StatusNotFound, unsigned.Digest)
}

// TestCosignSignatureStoreDown: when the signatures can't be read (the registry fails the
// signature tag or the signature's blob), a tag is 503, never 404 and never served.
func TestCosignSignatureStoreDown(t *testing.T) {
	w := newWorld(t)
	front := startFront(t, w.reg.URL)
	cs := newSigner(t, "cosign")
	cs.run(t, "generate-key-pair")
	key, pub := filepath.Join(cs.dir, "cosign.key"), filepath.Join(cs.dir, "cosign.pub")
	// Signed through the front, so the legacy payload names the host trustgate pulls from.
	leg := w.push(t, "team/app", "legacy")
	cosignSign(t, cs, front.Host, key, leg, "--new-bundle-format=false")
	bun := w.push(t, "team/app", "bundle")
	cosignSign(t, cs, front.Host, key, bun)

	g := peers.StartTrustgate(t, trustgateBin, peers.GateConfig{RegistryURL: front.URL, NotaryURL: w.notary.URL,
		TrustTTL: time.Second, Rules: []peers.GateRule{cosignRule("docker.io/team/**", pub)}})
	expectServed(t, g, "team/app", "legacy", leg.Digest, "cosign")
	expectServed(t, g, "team/app", "bundle", bun.Digest, "cosign")

	var payload string
	var sigm struct {
		Layers []struct {
			Digest string `json:"digest"`
		} `json:"layers"`
	}
	must(t, json.Unmarshal(rawManifest(t, w.reg, "team/app", sigTag(leg.Digest)), &sigm))
	payload = sigm.Layers[0].Digest
	for _, c := range []struct {
		what, tag, path string
		kind            faultKind
	}{
		{"legacy signature tag answers 500", "legacy", `/manifests/sha256-[0-9a-f]+\.sig$`, statusOnly},
		{"legacy payload blob answers 500", "legacy", `/blobs/` + payload + `$`, statusOnly},
		{"bundle index tag connection reset", "bundle", `/manifests/sha256-[0-9a-f]+$`, hangup},
	} {
		t.Run(c.what, func(t *testing.T) {
			ft := front.inject(&fault{path: regexp.MustCompile(c.path), kind: c.kind, status: http.StatusInternalServerError})
			defer front.clear()
			var last response
			eventually(t, 10*time.Second, "503 once the verified result expires", func() (bool, string) {
				last = getManifest(t, g, "team/app", c.tag)
				return last.code == http.StatusServiceUnavailable, fmt.Sprint(last.code, " ", string(last.body))
			})
			if front.hits(ft) == 0 {
				t.Error("the fault was never hit")
			}
			if last.digest() == leg.Digest || last.digest() == bun.Digest {
				t.Error("manifest served while its signature could not be read")
			}
			expectReason(t, g, gun("team/app"), c.tag, "error", "signature store unavailable")
		})
	}
	expectServed(t, g, "team/app", "legacy", leg.Digest, "cosign")
}
