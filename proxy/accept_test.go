package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/trustgate/trustgate/internal/peers"
)

const (
	ociManifest = v1.MediaTypeImageManifest
	ociIndex    = v1.MediaTypeImageIndex
	docker2     = mediaTypeDockerManifest
	dockerList  = mediaTypeDockerManifestList
)

// containerdAccept is the one line containerd sends when resolving a manifest.
var containerdAccept = docker2 + ", " + dockerList + ", " + ociManifest + ", " + ociIndex + ", */*"

// TestAcceptsAsDistribution is what distribution v3.1.2's GetManifest does, case by case: the OCI
// image manifest type must be listed exactly (no wildcard, q ignored); everything else, the OCI
// index included, is served whatever the client listed.
func TestAcceptsAsDistribution(t *testing.T) {
	tests := []struct {
		name      string
		accept    []string
		mediaType string
		want      bool
	}{
		{"schema2, no Accept", nil, docker2, true},
		{"schema2, OCI types only", []string{ociManifest + ", " + ociIndex}, docker2, true},
		{"schema2, application/json only", []string{"application/json"}, docker2, true},
		{"schema2, garbage", []string{"text", "/", ";;;,,,"}, docker2, true},
		{"list, schema2 only", []string{docker2}, dockerList, true},
		{"list, no Accept", nil, dockerList, true},
		{"OCI manifest, listed", []string{ociManifest}, ociManifest, true},
		{"OCI manifest, listed among others on one line", []string{containerdAccept}, ociManifest, true},
		{"OCI manifest, listed on its own line", []string{dockerList, ociIndex, ociManifest}, ociManifest, true},
		{"OCI manifest, with parameters and case", []string{"Application/VND.OCI.Image.Manifest.v1+JSON ; charset=utf-8"}, ociManifest, true},
		{"OCI manifest, q=0 is ignored as distribution ignores q", []string{ociManifest + ";q=0"}, ociManifest, true},
		{"OCI manifest, no Accept", nil, ociManifest, false},
		{"OCI manifest, */*", []string{"*/*"}, ociManifest, false},
		{"OCI manifest, application/*", []string{"application/*"}, ociManifest, false},
		{"OCI manifest, application/json", []string{"application/json"}, ociManifest, false},
		{"OCI manifest, schema2 only", []string{docker2}, ociManifest, false},
		{"OCI manifest, index only", []string{ociIndex}, ociManifest, false},
		{"OCI manifest, unparsable item", []string{ociManifest + ";="}, ociManifest, false},
		{"OCI index, listed", []string{ociIndex}, ociIndex, true},
		{"OCI index, manifest only", []string{ociManifest}, ociIndex, true},
		{"OCI index, no Accept", nil, ociIndex, true},
		{"OCI index, application/json", []string{"application/json"}, ociIndex, true},
		{"unknown type, nothing listed", []string{"application/json"}, "application/vnd.example+json", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseAccept(tt.accept).accepts(tt.mediaType); got != tt.want {
				t.Errorf("Accept %q, %s: accepts = %v, want %v", tt.accept, tt.mediaType, got, tt.want)
			}
		})
	}
}

