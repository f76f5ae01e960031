package demo

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// helloImage is a one-layer image for platform whose only file, /hello.txt, says text. The
// same arguments always give the same digest: no timestamps, no randomness.
func helloImage(text string, platform v1.Platform) (v1.Image, error) {
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	body := []byte(text + "\n")
	if err := tw.WriteHeader(&tar.Header{
		Name: "hello.txt", Mode: 0o644, Size: int64(len(body)),
		Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0), Format: tar.FormatPAX,
	}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(body); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tb.Bytes())), nil
	}, tarball.WithMediaType(types.DockerLayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = platform.OS, platform.Architecture, platform.Variant
	cf.Config.Cmd = []string{"/hello.txt"}
	cf.Config.Labels = map[string]string{"org.opencontainers.image.description": text}
	return mutate.ConfigFile(img, cf)
}

// hostPlatform is the platform single-platform samples claim, so that docker and containerd
// pull them without a platform mismatch.
func hostPlatform() v1.Platform {
	return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

// multiIndex is a Docker manifest list of hello images for linux/amd64 and linux/arm64, each
// with its platform in the list, as `docker buildx` pushes a multi-platform image.
func multiIndex() (v1.ImageIndex, []v1.Platform, error) {
	platforms := []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}}
	idx := mutate.IndexMediaType(empty.Index, types.DockerManifestList)
	for _, p := range platforms {
		img, err := helloImage("hello from "+p.String()+", signed in a multi-platform index", p)
		if err != nil {
			return nil, nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	return idx, platforms, nil
}
