package proxy

import (
	"encoding/json"
	"mime"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// manifestFields is the part of any image manifest or index trustgate needs: its declared media
// type and the descriptors that become pullable once the manifest itself is trusted. subject is
// deliberately absent: it points at the parent, and a referrer must not make its parent reachable.
type manifestFields struct {
	MediaType string          `json:"mediaType"`
	Config    *v1.Descriptor  `json:"config"`
	Layers    []v1.Descriptor `json:"layers"`
	Manifests []v1.Descriptor `json:"manifests"`
}

// describe extracts the media type and the digests a manifest references. Children with invalid
// digests are dropped, never trusted. The media type comes from the manifest itself, then from the
// upstream's Content-Type, then from the shape of the document, so HEAD and GET agree whatever the
// upstream sent.
func describe(body []byte, upstreamType string) (mediaType string, children []digest.Digest) {
	var m manifestFields
	if err := json.Unmarshal(body, &m); err != nil {
		return cleanMediaType(upstreamType, "application/octet-stream"), nil
	}
	add := func(d v1.Descriptor) {
		if d.Digest.Validate() == nil {
			children = append(children, d.Digest)
		}
	}
	if m.Config != nil {
		add(*m.Config)
	}
	for _, d := range m.Layers {
		add(d)
	}
	for _, d := range m.Manifests {
		add(d)
	}
	guess := v1.MediaTypeImageManifest
	if m.Manifests != nil {
		guess = v1.MediaTypeImageIndex
	}
	mediaType = cleanMediaType(m.MediaType, "")
	if mediaType == "" {
		mediaType = cleanMediaType(upstreamType, guess)
	}
	return mediaType, children
}

// cleanMediaType returns mt without parameters if it is a well-formed media type (it ends up in a
// response header), else def.
func cleanMediaType(mt, def string) string {
	if mt == "" || len(mt) > 255 {
		return def
	}
	parsed, _, err := mime.ParseMediaType(mt)
	if err != nil || !strings.Contains(parsed, "/") {
		return def
	}
	return parsed
}

// edgesOf returns a manifest's edges: index entries to walk, config and layers to allow, with the
// sizes their descriptors state (a negative one is recorded as unknown). Invalid digests are
// dropped, never trusted; bytes that are not a manifest have none.
func edgesOf(body []byte) Edges {
	var m manifestFields
	var e Edges
	if json.Unmarshal(body, &m) != nil {
		return e
	}
	blob := func(d v1.Descriptor) {
		if d.Digest.Validate() == nil {
			e.Blobs = append(e.Blobs, d.Digest)
			e.Sizes = append(e.Sizes, max(d.Size, -1))
		}
	}
	if m.Config != nil {
		blob(*m.Config)
	}
	for _, d := range m.Layers {
		blob(d)
	}
	for _, d := range m.Manifests {
		if d.Digest.Validate() == nil {
			e.Manifests = append(e.Manifests, d.Digest)
		}
	}
	return e
}
