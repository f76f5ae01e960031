package sigverify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Where an artifact was found.
const (
	ViaReferrers = "referrers" // the OCI 1.1 referrers API
	ViaTagIndex  = "tag"       // the referrers tag schema: tag sha256-<hex>, an index
	ViaSigTag    = "sig-tag"   // cosign's legacy tag sha256-<hex>.sig, a manifest
	maxLayers    = 16          // layers of one signature manifest
	maxAnnots    = 64          // annotations of one descriptor
	maxAnnotLen  = 64 << 10    // bytes of one annotation value
	mediaTypeDSM = "application/vnd.docker.distribution.manifest.v2+json"
)

// Artifact is a signature manifest found for a digest, fetched by digest (or hashed, when its tag
// names it) and parsed; nothing in it is verified yet.
type Artifact struct {
	Digest       digest.Digest // of the manifest's bytes
	ArtifactType string        // the manifest's artifactType, else its config's media type
	Subject      *ocispec.Descriptor
	Layers       []ocispec.Descriptor
	Annotations  map[string]string
	Via          string
}

// SigTag is cosign's legacy signature tag for d, and IndexTag the referrers tag schema's.
func SigTag(d digest.Digest) string   { return IndexTag(d) + ".sig" }
func IndexTag(d digest.Digest) string { return string(d.Algorithm()) + "-" + d.Encoded() }

// Discover finds the signature manifests of d: from the referrers API when the registry has it,
// from the tag schema's index (Notation, cosign bundles) and from cosign's .sig tag. Each is
// fetched by digest. err is the first failure to read something that may exist (not a 404); the
// caller decides whether it matters (it does when nothing found verifies).
func Discover(ctx context.Context, f Fetcher, d digest.Digest) (arts []Artifact, err error) {
	seen := map[digest.Digest]bool{}
	fail := func(what string, e error) {
		if err == nil && !errors.Is(e, ErrNotFound) {
			err = fmt.Errorf("%w: %s: %w", ErrUnavailable, what, e)
		}
	}
	fetch := func(desc ocispec.Descriptor, via string) {
		if seen[desc.Digest] || len(arts) >= MaxArtifacts {
			return
		}
		if desc.Size > MaxManifestBytes {
			return // not read: too large to be a signature this trustgate accepts
		}
		seen[desc.Digest] = true
		b, got, e := f.Manifest(ctx, desc.Digest.String(), MaxManifestBytes)
		if e != nil {
			fail("signature manifest "+desc.Digest.String(), e)
			return
		}
		if got != desc.Digest {
			fail("signature manifest "+desc.Digest.String(), fmt.Errorf("bytes hash to %s", got))
			return
		}
		if a, e := ParseManifest(b); e == nil {
			a.Digest, a.Via = got, via
			arts = append(arts, a)
		}
	}
	listed := func(b []byte, via string) {
		entries, e := ParseIndex(b)
		if e != nil {
			return // not an index of signatures: nothing found there
		}
		for _, desc := range entries {
			fetch(desc, via)
		}
	}

	switch b, e := f.Referrers(ctx, d, MaxManifestBytes); {
	case e == nil:
		listed(b, ViaReferrers)
	default:
		fail("referrers", e)
	}
	switch b, got, e := f.Manifest(ctx, IndexTag(d), MaxManifestBytes); {
	case e != nil:
		fail("tag "+IndexTag(d), e)
	case isIndex(b):
		listed(b, ViaTagIndex)
	case !seen[got] && len(arts) < MaxArtifacts:
		if a, e := ParseManifest(b); e == nil {
			seen[got] = true
			a.Digest, a.Via = got, ViaTagIndex
			arts = append(arts, a)
		}
	}
	switch b, got, e := f.Manifest(ctx, SigTag(d), MaxManifestBytes); {
	case e != nil:
		fail("tag "+SigTag(d), e)
	case !seen[got] && len(arts) < MaxArtifacts:
		if a, e := ParseManifest(b); e == nil {
			seen[got] = true
			a.Digest, a.Via = got, ViaSigTag
			arts = append(arts, a)
		}
	}
	return arts, err
}

