package proxy

import (
	"mime"
	"strings"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker's manifest media types, as distribution names them (manifest/schema2, manifest/manifestlist).
const (
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// acceptSet is what a client's Accept header says about the four manifest media types a
// distribution registry negotiates. Nothing else in the header matters, so nothing else is kept:
// however large the header, the set is four booleans.
type acceptSet struct {
	ociManifest, ociIndex, dockerManifest, dockerList bool
}

// parseAccept reads every Accept line as distribution v3.1.2 does (registry/handlers/manifests.go,
// GetManifest): each line is split on ",", each item parsed with mime.ParseMediaType (items that do
// not parse are skipped), and a type counts as listed only when named exactly. Wildcards such as
// */* list nothing, and q values, including q=0, are ignored.
func parseAccept(lines []string) acceptSet {
	var a acceptSet
	for _, line := range lines {
		for item := range strings.SplitSeq(line, ",") {
			mt, _, err := mime.ParseMediaType(item)
			if err != nil {
				continue
			}
			switch mt {
			case v1.MediaTypeImageManifest:
				a.ociManifest = true
			case v1.MediaTypeImageIndex:
				a.ociIndex = true
			case mediaTypeDockerManifest:
				a.dockerManifest = true
			case mediaTypeDockerManifestList:
				a.dockerList = true
			}
		}
	}
	return a
}

// accepts reports whether a manifest of mediaType may be served to the client, by what
// distribution v3.1.2 does: an OCI image manifest only if the client listed
// application/vnd.oci.image.manifest.v1+json, and every other manifest whatever the client listed.
// So a client asking only for OCI types or for application/json gets a Docker schema2 manifest,
// from distribution and from trustgate.
//
// An OCI index is served to any client too. GetManifest means to require
// application/vnd.oci.image.index.v1+json, but it tests for the index with a type assertion on
// *manifestlist.DeserializedManifestList, and v3 deserialises an OCI index as
// *ocischema.DeserializedImageIndex, so the test never fires and the registry serves the index;
// trustgate answers as the registry does, not as its comment says.
//
// A Docker manifest list is served as it is, as distribution serves it by digest. By tag, to a
// client that does not list the manifest-list type, distribution instead rewrites the answer to
// the list's linux/amd64 image; trustgate never converts (the signature binds the tag to the list's
// digest), so such a client gets the list.
func (a acceptSet) accepts(mediaType string) bool {
	if mediaType == v1.MediaTypeImageManifest {
		return a.ociManifest
	}
	return true
}

// String names the negotiated manifest types the client listed, for error messages; it never
// echoes the client's header, which may be tens of kilobytes.
func (a acceptSet) String() string {
	var out []string
	for _, t := range []struct {
		listed bool
		name   string
	}{
		{a.ociManifest, v1.MediaTypeImageManifest},
		{a.ociIndex, v1.MediaTypeImageIndex},
		{a.dockerManifest, mediaTypeDockerManifest},
		{a.dockerList, mediaTypeDockerManifestList},
	} {
		if t.listed {
			out = append(out, t.name)
		}
	}
	if len(out) == 0 {
		return "no manifest media type listed"
	}
	return "lists " + strings.Join(out, ", ")
}
