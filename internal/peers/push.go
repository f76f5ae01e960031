package peers

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Pushed describes a manifest (image or index) now stored in a registry.
type Pushed struct {
	Repo      string // repository path, e.g. library/alpine
	Tag       string // "" when pushed by digest only
	Digest    string // sha256:<hex> of the manifest bytes as stored
	Size      int64  // manifest length in bytes
	MediaType string
	// Children are the platform manifests of an index, in index order.
	Children []Pushed
	// Layers are the layer blobs of an image.
	Layers []Blob
}

// Blob is a content-addressed blob in a registry.
type Blob struct {
	Digest string
	Size   int64
}

// Hex is the digest without the "sha256:" prefix, as `notary addhash --sha256` wants it.
func (p Pushed) Hex() string { return strings.TrimPrefix(p.Digest, "sha256:") }

// Ref is host/repo@digest.
func (p Pushed) Ref(host string) string { return host + "/" + p.Repo + "@" + p.Digest }

// PushImage pushes a small random image (linux/amd64, gzip'd tar layers, so dockerd can unpack it)
// to reg as repo:tag; tag "" pushes by digest only. Random content makes every call a new digest,
// which is what "the tag moved upstream" scenarios need.
func PushImage(tb testing.TB, reg *Registry, repo, tag string) Pushed {
	tb.Helper()
	img := randomImage(tb, "amd64")
	return writeImage(tb, reg, repo, tag, img)
}

// PushIndex pushes a multi-arch index (linux/amd64 + linux/arm64 random images) as repo:tag.
func PushIndex(tb testing.TB, reg *Registry, repo, tag string) Pushed {
	tb.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
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
		tb.Fatalf("peers: pushing index %s: %v", ref, err)
	}
	p := describe(tb, repo, tag, idx)
	im, err := idx.IndexManifest()
	if err != nil {
		tb.Fatal(err)
	}
	for _, d := range im.Manifests {
		child, err := idx.Image(d.Digest)
		if err != nil {
			tb.Fatal(err)
		}
		c := describe(tb, repo, "", child)
		c.Layers = layers(tb, child)
		p.Children = append(p.Children, c)
	}
	return p
}

func randomImage(tb testing.TB, arch string) v1.Image {
	tb.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		tb.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		tb.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Config.Cmd = []string{"/bin/true"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		tb.Fatal(err)
	}
	return img
}

func writeImage(tb testing.TB, reg *Registry, repo, tag string, img v1.Image) Pushed {
	tb.Helper()
	ref := reference(tb, reg, repo, tag, img)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		tb.Fatalf("peers: pushing image %s: %v", ref, err)
	}
	p := describe(tb, repo, tag, img)
	p.Layers = layers(tb, img)
	return p
}

type manifestDescriber interface {
	Digest() (v1.Hash, error)
	RawManifest() ([]byte, error)
	MediaType() (types.MediaType, error)
}

func reference(tb testing.TB, reg *Registry, repo, tag string, m manifestDescriber) name.Reference {
	tb.Helper()
	s := reg.Host + "/" + repo + ":" + tag
	if tag == "" {
		d, err := m.Digest()
		if err != nil {
			tb.Fatal(err)
		}
		s = reg.Host + "/" + repo + "@" + d.String()
	}
	ref, err := name.ParseReference(s, name.Insecure, name.StrictValidation)
	if err != nil {
		tb.Fatalf("peers: %v", err)
	}
	return ref
}

func describe(tb testing.TB, repo, tag string, m manifestDescriber) Pushed {
	tb.Helper()
	d, err := m.Digest()
	if err != nil {
		tb.Fatal(err)
	}
	raw, err := m.RawManifest()
	if err != nil {
		tb.Fatal(err)
	}
	mt, err := m.MediaType()
	if err != nil {
		tb.Fatal(err)
	}
	return Pushed{Repo: repo, Tag: tag, Digest: d.String(), Size: int64(len(raw)), MediaType: string(mt)}
}

func layers(tb testing.TB, img v1.Image) []Blob {
	tb.Helper()
	ls, err := img.Layers()
	if err != nil {
		tb.Fatal(err)
	}
	var out []Blob
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			tb.Fatal(err)
		}
		n, err := l.Size()
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, Blob{Digest: d.String(), Size: n})
	}
	return out
}

// Sign records p as the signed target for tag in gun (top-level targets unless a role is given) and
// publishes, exactly as a DCT push would: the target is the manifest digest and length.
func Sign(tb testing.TB, cli *NotaryCLI, gun, tag string, p Pushed, role ...string) {
	tb.Helper()
	cli.AddHash(gun, tag, p.Size, p.Hex(), role...)
	cli.Publish(gun)
}
