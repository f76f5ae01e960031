package tuftest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type file struct {
	Signed struct {
		Type    string                     `json:"_type"`
		Version int                        `json:"version"`
		Expires time.Time                  `json:"expires"`
		Keys    map[string]json.RawMessage `json:"keys"`
		Roles   map[string]struct {
			KeyIDs    []string `json:"keyids"`
			Threshold int      `json:"threshold"`
		} `json:"roles"`
		Meta map[string]struct {
			Length int64             `json:"length"`
			Hashes map[string][]byte `json:"hashes"`
		} `json:"meta"`
		Targets     map[string]json.RawMessage `json:"targets"`
		Delegations struct {
			Keys  map[string]tufKey `json:"keys"`
			Roles []struct {
				Name      string   `json:"name"`
				KeyIDs    []string `json:"keyids"`
				Threshold int      `json:"threshold"`
				Paths     []string `json:"paths"`
			} `json:"roles"`
		} `json:"delegations"`
	} `json:"signed"`
	Signatures []struct {
		KeyID  string `json:"keyid"`
		Method string `json:"method"`
		Sig    []byte `json:"sig"`
	} `json:"signatures"`
}

type tufKey struct {
	KeyType string `json:"keytype"`
	KeyVal  struct {
		Public []byte `json:"public"`
	} `json:"keyval"`
}

func parse(t *testing.T, b []byte) file {
	t.Helper()
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("parse: %v\n%s", err, b)
	}
	return f
}

// TestKeyIDMatchesNotary recomputes the key IDs in real notary-made metadata: if tuftest's
// key ID rule differed from notary's, nothing it signs would verify.
func TestKeyIDMatchesNotary(t *testing.T) {
	dir := "testdata/delegations-and-rotations"
	for _, name := range []string{"root.json", "targets.json"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var f struct {
			Signed struct {
				Keys        map[string]tufKey `json:"keys"`
				Delegations struct {
					Keys map[string]tufKey `json:"keys"`
				} `json:"delegations"`
			} `json:"signed"`
		}
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		keys := f.Signed.Keys
		if name == "targets.json" {
			keys = f.Signed.Delegations.Keys
		}
		if len(keys) == 0 {
			t.Fatalf("%s: no keys", name)
		}
		for id, k := range keys {
			got := (&Key{Type: k.KeyType, Public: k.KeyVal.Public}).ID()
			if got != id {
				t.Errorf("%s: %s key: ID %s, notary says %s", name, k.KeyType, got, id)
			}
		}
	}
}

