package bench

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	for _, tc := range []struct{ path, want string }{
		{"/v2/", "base"},
		{"/v2", "other"},
		{"/metrics", "other"},
		{"/v2/library/alpine/manifests/3.19", "manifest-tag"},
		{"/v2/library/alpine/manifests/sha256:" + hex, "manifest-digest"},
		{"/v2/a/b/c/blobs/sha256:" + hex, "blob"},
		{"/v2/a/blobs/uploads/", "upload"},
		{"/v2/a/blobs/uploads/123-abc", "upload"},
		{"/v2/a/tags/list", "tags"},
		{"/v2/docker.io/library/alpine/_trust/tuf/root.json", "tuf:root"},
		{"/v2/docker.io/library/alpine/_trust/tuf/2.root.json", "tuf:2.root"},
		{"/v2/docker.io/library/alpine/_trust/tuf/targets/releases.json", "tuf:targets/releases"},
		{"/v2/docker.io/library/alpine/_trust/tuf/snapshot." + hex + ".json", "tuf:snapshot.<checksum>"},
		{"/v2/docker.io/x/_trust/tuf/.json", "other"},
		{"/v2/docker.io/x/_trust/tuf/root", "other"},
		{"/v2/x/manifests/", "other"},
		{"/v2/x/blobs/", "other"},
	} {
		if got := Classify(tc.path); got != tc.want {
			t.Errorf("Classify(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

// TestCountingProxy sends real requests through the proxy and checks that they arrive unchanged,
// responses come back unchanged, and each is counted once under its method and kind.
func TestCountingProxy(t *testing.T) {
	var gotHost string
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost = r.Host
		w.Header().Set("Docker-Content-Digest", "sha256:x")
		io.WriteString(w, r.Method+" "+r.URL.Path)
	}))
	defer backend.Close()
	cp, err := StartCountingProxy(backend.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()

	do := func(method, path string) string {
		req, _ := http.NewRequest(method, cp.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.Header.Get("Docker-Content-Digest") != "sha256:x" {
			t.Errorf("%s %s: response headers not passed through: %v", method, path, resp.Header)
		}
		return string(b)
	}
	if got := do("GET", "/v2/r/manifests/v1"); got != "GET /v2/r/manifests/v1" {
		t.Errorf("body %q", got)
	}
	if gotHost != cp.Host {
		t.Errorf("backend saw Host %q, want the proxy's %q (registries build Location from it)", gotHost, cp.Host)
	}
	do("HEAD", "/v2/r/manifests/v1")
	mid := time.Now()
	do("GET", "/v2/r/manifests/v1")
	do("GET", "/v2/r/blobs/sha256:"+strings.Repeat("0", 64))

	c := cp.Counts()
	want := Counts{"GET manifest-tag": 2, "HEAD manifest-tag": 1, "GET blob": 1}
	if c.String() != want.String() {
		t.Errorf("counts = %s, want %s", c, want)
	}
	if c.Total() != 4 || c.Match("GET", "") != 3 || c.Match("", "manifest") != 3 {
		t.Errorf("Total/Match wrong for %s", c)
	}
	at := cp.Arrivals("GET", "manifest")
	if len(at) != 2 || at[0].After(mid) || at[1].Before(mid) {
		t.Errorf("GET manifest arrivals %v, want one before and one after %v", at, mid)
	}
	if n := len(cp.Arrivals("", "")); n != 4 {
		t.Errorf("%d arrivals of any kind, want 4", n)
	}
	cp.Reset()
	if n := cp.Counts().Total(); n != 0 {
		t.Errorf("after Reset: %d requests counted", n)
	}
	if n := len(cp.Arrivals("", "")); n != 0 {
		t.Errorf("after Reset: %d arrivals remembered", n)
	}
}