func isIndex(b []byte) bool {
	var probe struct {
		MediaType string            `json:"mediaType"`
		Manifests []json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(b, &probe) != nil {
		return false
	}
	return probe.MediaType == ocispec.MediaTypeImageIndex || (probe.MediaType == "" && probe.Manifests != nil)
}

// ParseIndex reads an OCI image index (a referrers answer or the tag schema's index) and returns
// its entries with valid digests, at most 4*MaxArtifacts of them.
func ParseIndex(b []byte) ([]ocispec.Descriptor, error) {
	if len(b) > MaxManifestBytes {
		return nil, fmt.Errorf("index of %d bytes: more than %d", len(b), MaxManifestBytes)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	if idx.SchemaVersion != 2 {
		return nil, fmt.Errorf("index: schemaVersion %d", idx.SchemaVersion)
	}
	if idx.MediaType != "" && idx.MediaType != ocispec.MediaTypeImageIndex {
		return nil, fmt.Errorf("index: media type %q", idx.MediaType)
	}
	var out []ocispec.Descriptor
	for _, m := range idx.Manifests {
		if len(out) == maxIndexEntries {
			break
		}
		if m.Digest.Validate() != nil || m.Size < 0 {
			continue
		}
		out = append(out, m)
	}
	return out, nil
}

// ParseManifest reads a signature manifest: an OCI (or Docker schema 2) image manifest whose
// descriptors have valid digests and bounded annotations.
func ParseManifest(b []byte) (Artifact, error) {
	if len(b) > MaxManifestBytes {
		return Artifact{}, fmt.Errorf("manifest of %d bytes: more than %d", len(b), MaxManifestBytes)
	}
	var m ocispec.Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return Artifact{}, fmt.Errorf("manifest: %w", err)
	}
	switch {
	case m.SchemaVersion != 2:
		return Artifact{}, fmt.Errorf("manifest: schemaVersion %d", m.SchemaVersion)
	case m.MediaType != "" && m.MediaType != ocispec.MediaTypeImageManifest && m.MediaType != mediaTypeDSM:
		return Artifact{}, fmt.Errorf("manifest: media type %q", m.MediaType)
	case len(m.Layers) == 0 || len(m.Layers) > maxLayers:
		return Artifact{}, fmt.Errorf("manifest: %d layers", len(m.Layers))
	case m.Config.Digest.Validate() != nil:
		return Artifact{}, fmt.Errorf("manifest: config digest %q", m.Config.Digest)
	}
	if err := checkAnnotations(m.Annotations); err != nil {
		return Artifact{}, err
	}
	for _, l := range m.Layers {
		if l.Digest.Validate() != nil || l.Size < 0 {
			return Artifact{}, fmt.Errorf("manifest: layer digest %q", l.Digest)
		}
		if err := checkAnnotations(l.Annotations); err != nil {
			return Artifact{}, err
		}
	}
	if m.Subject != nil && m.Subject.Digest.Validate() != nil {
		return Artifact{}, fmt.Errorf("manifest: subject digest %q", m.Subject.Digest)
	}
	a := Artifact{ArtifactType: m.ArtifactType, Subject: m.Subject, Layers: m.Layers, Annotations: m.Annotations}
	if a.ArtifactType == "" {
		a.ArtifactType = m.Config.MediaType
	}
	return a, nil
}

func checkAnnotations(a map[string]string) error {
	if len(a) > maxAnnots {
		return fmt.Errorf("manifest: %d annotations", len(a))
	}
	for k, v := range a {
		if len(v) > maxAnnotLen {
			return fmt.Errorf("manifest: annotation %q of %d bytes", k, len(v))
		}
	}
	return nil
}
