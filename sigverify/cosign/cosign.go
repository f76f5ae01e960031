// Package cosign verifies cosign signatures of an image digest, in both layouts cosign writes: the
// legacy simple-signing layout (tag sha256-<hex>.sig, the signature in a layer annotation) and the
// Sigstore bundle v0.3 layout (a referrer whose one layer is the bundle). Keys are public keys;
// keyless identities are certificate issuer and subject, checked against a trusted root file.
package cosign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/trustgate/trustgate/sigverify"
)

// Media types and names cosign uses.
const (
	MediaTypeSimpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	MediaTypeBundle        = "application/vnd.dev.sigstore.bundle.v0.3+json"
	AnnotationSignature    = "dev.cosignproject.cosign/signature"
	// PredicateSign is the in-toto predicate type of a cosign image signature in a bundle.
	PredicateSign = "https://sigstore.dev/cosign/sign/v1"
	// SimpleSigningType is the critical.type of a cosign legacy payload.
	SimpleSigningType = "cosign container image signature"
)

// Identity is a keyless signer: a certificate whose OIDC issuer and subject (SAN) match. Exactly
// one of each pair is set; the regular expressions are Go syntax, anchored by the author.
type Identity struct {
	Issuer, IssuerRegex   string
	Subject, SubjectRegex string
}

// Config is what a rule trusts.
type Config struct {
	// KeyFiles are PEM public keys; a signature by any of them counts.
	KeyFiles []string
	// Identities are keyless signers, verified against TrustedRoot (a Sigstore trusted_root.json).
	Identities  []Identity
	TrustedRoot string
	// RequireTlog requires a transparency log entry (verified against the trusted root's logs);
	// RequireTimestamp an RFC 3161 signed timestamp from one of its timestamp authorities. A
	// certificate is then checked at the signed time; without either, at the current time.
	RequireTlog, RequireTimestamp bool
}

// Verifier checks cosign signatures under one Config. It is immutable and safe for concurrent use.
type Verifier struct {
	keys       []key
	identities []verify.CertificateIdentity
	idNames    []string
	keyless    *verify.Verifier
}

type key struct {
	id       string // sha256:<hex of the PKIX DER>
	legacy   signature.Verifier
	verifier *verify.Verifier
}

// New loads cfg's keys and trusted root. Errors name the file or entry at fault.
func New(cfg Config) (*Verifier, error) {
	if len(cfg.KeyFiles) == 0 && len(cfg.Identities) == 0 {
		return nil, errors.New("needs keys or identities")
	}
	v := &Verifier{}
	for i, f := range cfg.KeyFiles {
		k, err := loadKey(f)
		if err != nil {
			return nil, fmt.Errorf("keys[%d] (%s): %w", i, f, err)
		}
		v.keys = append(v.keys, k)
	}
	if len(cfg.Identities) == 0 {
		switch {
		case cfg.TrustedRoot != "":
			return nil, errors.New("trusted_root is only used with identities")
		case cfg.RequireTlog || cfg.RequireTimestamp:
			// Not silently ignored: a key's signature carries no certificate for a log entry or
			// timestamp to anchor, and this verifier checks them for identities only.
			return nil, errors.New("require_tlog and require_timestamp apply to identities (keyless), not to keys")
		}
		return v, nil
	}
	if cfg.TrustedRoot == "" {
		return nil, errors.New("identities need a trusted_root file")
	}
	tr, err := root.NewTrustedRootFromPath(cfg.TrustedRoot)
	if err != nil {
		return nil, fmt.Errorf("trusted_root (%s): %w", cfg.TrustedRoot, err)
	}
	var opts []verify.VerifierOption
	if cfg.RequireTlog {
		opts = append(opts, verify.WithTransparencyLog(1), verify.WithIntegratedTimestamps(1))
	}
	if cfg.RequireTimestamp {
		opts = append(opts, verify.WithSignedTimestamps(1))
	}
	if !cfg.RequireTlog && !cfg.RequireTimestamp {
		opts = append(opts, verify.WithCurrentTime())
	}
	if v.keyless, err = verify.NewVerifier(tr, opts...); err != nil {
		return nil, fmt.Errorf("trusted_root (%s): %w", cfg.TrustedRoot, err)
	}
	for i, id := range cfg.Identities {
		ci, err := verify.NewShortCertificateIdentity(id.Issuer, id.IssuerRegex, id.Subject, id.SubjectRegex)
		if err != nil {
			return nil, fmt.Errorf("identities[%d]: %w", i, err)
		}
		v.identities = append(v.identities, ci)
		v.idNames = append(v.idNames, fmt.Sprintf("%s (%s)", id.Subject+id.SubjectRegex, id.Issuer+id.IssuerRegex))
	}
	return v, nil
}

