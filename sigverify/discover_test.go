package sigverify

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/opencontainers/go-digest"
)

// fakeFetcher is a registry in memory: manifests by tag and by digest, and injected failures.
type fakeFetcher struct {
	manifests map[string][]byte // tag or digest → bytes
	referrers []byte            // nil: the API is absent (404)
	fail      map[string]error  // ref → error
	lie       map[string][]byte // digest → bytes that don't hash to it
}

func (f *fakeFetcher) Manifest(_ context.Context, ref string, max int64) ([]byte, digest.Digest, error) {
	if err := f.fail[ref]; err != nil {
		return nil, "", err
	}
	if b, ok := f.lie[ref]; ok {
		return b, digest.FromBytes(b), nil
	}
	b, ok := f.manifests[ref]
	if !ok {
		return nil, "", fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	if int64(len(b)) > max {
		return nil, "", errors.New("too large")
	}
	return b, digest.FromBytes(b), nil
}

func (f *fakeFetcher) Blob(context.Context, digest.Digest, int64) ([]byte, error) {
	return nil, ErrNotFound
}

func (f *fakeFetcher) Referrers(context.Context, digest.Digest, int64) ([]byte, error) {
	if err := f.fail["referrers"]; err != nil {
		return nil, err
	}
	if f.referrers == nil {
		return nil, ErrNotFound
	}
	return f.referrers, nil
}

const image = digest.Digest("sha256:1111111111111111111111111111111111111111111111111111111111111111")

func sigManifest(layerType, note string) []byte {
	return fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":%q,
"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},
"layers":[{"mediaType":%q,"digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":10,"annotations":{"n":%q}}],
"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":100}}`, layerType, layerType, note, image)
}

func index(ds ...[]byte) []byte {
	s := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`
	for i, b := range ds {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d}`, digest.FromBytes(b), len(b))
	}
	return []byte(s + "]}")
}

func TestDiscover(t *testing.T) {
	bundle := sigManifest("application/vnd.dev.sigstore.bundle.v0.3+json", "bundle")
	notation := sigManifest("application/vnd.cncf.notary.signature", "jws")
	legacy := sigManifest("application/vnd.dev.cosign.simplesigning.v1+json", "legacy")
	byDigest := func(bs ...[]byte) map[string][]byte {
		m := map[string][]byte{}
		for _, b := range bs {
			m[digest.FromBytes(b).String()] = b
		}
		return m
	}
	with := func(m map[string][]byte, k string, v []byte) map[string][]byte { m[k] = v; return m }
	boom := errors.New("connection reset")

	for _, c := range []struct {
		name    string
		f       *fakeFetcher
		want    []string // Via of each artifact found, in order
		wantErr bool
	}{
		{"nothing anywhere", &fakeFetcher{}, nil, false},
		{"referrers API", &fakeFetcher{referrers: index(bundle, notation), manifests: byDigest(bundle, notation)},
			[]string{ViaReferrers, ViaReferrers}, false},
		{"tag schema index", &fakeFetcher{manifests: with(byDigest(bundle, notation), IndexTag(image), index(bundle, notation))},
			[]string{ViaTagIndex, ViaTagIndex}, false},
		{"legacy .sig tag", &fakeFetcher{manifests: map[string][]byte{SigTag(image): legacy}}, []string{ViaSigTag}, false},
		{"both places list the same artifact once", &fakeFetcher{referrers: index(bundle),
			manifests: with(byDigest(bundle), IndexTag(image), index(bundle))}, []string{ViaReferrers}, false},
		{"all three", &fakeFetcher{referrers: index(notation),
			manifests: with(with(byDigest(bundle, notation), IndexTag(image), index(bundle)), SigTag(image), legacy)},
			[]string{ViaReferrers, ViaTagIndex, ViaSigTag}, false},
		{"referrers fail, the tag schema still answers", &fakeFetcher{fail: map[string]error{"referrers": boom},
			manifests: with(byDigest(bundle), IndexTag(image), index(bundle))}, []string{ViaTagIndex}, true},
		{"an entry whose bytes don't hash to its digest", &fakeFetcher{referrers: index(bundle),
			lie: map[string][]byte{digest.FromBytes(bundle).String(): notation}}, nil, true},
		{"an entry that is gone: not an error", &fakeFetcher{referrers: index(bundle)}, nil, false},
		{"the index tag fails", &fakeFetcher{fail: map[string]error{IndexTag(image): boom}}, nil, true},
		{"garbage index", &fakeFetcher{referrers: []byte("{"), manifests: map[string][]byte{IndexTag(image): []byte("[]")}}, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			arts, err := Discover(context.Background(), c.f, image)
			var got []string
			for _, a := range arts {
				got = append(got, a.Via)
				if a.Digest == "" || len(a.Layers) != 1 {
					t.Errorf("artifact %+v", a)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("found %v, want %v", got, c.want)
			}
			if (err != nil) != c.wantErr || (err != nil && !errors.Is(err, ErrUnavailable)) {
				t.Errorf("err = %v, want error: %t (ErrUnavailable)", err, c.wantErr)
			}
		})
	}
}

func TestDiscoverBounded(t *testing.T) {
	var ms [][]byte
	f := &fakeFetcher{manifests: map[string][]byte{}}
	for i := range 3 * MaxArtifacts {
		m := sigManifest("x/y", fmt.Sprint(i))
		ms = append(ms, m)
		f.manifests[digest.FromBytes(m).String()] = m
	}
	f.referrers = index(ms...)
	arts, err := Discover(context.Background(), f, image)
	if err != nil || len(arts) != MaxArtifacts {
		t.Errorf("found %d (%v), want the cap %d", len(arts), err, MaxArtifacts)
	}
}

func TestParseManifest(t *testing.T) {
	good := sigManifest("application/vnd.cncf.notary.signature", "x")
	if a, err := ParseManifest(good); err != nil || a.ArtifactType != "application/vnd.cncf.notary.signature" || a.Subject.Digest != image {
		t.Errorf("ParseManifest = %+v, %v", a, err)
	}
	for name, b := range map[string]string{
		"not json":      "{",
		"schema 1":      `{"schemaVersion":1}`,
		"an index":      `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","layers":[]}`,
		"no layers":     `{"schemaVersion":2,"config":{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}`,
		"bad layer":     `{"schemaVersion":2,"config":{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[{"digest":"md5:x"}]}`,
		"bad subject":   `{"schemaVersion":2,"config":{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[{"digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222"}],"subject":{"digest":"x"}}`,
		"bad config":    `{"schemaVersion":2,"layers":[{"digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222"}]}`,
		"negative size": `{"schemaVersion":2,"config":{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[{"digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":-1}]}`,
	} {
		if _, err := ParseManifest([]byte(b)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseIndex(t *testing.T) {
	if ds, err := ParseIndex(index(sigManifest("a/b", "1"), sigManifest("a/b", "2"))); err != nil || len(ds) != 2 {
		t.Errorf("ParseIndex = %v, %v", ds, err)
	}
	ds, err := ParseIndex([]byte(`{"schemaVersion":2,"manifests":[{"digest":"nope"},{"digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":-5}]}`))
	if err != nil || len(ds) != 0 {
		t.Errorf("invalid entries kept: %v, %v", ds, err)
	}
	for _, b := range []string{"{", `{"schemaVersion":1}`, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`} {
		if _, err := ParseIndex([]byte(b)); err == nil {
			t.Errorf("%s: accepted", b)
		}
	}
}

func FuzzParseIndex(f *testing.F) {
	f.Add(index(sigManifest("a/b", "1")))
	f.Fuzz(func(t *testing.T, b []byte) {
		ds, err := ParseIndex(b)
		if err != nil {
			return
		}
		if len(ds) > maxIndexEntries {
			t.Fatalf("%d entries", len(ds))
		}
		for _, d := range ds {
			if d.Digest.Validate() != nil || d.Size < 0 {
				t.Fatalf("invalid entry kept: %+v", d)
			}
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	f.Add(sigManifest("application/vnd.cncf.notary.signature", "x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseManifest(b)
		if err != nil {
			return
		}
		if len(a.Layers) == 0 || len(a.Layers) > maxLayers {
			t.Fatalf("%d layers", len(a.Layers))
		}
		for _, l := range a.Layers {
			if l.Digest.Validate() != nil {
				t.Fatalf("invalid layer kept: %+v", l)
			}
		}
		if a.Subject != nil && a.Subject.Digest.Validate() != nil {
			t.Fatalf("invalid subject kept")
		}
	})
}
