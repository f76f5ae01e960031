// Package sigverify finds and checks signatures that systems which sign digests (cosign, Notation)
// store beside an image in its registry. The registry is untrusted: everything is fetched by
// digest (or, for the tag schema's index, hashed by the fetcher), bounded in size, and only what a
// configured key, certificate authority or trust policy vouches for counts. Subpackages verify
// one system each; binding keeps tags from being moved back to older signed digests.
package sigverify

import (
	"context"
	"errors"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Errors. A verifier's error wraps one of them; ErrNotSigned means no signature the policy
// accepts exists (a client is told 404), ErrUnavailable that the signatures could not be read
// (503).
var (
	ErrNotSigned   = errors.New("no valid signature")
	ErrUnavailable = errors.New("signature store unavailable")
	// ErrNotFound is what a Fetcher wraps when the registry has no such object.
	ErrNotFound = errors.New("not found in the registry")
)

// Size caps for signature artifacts; a larger one is not read.
const (
	MaxManifestBytes = 1 << 20 // a signature manifest or the index that lists them
	MaxBlobBytes     = 1 << 20 // a bundle, simple-signing payload or Notation envelope
	MaxArtifacts     = 32      // signature manifests looked at per digest
	maxIndexEntries  = 4 * MaxArtifacts
)

// Fetcher reads the registry that holds the image. Implementations hash what they return: a
// manifest's digest is the hash of its bytes, and a blob is returned only if it hashes to d.
// Errors for a missing object wrap ErrNotFound.
type Fetcher interface {
	// Manifest returns the manifest named by ref (a tag or a digest) and the digest of its bytes,
	// refusing more than max bytes.
	Manifest(ctx context.Context, ref string, max int64) ([]byte, digest.Digest, error)
	// Blob returns blob d, refusing more than max bytes.
	Blob(ctx context.Context, d digest.Digest, max int64) ([]byte, error)
	// Referrers returns the OCI 1.1 referrers index of d; ErrNotFound when the registry does not
	// implement the API.
	Referrers(ctx context.Context, d digest.Digest, max int64) ([]byte, error)
}

// Result is a verified signature of one digest.
type Result struct {
	Verifier string        // "cosign" or "notation"
	Digest   digest.Digest // the signed manifest
	// Signer names what vouched: a key ID ("sha256:<hex of the PKIX key>"), a certificate
	// identity ("<subject> (<issuer>)") or an X.509 subject.
	Signer string
	// Layout says which form the signature had (cosign "bundle" or "legacy", Notation
	// "application/jose+json" or "application/cose").
	Layout string
	// SignedAt is when the signature was made, as far as something signed says; zero when
	// nothing does. TimeSource says who signed it ("tlog", "tsa", "signer", or "" for none).
	SignedAt   time.Time
	TimeSource string
	// NotAfter is when the signature stops verifying on its own terms (certificate or
	// signature expiry); zero when it does not.
	NotAfter time.Time
	// Artifact is the signature manifest that verified.
	Artifact digest.Digest
}

// Subject is the image whose signatures are verified.
type Subject struct {
	// Descriptor of the image manifest: digest, size and media type as hashed by the caller.
	Descriptor ocispec.Descriptor
	// Names are the repository names the image is known under (the trustgate name, and the
	// registry host and path the signer saw); a signature naming its repository must name one.
	Names []string
	// Reference is the name trust policies are matched against (host/path, no tag or digest).
	Reference string
}

// Checker verifies the signatures of one digest, found by Discover, under one configuration.
// cosign.Verifier and notation.Verifier implement it.
type Checker interface {
	Verify(ctx context.Context, f Fetcher, subj Subject, arts []Artifact) (Result, error)
}