func loadKey(file string) (key, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return key{}, err
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(b)
	if err != nil {
		return key{}, fmt.Errorf("not a PEM public key: %w", err)
	}
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
	if err != nil {
		return key{}, err
	}
	sum := sha256.Sum256(der)
	sv, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return key{}, err
	}
	tm := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) {
		return root.NewExpiringKey(sv, time.Time{}, time.Time{}), nil
	})
	// A key signs without a certificate, so there is nothing for a timestamp to anchor; a tlog or
	// timestamp requirement is for keyless identities.
	bv, err := verify.NewVerifier(tm, verify.WithNoObserverTimestamps())
	if err != nil {
		return key{}, err
	}
	return key{id: "sha256:" + hex.EncodeToString(sum[:]), legacy: sv, verifier: bv}, nil
}

// Verify looks for a signature of subj among arts (see sigverify.Discover) that this Verifier
// accepts, fetching payloads and bundles by digest through f. It returns sigverify.ErrNotSigned
// when none does; reasons for each rejected one are in the error.
func (v *Verifier) Verify(ctx context.Context, f sigverify.Fetcher, subj sigverify.Subject, arts []sigverify.Artifact) (sigverify.Result, error) {
	d := subj.Descriptor.Digest
	var why []error
	for _, a := range arts {
		if a.Subject != nil && a.Subject.Digest != d {
			continue // a referrer of something else
		}
		for _, l := range a.Layers {
			var r sigverify.Result
			var err error
			switch l.MediaType {
			case MediaTypeSimpleSigning:
				r, err = v.legacy(ctx, f, subj, l.Digest, l.Annotations[AnnotationSignature])
			case MediaTypeBundle:
				r, err = v.bundle(ctx, f, d, l.Digest)
			default:
				continue
			}
			if err == nil {
				r.Verifier, r.Digest, r.Artifact = "cosign", d, a.Digest
				return r, nil
			}
			if errors.Is(err, sigverify.ErrUnavailable) {
				return sigverify.Result{}, err
			}
			why = append(why, fmt.Errorf("%s: %w", a.Digest, err))
		}
	}
	if len(why) == 0 {
		return sigverify.Result{}, fmt.Errorf("%w: no cosign signature of %s", sigverify.ErrNotSigned, d)
	}
	return sigverify.Result{}, fmt.Errorf("%w: no cosign signature of %s verifies: %w", sigverify.ErrNotSigned, d, errors.Join(why...))
}

func blob(ctx context.Context, f sigverify.Fetcher, d digest.Digest) ([]byte, error) {
	b, err := f.Blob(ctx, d, sigverify.MaxBlobBytes)
	switch {
	case errors.Is(err, sigverify.ErrNotFound):
		return nil, fmt.Errorf("blob %s: %w", d, err)
	case err != nil:
		return nil, fmt.Errorf("%w: blob %s: %w", sigverify.ErrUnavailable, d, err)
	}
	return b, nil
}

// legacy verifies a simple-signing payload: by key only (a certificate in the annotations is not
// read, so keyless legacy signatures do not verify here).
func (v *Verifier) legacy(ctx context.Context, f sigverify.Fetcher, subj sigverify.Subject, payloadDigest digest.Digest, sigB64 string) (sigverify.Result, error) {
	if len(v.keys) == 0 {
		return sigverify.Result{}, errors.New("legacy signature: no keys configured (keyless needs the bundle layout)")
	}
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil || len(sig) == 0 {
		return sigverify.Result{}, errors.New("legacy signature: no or malformed signature annotation")
	}
	payload, err := blob(ctx, f, payloadDigest)
	if err != nil {
		return sigverify.Result{}, err
	}
	var k *key
	for i := range v.keys {
		if v.keys[i].legacy.VerifySignature(bytes.NewReader(sig), bytes.NewReader(payload)) == nil {
			k = &v.keys[i]
			break
		}
	}
	if k == nil {
		return sigverify.Result{}, errors.New("legacy signature: no configured key verifies it")
	}
	p, err := ParsePayload(payload)
	if err != nil {
		return sigverify.Result{}, err
	}
	if p.Digest != subj.Descriptor.Digest {
		return sigverify.Result{}, fmt.Errorf("legacy payload signs %s, not %s", p.Digest, subj.Descriptor.Digest)
	}
	if !sameRepository(p.Reference, subj.Names) {
		return sigverify.Result{}, fmt.Errorf("legacy payload names repository %q, not %v", p.Reference, subj.Names)
	}
	return sigverify.Result{Signer: k.id, Layout: "legacy"}, nil
}

// Payload is the part of a simple-signing payload trustgate checks.
type Payload struct {
	Reference string        // critical.identity.docker-reference
	Digest    digest.Digest // critical.image.docker-manifest-digest
}

