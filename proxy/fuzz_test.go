package proxy

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// FuzzRoute sends arbitrary paths and ns values through the router and name mapping. Nothing may
// panic, every answer is a registry JSON error or a local success, and no upstream is dialled: the
// only upstream is unreachable, and every request that passes validation must name a valid
// repository of a configured upstream.
func FuzzRoute(f *testing.F) {
	for _, s := range []struct{ path, ns string }{
		{"/v2/", ""}, {"/v2/alpine/manifests/latest", ""}, {"/v2/library/alpine/manifests/sha256:abc", "docker.io"},
		{"/v2/docker.io/x/blobs/sha256:" + strings.Repeat("a", 64), ""}, {"/v2/a/b/c/tags/list", "ghcr.io"},
		{"/v2/x/manifests/manifests/manifests/y", ""}, {"/v2//manifests/x", ""}, {"/v2/x/referrers/sha256:00", "evil"},
	} {
		f.Add(s.path, s.ns)
	}
	pol := mustPolicy(f)
	u, _ := url.Parse("http://127.0.0.1:1")
	s, err := New(Options{
		Upstreams: []*Upstream{{Name: "docker.io", URL: u, DockerHub: true, Trust: newFakeTrust()}, {Name: "ghcr.io", URL: u, Trust: newFakeTrust()}},
		Default:   "docker.io", Policy: pol, TempDir: f.TempDir(),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	f.Fuzz(func(t *testing.T, path, ns string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		u := &url.URL{Path: path}
		if ns != "" {
			u.RawQuery = url.Values{"ns": {ns}}.Encode()
		}
		req := httptest.NewRequest(http.MethodGet, "http://trustgate.test/", nil)
		req.URL = u
		req.RequestURI = u.RequestURI()
		// Name mapping on its own: a success is a configured upstream and a valid repository.
		name := strings.TrimPrefix(path, "/v2/")
		if ref, err := s.locate(req, name); err == nil {
			if ref.up == nil || s.upstreams[ref.up.cfg.Name] != ref.up {
				t.Fatalf("locate(%q, ns=%q) chose an unconfigured upstream", name, ns)
			}
			if _, err := reference.WithName(validDomain + "/" + ref.repo); err != nil {
				t.Fatalf("locate(%q) accepted invalid repository %q", name, ref.repo)
			}
		} else {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status/100 != 4 {
				t.Fatalf("locate(%q): %v is not a client error", name, err)
			}
		}
		// Whole router, only for paths that can't reach the (unreachable) upstream slowly.
		if strings.Contains(path, "/manifests/") || strings.Contains(path, "/blobs/") || strings.Contains(path, "/tags/") || strings.Contains(path, "/referrers/") {
			return
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Header().Get("Docker-Distribution-API-Version") != "registry/2.0" {
			t.Fatalf("%s: no API version header", path)
		}
		if w.Code != http.StatusOK && w.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d without JSON error", path, w.Code)
		}
	})
}

// FuzzParseAccept: any set of Accept lines parses into a bounded summary, and distribution's rule
// holds: only the OCI image manifest type is ever refused, and listing a type always admits it.
func FuzzParseAccept(f *testing.F) {
	for _, s := range []string{
		"", "*/*", "application/vnd.oci.image.manifest.v1+json",
		"application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, */*",
		"application/*;q=0.5", "text/html;q=0", ";;;,,,", "a/b;q=0.000, */*;q=0",
		"APPLICATION/VND.OCI.IMAGE.INDEX.V1+JSON ; charset=utf-8",
	} {
		f.Add(s, "application/vnd.oci.image.manifest.v1+json")
	}
	f.Fuzz(func(t *testing.T, header, mediaType string) {
		lines := strings.Split(header, "\n")
		a := parseAccept(lines)
		if !a.accepts(mediaType) && mediaType != v1.MediaTypeImageManifest {
			t.Fatalf("%q refused; distribution refuses only the OCI image manifest type", mediaType)
		}
		if n := len(a.String()); n > 256 {
			t.Fatalf("summary of a %d-byte header is %d bytes", len(header), n)
		}
		if !parseAccept(append(lines, mediaType)).accepts(mediaType) {
			t.Fatalf("%q listed but not accepted", mediaType)
		}
	})
}

// FuzzDescribe: descriptor extraction from arbitrary bytes never panics and never yields an
// invalid digest or a media type unfit for a header.
func FuzzDescribe(f *testing.F) {
	for _, s := range []string{
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + strings.Repeat("a", 64) + `","size":1},"layers":[{"digest":"sha256:` + strings.Repeat("b", 64) + `","size":2}]}`,
		`{"schemaVersion":2,"manifests":[{"digest":"sha256:` + strings.Repeat("c", 64) + `","size":3},{"digest":"bogus"}]}`,
		`{"mediaType":"text/plain; charset=utf-8\r\nX: y"}`,
		`{"layers":null,"config":null}`, `[]`, `not json`, `{"subject":{"digest":"sha256:` + strings.Repeat("d", 64) + `"}}`,
	} {
		f.Add([]byte(s), "application/vnd.docker.distribution.manifest.v2+json")
	}
	f.Fuzz(func(t *testing.T, body []byte, upstreamType string) {
		mt, children := describe(body, upstreamType)
		if mt == "" || strings.ContainsAny(mt, "\r\n;") || len(mt) > 255 {
			t.Fatalf("media type %q unfit for a header", mt)
		}
		for _, c := range children {
			if err := digest.Digest(c).Validate(); err != nil {
				t.Fatalf("invalid child digest %q", c)
			}
		}
	})
}

// FuzzEdgesOf: a manifest's edges never include an invalid digest, whatever the bytes, and agree
// with describe on which children there are (edges split them into manifests and blobs).
func FuzzEdgesOf(f *testing.F) {
	for _, s := range []string{
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:` + strings.Repeat("a", 64) + `","size":1},"layers":[{"digest":"sha256:` + strings.Repeat("b", 64) + `","size":2}]}`,
		`{"schemaVersion":2,"manifests":[{"digest":"sha256:` + strings.Repeat("c", 64) + `","size":3},{"digest":"bogus"}]}`,
		`{"subject":{"digest":"sha256:` + strings.Repeat("d", 64) + `"},"layers":[]}`,
		`{"layers":null,"config":null}`, `[]`, `not json`, `{"manifests":[{"digest":"sha512:00"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e := edgesOf(body)
		_, children := describe(body, "")
		if len(e.Manifests)+len(e.Blobs) != len(children) {
			t.Fatalf("edges %+v disagree with describe's children %v", e, children)
		}
		for _, c := range append(slices.Clone(e.Manifests), e.Blobs...) {
			if err := c.Validate(); err != nil {
				t.Fatalf("invalid edge %q", c)
			}
		}
	})
}

// TestEdgesOf: which descriptors a manifest makes pullable. subject points at the parent: a
// referrer must not make its parent (or anything else) reachable through it.
func TestEdgesOf(t *testing.T) {
	d := func(c string) string { return "sha256:" + strings.Repeat(c, 64) }
	cases := []struct {
		name, body       string
		manifests, blobs []string
	}{
		{"image", `{"config":{"digest":"` + d("a") + `"},"layers":[{"digest":"` + d("b") + `"},{"digest":"` + d("c") + `"}]}`, nil, []string{d("a"), d("b"), d("c")}},
		{"index", `{"manifests":[{"digest":"` + d("a") + `"},{"digest":"` + d("b") + `"}]}`, []string{d("a"), d("b")}, nil},
		{"referrer", `{"subject":{"digest":"` + d("a") + `"},"config":{"digest":"` + d("b") + `"},"layers":[]}`, nil, []string{d("b")}},
		{"invalid digests dropped", `{"config":{"digest":"sha256:zz"},"layers":[{"digest":"` + d("c") + `"},{"digest":""}]}`, nil, []string{d("c")}},
		{"not a manifest", `<html>`, nil, nil},
		{"uppercase hex and unknown algorithms dropped", `{"layers":[{"digest":"sha256:` + strings.Repeat("A", 64) + `"},{"digest":"md5:` + strings.Repeat("a", 32) + `"},{"digest":"sha512:` + strings.Repeat("a", 128) + `"}]}`, nil, []string{"sha512:" + strings.Repeat("a", 128)}},
		{"both index and image", `{"manifests":[{"digest":"` + d("a") + `"}],"layers":[{"digest":"` + d("b") + `"}]}`, []string{d("a")}, []string{d("b")}},
		{"schema1 reaches nothing", `{"schemaVersion":1,"fsLayers":[{"blobSum":"` + d("a") + `"}]}`, nil, nil},
		{"artifact blobs reach nothing", `{"mediaType":"application/vnd.oci.artifact.manifest.v1+json","blobs":[{"digest":"` + d("a") + `"}]}`, nil, nil},
	}
	for _, c := range cases {
		e := edgesOf([]byte(c.body))
		got := func(ds []digest.Digest) []string {
			var out []string
			for _, x := range ds {
				out = append(out, x.String())
			}
			return out
		}
		if !slices.Equal(got(e.Manifests), c.manifests) || !slices.Equal(got(e.Blobs), c.blobs) {
			t.Errorf("%s: %+v", c.name, e)
		}
	}
	// A negative size is unknown, never a size; a huge one is what the descriptor states.
	e := edgesOf([]byte(`{"layers":[{"digest":"` + d("a") + `","size":-5},{"digest":"` + d("b") + `","size":9223372036854775807}]}`))
	if !slices.Equal(e.Sizes, []int64{-1, 1<<63 - 1}) {
		t.Errorf("sizes %v", e.Sizes)
	}
	if _, ok := e.size(0); ok {
		t.Errorf("negative size taken as known")
	}
}
