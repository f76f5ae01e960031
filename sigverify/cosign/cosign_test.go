package cosign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/trustgate/trustgate/sigverify"
)

const image = digest.Digest("sha256:1111111111111111111111111111111111111111111111111111111111111111")

func payload(ref string, d digest.Digest) []byte {
	return fmt.Appendf(nil, `{"critical":{"identity":{"docker-reference":%q},"image":{"docker-manifest-digest":%q},"type":"cosign container image signature"},"optional":null}`, ref, d)
}

func TestParsePayload(t *testing.T) {
	p, err := ParsePayload(payload("registry.example/team/app", image))
	if err != nil || p.Reference != "registry.example/team/app" || p.Digest != image {
		t.Fatalf("ParsePayload = %+v, %v", p, err)
	}
	for name, b := range map[string]string{
		"not json":     "[",
		"other type":   `{"critical":{"identity":{"docker-reference":"a/b"},"image":{"docker-manifest-digest":"` + string(image) + `"},"type":"atomic container signature"}}`,
		"bad digest":   `{"critical":{"identity":{"docker-reference":"a/b"},"image":{"docker-manifest-digest":"sha256:zz"},"type":"cosign container image signature"}}`,
		"no reference": `{"critical":{"identity":{},"image":{"docker-manifest-digest":"` + string(image) + `"},"type":"cosign container image signature"}}`,
	} {
		if _, err := ParsePayload([]byte(b)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParsePayload(f *testing.F) {
	f.Add(payload("registry.example/team/app", image))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePayload(b)
		if err != nil {
			return
		}
		if p.Digest.Validate() != nil || p.Reference == "" {
			t.Fatalf("accepted %+v", p)
		}
	})
}

func TestSameRepository(t *testing.T) {
	for _, c := range []struct {
		ref   string
		names []string
		want  bool
	}{
		{"127.0.0.1:5000/team/app", []string{"docker.io/team/app", "127.0.0.1:5000/team/app"}, true},
		{"index.docker.io/library/alpine", []string{"docker.io/library/alpine"}, true},
		{"docker.io/library/alpine:3", []string{"docker.io/library/alpine"}, true},
		{"127.0.0.1:5000/team/other", []string{"docker.io/team/app", "127.0.0.1:5000/team/app"}, false},
		{"evil.example/team/app", []string{"docker.io/team/app", "127.0.0.1:5000/team/app"}, false},
		{"", []string{"docker.io/team/app"}, false},
		{"UPPER/case", []string{"docker.io/upper/case"}, false},
	} {
		if got := sameRepository(c.ref, c.names); got != c.want {
			t.Errorf("sameRepository(%q, %v) = %t", c.ref, c.names, got)
		}
	}
}

// registry serves blobs and nothing else.
type registry map[digest.Digest][]byte

func (r registry) Manifest(context.Context, string, int64) ([]byte, digest.Digest, error) {
	return nil, "", sigverify.ErrNotFound
}
func (r registry) Referrers(context.Context, digest.Digest, int64) ([]byte, error) {
	return nil, sigverify.ErrNotFound
}
func (r registry) Blob(_ context.Context, d digest.Digest, _ int64) ([]byte, error) {
	if b, ok := r[d]; ok {
		return b, nil
	}
	return nil, sigverify.ErrNotFound
}

func newKey(t testing.TB) (signature.SignerVerifier, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadECDSASignerVerifier(k, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := cryptoutils.MarshalPublicKeyToPEM(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "cosign.pub")
	if err := os.WriteFile(f, pem, 0o644); err != nil {
		t.Fatal(err)
	}
	return sv, f
}

// legacyArtifact is a legacy signature of p by sv, as cosign lays it out.
func legacyArtifact(t testing.TB, reg registry, sv signature.Signer, p []byte) sigverify.Artifact {
	t.Helper()
	sig, err := sv.SignMessage(bytes.NewReader(p))
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromBytes(p)
	reg[d] = p
	return sigverify.Artifact{Digest: digest.FromString(string(sig)), Via: sigverify.ViaSigTag, Layers: []ocispec.Descriptor{{
		MediaType: MediaTypeSimpleSigning, Digest: d, Size: int64(len(p)),
		Annotations: map[string]string{AnnotationSignature: base64.StdEncoding.EncodeToString(sig)},
	}}}
}

func TestVerifyLegacy(t *testing.T) {
	sv, pub := newKey(t)
	other, _ := newKey(t)
	v, err := New(Config{KeyFiles: []string{pub}})
	if err != nil {
		t.Fatal(err)
	}
	subj := sigverify.Subject{Descriptor: ocispec.Descriptor{Digest: image}, Names: []string{"docker.io/team/app", "127.0.0.1:5000/team/app"}}
	other2 := digest.Digest("sha256:3333333333333333333333333333333333333333333333333333333333333333")
	for _, c := range []struct {
		name   string
		art    func(registry) sigverify.Artifact
		reason string // "" = verifies
	}{
		{"signed", func(r registry) sigverify.Artifact {
			return legacyArtifact(t, r, sv, payload("127.0.0.1:5000/team/app", image))
		}, ""},
		{"other key", func(r registry) sigverify.Artifact {
			return legacyArtifact(t, r, other, payload("127.0.0.1:5000/team/app", image))
		}, "no configured key"},
		{"other digest", func(r registry) sigverify.Artifact {
			return legacyArtifact(t, r, sv, payload("127.0.0.1:5000/team/app", other2))
		}, "signs " + string(other2)},
		{"other repository", func(r registry) sigverify.Artifact {
			return legacyArtifact(t, r, sv, payload("127.0.0.1:5000/team/evil", image))
		}, "names repository"},
		{"payload missing", func(r registry) sigverify.Artifact {
			a := legacyArtifact(t, r, sv, payload("127.0.0.1:5000/team/app", image))
			delete(r, a.Layers[0].Digest)
			return a
		}, "not found"},
		{"signature annotation garbled", func(r registry) sigverify.Artifact {
			a := legacyArtifact(t, r, sv, payload("127.0.0.1:5000/team/app", image))
			a.Layers[0].Annotations[AnnotationSignature] = "!!"
			return a
		}, "malformed"},
		{"referrer of another image", func(r registry) sigverify.Artifact {
			a := legacyArtifact(t, r, sv, payload("127.0.0.1:5000/team/app", image))
			a.Subject = &ocispec.Descriptor{Digest: other2}
			return a
		}, "no cosign signature of"},
	} {
		t.Run(c.name, func(t *testing.T) {
			reg := registry{}
			res, err := v.Verify(context.Background(), reg, subj, []sigverify.Artifact{c.art(reg)})
			if c.reason == "" {
				if err != nil || res.Layout != "legacy" || !strings.HasPrefix(res.Signer, "sha256:") || res.Verifier != "cosign" || res.Digest != image {
					t.Fatalf("Verify = %+v, %v", res, err)
				}
				return
			}
			if !errors.Is(err, sigverify.ErrNotSigned) || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("Verify error = %v; want ErrNotSigned with %q", err, c.reason)
			}
		})
	}
}

func TestVerifyUnavailable(t *testing.T) {
	sv, pub := newKey(t)
	v, _ := New(Config{KeyFiles: []string{pub}})
	reg := registry{}
	a := legacyArtifact(t, reg, sv, payload("127.0.0.1:5000/team/app", image))
	_, err := v.Verify(context.Background(), failing{}, sigverify.Subject{Descriptor: ocispec.Descriptor{Digest: image}}, []sigverify.Artifact{a})
	if !errors.Is(err, sigverify.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

type failing struct{ registry }

func (failing) Blob(context.Context, digest.Digest, int64) ([]byte, error) {
	return nil, errors.New("connection refused")
}

func TestNewErrorsNameTheEntry(t *testing.T) {
	_, good := newKey(t)
	bad := filepath.Join(t.TempDir(), "bad.pub")
	_ = os.WriteFile(bad, []byte("not pem"), 0o644)
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "needs keys or identities"},
		{Config{KeyFiles: []string{good}, RequireTlog: true}, "apply to identities"},
		{Config{KeyFiles: []string{"/nonexistent.pub"}}, "keys[0] (/nonexistent.pub)"},
		{Config{KeyFiles: []string{bad}}, "not a PEM public key"},
		{Config{Identities: []Identity{{Issuer: "i", Subject: "s"}}}, "trusted_root"},
		{Config{Identities: []Identity{{Issuer: "i", Subject: "s"}}, TrustedRoot: "/nonexistent.json"}, "trusted_root (/nonexistent.json)"},
	} {
		if _, err := New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v; want %q", c.cfg, err, c.want)
		}
	}
}

// BenchmarkVerifyLegacy is the in-process cost of checking one legacy signature by key (payload
// already fetched): parse, ECDSA P-256 verify, payload checks.
func BenchmarkVerifyLegacy(b *testing.B) {
	sv, pub := newKey(b)
	v, err := New(Config{KeyFiles: []string{pub}})
	if err != nil {
		b.Fatal(err)
	}
	reg := registry{}
	arts := []sigverify.Artifact{legacyArtifact(b, reg, sv, payload("127.0.0.1:5000/team/app", image))}
	subj := sigverify.Subject{Descriptor: ocispec.Descriptor{Digest: image}, Names: []string{"127.0.0.1:5000/team/app"}}
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Verify(context.Background(), reg, subj, arts); err != nil {
			b.Fatal(err)
		}
	}
}