// verify checks a signature the way notary's verifiers do (raw r||s ecdsa, eddsa, PSS salt 32).
func verify(t *testing.T, k tufKey, method string, msg, sig []byte) bool {
	t.Helper()
	pub := k.KeyVal.Public
	var key crypto.PublicKey
	switch k.KeyType {
	case "ed25519":
		key = ed25519.PublicKey(pub)
	case "ecdsa", "rsa":
		p, err := x509.ParsePKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		key = p
	case "ecdsa-x509", "rsa-x509":
		blk, _ := pem.Decode(pub)
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		key = c.PublicKey
	}
	h := sha256.Sum256(msg)
	switch method {
	case "ecdsa":
		p := key.(*ecdsa.PublicKey)
		if len(sig) != 64 {
			return false
		}
		return ecdsa.Verify(p, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
	case "eddsa":
		return ed25519.Verify(key.(ed25519.PublicKey), msg, sig)
	case "rsapss":
		return rsa.VerifyPSS(key.(*rsa.PublicKey), crypto.SHA256, h[:], sig, &rsa.PSSOptions{SaltLength: sha256.Size}) == nil
	}
	return false
}

func TestPublishVerifies(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []Option
	}{
		{"ecdsa", nil},
		{"rsa root, ed25519 keys", []Option{WithRSARoot(), WithKeyAlg(Ed25519)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gun := "example.com/team/app"
			r := NewRepo(t, gun, tc.opts...)
			digest := r.AddTarget(Targets, "v1", []byte("manifest"))
			rel := NewKey(t, ECDSA)
			r.AddDelegation("targets/releases", []*Key{rel}, nil, 1)
			r.AddTargetDigest("targets/releases", "v2", digest, 8)
			files := r.Publish()
			for _, name := range []string{"root.json", "1.root.json", "targets.json", "targets/releases.json", "snapshot.json", "timestamp.json"} {
				if files[name] == nil {
					t.Fatalf("missing %s", name)
				}
			}
			root := parse(t, files["root.json"])
			rootKeys := map[string]tufKey{}
			for id, raw := range root.Signed.Keys {
				var k tufKey
				if err := json.Unmarshal(raw, &k); err != nil {
					t.Fatal(err)
				}
				rootKeys[id] = k
			}
			rootKey := rootKeys[root.Signed.Roles["root"].KeyIDs[0]]
			blk, _ := pem.Decode(rootKey.KeyVal.Public)
			cert, err := x509.ParseCertificate(blk.Bytes)
			if err != nil || cert.Subject.CommonName != gun {
				t.Fatalf("root cert: %v, CN %q", err, cert.Subject.CommonName)
			}
			keysFor := func(name string) map[string]tufKey {
				switch name {
				case "targets/releases.json":
					return parse(t, files["targets.json"]).Signed.Delegations.Keys
				}
				return rootKeys
			}
			for _, name := range []string{"root.json", "targets.json", "targets/releases.json", "snapshot.json", "timestamp.json"} {
				b := files[name]
				f := parse(t, b)
				canon, err := Canonical(b)
				if err != nil {
					t.Fatal(err)
				}
				// Notary's raw "signed" bytes are already canonical.
				if !bytes.Contains(b, append([]byte(`{"signed":`), canon...)) {
					t.Errorf("%s: signed bytes are not canonical", name)
				}
				if len(f.Signatures) == 0 {
					t.Fatalf("%s: no signatures", name)
				}
				for _, s := range f.Signatures {
					k, ok := keysFor(name)[s.KeyID]
					if !ok || !verify(t, k, s.Method, canon, s.Sig) {
						t.Errorf("%s: signature by %s (%s) does not verify", name, s.KeyID, s.Method)
					}
				}
			}
			snap := parse(t, files["snapshot.json"])
			for _, role := range []string{"root", "targets", "targets/releases"} {
				m := snap.Signed.Meta[role]
				b := files[role+".json"]
				sum := sha256.Sum256(b)
				if m.Length != int64(len(b)) || !bytes.Equal(m.Hashes["sha256"], sum[:]) || len(m.Hashes["sha512"]) != 64 {
					t.Errorf("snapshot meta for %s does not describe its bytes", role)
				}
			}
			ts := parse(t, files["timestamp.json"])
			sum := sha256.Sum256(files["snapshot.json"])
			if !bytes.Equal(ts.Signed.Meta["snapshot"].Hashes["sha256"], sum[:]) {
				t.Error("timestamp meta does not describe snapshot")
			}
			if time.Until(ts.Signed.Expires) > 15*24*time.Hour {
				t.Errorf("timestamp expires %v, want ~14 days", ts.Signed.Expires)
			}
		})
	}
}

func TestRepublishBumpsOnlyChangedRoles(t *testing.T) {
	r := NewRepo(t, "example.com/a")
	r.AddTarget(Targets, "v1", []byte("a"))
	first := r.Publish()
	same := r.Publish()
	if !bytes.Equal(first["timestamp.json"], same["timestamp.json"]) {
		t.Error("publishing nothing new re-signed the timestamp")
	}
	r.AddTarget(Targets, "v2", []byte("b"))
	second := r.Publish()
	if !bytes.Equal(first["root.json"], second["root.json"]) {
		t.Error("root re-signed though unchanged")
	}
	for role, want := range map[string]int{"targets": 2, "snapshot": 2, "timestamp": 2, "root": 1} {
		if got := parse(t, second[role+".json"]).Signed.Version; got != want {
			t.Errorf("%s version %d, want %d", role, got, want)
		}
	}
}

func TestRotateRoot(t *testing.T) {
	r := NewRepo(t, "example.com/a")
	r.Publish()
	old := r.RootKeyIDs()[0]
	r.RotateRoot()
	files := r.Publish()
	root := parse(t, files["root.json"])
	if root.Signed.Version != 2 || !bytes.Equal(files["root.json"], files["2.root.json"]) || files["1.root.json"] == nil {
		t.Fatalf("rotation: version %d, history %v", root.Signed.Version, files["1.root.json"] != nil)
	}
	signers := map[string]bool{}
	for _, s := range root.Signatures {
		signers[s.KeyID] = true
	}
	if !signers[old] || !signers[r.RootKeyIDs()[0]] || len(signers) != 2 {
		t.Errorf("rotated root signed by %v, want old %s and new %s", signers, old, r.RootKeyIDs()[0])
	}
	if _, ok := root.Signed.Keys[old]; !ok {
		t.Error("old root key no longer listed")
	}
}