// TestAccept: trustgate answers narrow Accept headers with the status the real distribution
// registry gives for the same manifest, and always with the signed bytes, never converted.
func TestAccept(t *testing.T) {
	reg := peers.StartRegistry(t)
	e := newEnv(t, reg, envConfig{})
	pushed := map[string]peers.Pushed{
		"schema2": peers.PushImage(t, reg, "library/alpine", "schema2"),
		"oci":     peers.PushOCIImage(t, reg, "library/alpine", "oci"),
		"index":   peers.PushIndex(t, reg, "library/alpine", "index"),
		"list":    peers.PushDockerList(t, reg, "library/alpine", "list"),
	}
	for tag, p := range pushed {
		e.trust.sign("docker.io/library/alpine", tag, p, "targets")
	}
	for tag, want := range map[string]string{"schema2": docker2, "oci": ociManifest, "index": ociIndex, "list": dockerList} {
		if pushed[tag].MediaType != want {
			t.Fatalf("pushed %s as %s, want %s", tag, pushed[tag].MediaType, want)
		}
	}
	// Statuses for schema2, oci, index, list, as distribution v3.1.2 answers them.
	cases := []struct {
		name   string
		accept []string
		want   [4]int
	}{
		{"none", nil, [4]int{200, 404, 200, 200}},
		{"OCI manifest only", []string{ociManifest}, [4]int{200, 200, 200, 200}},
		{"OCI index only", []string{ociIndex}, [4]int{200, 404, 200, 200}},
		{"both OCI types", []string{ociManifest + ", " + ociIndex}, [4]int{200, 200, 200, 200}},
		{"application/json only", []string{"application/json"}, [4]int{200, 404, 200, 200}},
		{"schema2 only", []string{docker2}, [4]int{200, 404, 200, 200}},
		{"list only", []string{dockerList}, [4]int{200, 404, 200, 200}},
		{"star", []string{"*/*"}, [4]int{200, 404, 200, 200}},
		{"containerd", []string{containerdAccept}, [4]int{200, 200, 200, 200}},
		{"q=0 ignored", []string{ociManifest + ";q=0"}, [4]int{200, 200, 200, 200}},
		{"garbage", []string{"text", "/"}, [4]int{200, 404, 200, 200}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for i, tag := range []string{"schema2", "oci", "index", "list"} {
				p := pushed[tag]
				hdr := http.Header{"Accept": c.accept}
				// The registry itself, by digest (by tag it rewrites a manifest list for a client that
				// does not list its type; by digest it serves it, as trustgate always does).
				if r := registryDo(t, reg, http.MethodGet, "/v2/library/alpine/manifests/"+p.Digest, hdr); r.status != c.want[i] {
					t.Fatalf("the table is wrong: registry answers %s with %d, table says %d", tag, r.status, c.want[i])
				}
				for _, ref := range []string{tag, p.Digest} {
					for _, m := range []string{http.MethodGet, http.MethodHead} {
						r := e.do(m, "/v2/alpine/manifests/"+ref, hdr)
						if r.status != c.want[i] {
							t.Errorf("%s %s (%s): %d, want %d as distribution; body %s", m, ref, tag, r.status, c.want[i], r.body)
							continue
						}
						if r.status == http.StatusOK && (r.header.Get("Docker-Content-Digest") != p.Digest || r.header.Get("Content-Type") != p.MediaType) {
							t.Errorf("%s %s (%s): served %s %s, want the signed %s %s", m, ref, tag,
								r.header.Get("Content-Type"), r.header.Get("Docker-Content-Digest"), p.MediaType, p.Digest)
						}
						if r.status == http.StatusNotFound && m == http.MethodGet {
							expectError(t, r, http.StatusNotFound, "MANIFEST_UNKNOWN", p.MediaType, "never converts")
						}
					}
				}
			}
		})
	}
}

// TestHugeAcceptIsNotEchoed: a refusal names the manifest's type and what the client listed, but
// does not copy the client's Accept header (up to the server's header limit) into the body.
func TestHugeAcceptIsNotEchoed(t *testing.T) {
	reg := peers.StartRegistry(t)
	e := newEnv(t, reg, envConfig{})
	p := peers.PushOCIImage(t, reg, "library/alpine", "oci")
	e.trust.sign("docker.io/library/alpine", "oci", p, "targets")
	var b strings.Builder
	for i := 0; b.Len() < 56<<10; i++ {
		fmt.Fprintf(&b, "application/vnd.example.junk-%d+json, ", i)
	}
	b.WriteString(docker2)
	r := e.do(http.MethodGet, "/v2/alpine/manifests/oci", http.Header{"Accept": {b.String()}})
	expectError(t, r, http.StatusNotFound, "MANIFEST_UNKNOWN", ociManifest, "lists "+docker2)
	if len(r.body) > 1024 || strings.Contains(string(r.body), "junk") {
		t.Errorf("a %d-byte Accept header made a %d-byte error body: %.300s", b.Len(), len(r.body), r.body)
	}
}

// registryDo asks the upstream registry directly.
func registryDo(t *testing.T, reg *peers.Registry, method, path string, hdr http.Header) response {
	t.Helper()
	req, err := http.NewRequest(method, reg.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return response{status: resp.StatusCode, header: resp.Header}
}
