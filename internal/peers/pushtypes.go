package peers

import (
	"context"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// PushOCIImage pushes a small random linux/amd64 image as an OCI image manifest (PushImage pushes
// Docker schema2), for tests where the manifest's media type matters.
func PushOCIImage(tb testing.TB, reg *Registry, repo, tag string) Pushed {
	tb.Helper()
	img := mutate.ConfigMediaType(mutate.MediaType(randomImage(tb, "amd64"), types.OCIManifestSchema1), types.OCIConfigJSON)
	return writeImage(tb, reg, repo, tag, img)
}

// PushDockerList pushes a Docker manifest list (linux/amd64 + linux/arm64 schema2 images) as
// repo:tag; PushIndex pushes an OCI index.
func PushDockerList(tb testing.TB, reg *Registry, repo, tag string) Pushed {
	tb.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.DockerManifestList)
	for _, arch := range []string{"amd64", "arm64"} {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        randomImage(tb, arch),
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	ref := reference(tb, reg, repo, tag, idx)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx)); err != nil {
		tb.Fatalf("peers: pushing manifest list %s: %v", ref, err)
	}
	return describe(tb, repo, tag, idx)
}