func get(t *testing.T, url string) (int, string, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

func TestServer(t *testing.T) {
	gun := "example.com/team/app"
	r := NewRepo(t, gun)
	r.AddDelegation("targets/releases", []*Key{NewKey(t, ECDSA)}, nil, 1)
	files := r.Publish()
	s := Serve(t, gun, files)
	base := s.URL + "/v2/" + gun + "/_trust/tuf/"
	for _, tc := range []struct {
		name   string
		status int
		want   []byte
	}{
		{"timestamp.json", 200, files["timestamp.json"]},
		{"targets/releases.json", 200, files["targets/releases.json"]},
		{"targets/releases." + hexOf(files["targets/releases.json"]) + ".json", 200, files["targets/releases.json"]},
		{"1.root.json", 200, files["1.root.json"]},
		{"2.root.json", 404, nil},
		{"targets." + strings.Repeat("0", 64) + ".json", 200, files["targets.json"]},
		{"targets." + strings.Repeat("0", 128) + ".json", 404, nil},
		{"nope.json", 404, nil},
	} {
		status, ct, body := get(t, base+tc.name)
		if status != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, status, tc.status)
			continue
		}
		if status == 404 {
			if !strings.Contains(string(body), `"METADATA_NOT_FOUND"`) {
				t.Errorf("%s: 404 body %s", tc.name, body)
			}
			continue
		}
		if ct != "text/plain; charset=utf-8" || !bytes.Equal(body, tc.want) {
			t.Errorf("%s: content-type %q, body equal %v", tc.name, ct, bytes.Equal(body, tc.want))
		}
	}
	s.Strict()
	if status, _, _ := get(t, base+"targets."+strings.Repeat("0", 64)+".json"); status != 404 {
		t.Errorf("strict: unknown checksum answered %d", status)
	}
	if n := s.Count(gun + "/timestamp.json"); n != 1 {
		t.Errorf("timestamp requested %d times, want 1", n)
	}

	// Old bytes stay reachable by checksum after a swap; the current name serves the new.
	oldTS := files["timestamp.json"]
	r.AddTarget(Targets, "v9", []byte("x"))
	s.Set(gun, r.Publish())
	if _, _, b := get(t, base+"timestamp.json"); bytes.Equal(b, oldTS) {
		t.Error("swap did not take effect")
	}
	if status, _, b := get(t, base+"timestamp."+hexOf(oldTS)+".json"); status != 200 || !bytes.Equal(b, oldTS) {
		t.Errorf("old timestamp by checksum: %d", status)
	}

	s.Override(gun, "timestamp.json", Response{Status: 503, Body: []byte("down")})
	if status, _, _ := get(t, base+"timestamp.json"); status != 503 {
		t.Errorf("override status %d", status)
	}
	s.Override(gun, "timestamp.json", Response{Endless: true})
	resp, err := http.Get(base + "timestamp.json")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, 3<<20))
	resp.Body.Close()
	if n != 3<<20 {
		t.Errorf("endless body ended after %d bytes", n)
	}
	s.Override(gun, "timestamp.json", Response{Body: []byte("short"), ContentLength: 100})
	resp, err = http.Get(base + "timestamp.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err == nil || resp.ContentLength != 100 {
		t.Errorf("declared 100 bytes, sent 5: read error %v, Content-Length %d", err, resp.ContentLength)
	}
	resp.Body.Close()
	s.Override(gun, "timestamp.json", Response{Delay: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"timestamp.json", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Error("delayed response arrived")
	}
	cancel()
	s.ClearOverride(gun, "timestamp.json")
	if status, _, _ := get(t, base+"timestamp.json"); status != 200 {
		t.Errorf("after clear: %d", status)
	}
}

func hexOf(b []byte) string {
	sum := sha256.Sum256(b)
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 64)
	for _, c := range sum {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// TestCanonicalMatchesNotary: notary signs the canonical form of "signed" and stores exactly
// those bytes, so tuftest's canonicalization (cjson over a decoded map) must reproduce every
// real file's raw "signed" bytes.
func TestCanonicalMatchesNotary(t *testing.T) {
	dir := "testdata/delegations-and-rotations"
	for _, name := range []string{"root.json", "2.root.json", "targets.json", "targets/releases.json", "targets/alice.json", "snapshot.json", "timestamp.json"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var f struct {
			Signed json.RawMessage `json:"signed"`
		}
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		got, err := Canonical(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, f.Signed) {
			t.Errorf("%s: canonical form differs from notary's signed bytes", name)
		}
	}
}