// ParsePayload reads a cosign simple-signing payload; it must be of cosign's type, name a
// repository and a valid digest.
func ParsePayload(b []byte) (Payload, error) {
	if len(b) > sigverify.MaxBlobBytes {
		return Payload{}, fmt.Errorf("legacy payload of %d bytes", len(b))
	}
	var p struct {
		Critical struct {
			Identity struct {
				DockerReference string `json:"docker-reference"`
			} `json:"identity"`
			Image struct {
				DockerManifestDigest string `json:"docker-manifest-digest"`
			} `json:"image"`
			Type string `json:"type"`
		} `json:"critical"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return Payload{}, fmt.Errorf("legacy payload: %w", err)
	}
	c := p.Critical
	if c.Type != SimpleSigningType {
		return Payload{}, fmt.Errorf("legacy payload: type %q is not %q", c.Type, SimpleSigningType)
	}
	d, err := digest.Parse(c.Image.DockerManifestDigest)
	if err != nil {
		return Payload{}, fmt.Errorf("legacy payload: digest: %w", err)
	}
	if c.Identity.DockerReference == "" {
		return Payload{}, errors.New("legacy payload: no docker-reference")
	}
	return Payload{Reference: c.Identity.DockerReference, Digest: d}, nil
}

// sameRepository reports whether ref names one of names' repositories (registry host included,
// docker.io normalised as go-containerregistry does). A tag or digest in ref is ignored.
func sameRepository(ref string, names []string) bool {
	want := repoOf(ref)
	if want == "" {
		return false
	}
	for _, n := range names {
		if repoOf(n) == want {
			return true
		}
	}
	return false
}

func repoOf(s string) string {
	if r, err := name.ParseReference(s, name.WeakValidation); err == nil {
		return r.Context().Name()
	}
	if r, err := name.NewRepository(s, name.WeakValidation); err == nil {
		return r.Name()
	}
	return ""
}

// bundle verifies a Sigstore bundle whose DSSE statement must name d and be a cosign signature.
func (v *Verifier) bundle(ctx context.Context, f sigverify.Fetcher, d digest.Digest, bundleDigest digest.Digest) (sigverify.Result, error) {
	raw, err := blob(ctx, f, bundleDigest)
	if err != nil {
		return sigverify.Result{}, err
	}
	var b bundle.Bundle
	if err := b.UnmarshalJSON(raw); err != nil {
		return sigverify.Result{}, fmt.Errorf("bundle: %w", err)
	}
	if d.Algorithm() != digest.SHA256 {
		return sigverify.Result{}, fmt.Errorf("bundle: digest algorithm %s", d.Algorithm())
	}
	want, err := hex.DecodeString(d.Encoded())
	if err != nil {
		return sigverify.Result{}, err
	}
	check := func(res *verify.VerificationResult) error {
		if res.Statement == nil || res.Statement.PredicateType != PredicateSign {
			return fmt.Errorf("bundle: statement is not a cosign signature (%s)", PredicateSign)
		}
		return nil
	}
	var why []error
	for _, k := range v.keys {
		res, err := k.verifier.Verify(&b, verify.NewPolicy(verify.WithArtifactDigest("sha256", want), verify.WithKey()))
		if err == nil {
			err = check(res)
		}
		if err == nil {
			r := sigverify.Result{Signer: k.id, Layout: "bundle"}
			signedTime(&r, res)
			return r, nil
		}
		why = append(why, fmt.Errorf("key %s: %w", k.id, err))
	}
	for i, id := range v.identities {
		res, err := v.keyless.Verify(&b, verify.NewPolicy(verify.WithArtifactDigest("sha256", want), verify.WithCertificateIdentity(id)))
		if err == nil {
			err = check(res)
		}
		if err == nil {
			r := sigverify.Result{Signer: v.idNames[i], Layout: "bundle"}
			if vc, err := b.VerificationContent(); err == nil {
				if c := vc.Certificate(); c != nil {
					r.NotAfter = c.NotAfter
				}
			}
			signedTime(&r, res)
			return r, nil
		}
		why = append(why, fmt.Errorf("identity %s: %w", v.idNames[i], err))
	}
	return sigverify.Result{}, errors.Join(why...)
}

// signedTime records the earliest time a log or timestamp authority signed (not "CurrentTime",
// which sigstore-go reports when it checked a certificate at the time of verification).
func signedTime(r *sigverify.Result, res *verify.VerificationResult) {
	for _, ts := range res.VerifiedTimestamps {
		src := map[string]string{"Tlog": "tlog", "TimestampAuthority": "tsa"}[ts.Type]
		if src == "" {
			continue
		}
		if r.SignedAt.IsZero() || ts.Timestamp.Before(r.SignedAt) {
			r.SignedAt, r.TimeSource = ts.Timestamp, src
		}
	}
}
