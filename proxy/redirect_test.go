package proxy

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/trustgate/trustgate/internal/peers"
)

// TestBlobRedirect: an upstream that sends blobs to a CDN on another host (as Docker Hub does) is
// followed by trustgate, the bytes are verified and served, and trustgate's upstream credentials
// never reach the CDN.
func TestBlobRedirect(t *testing.T) {
	reg := peers.StartRegistry(t)
	regURL, _ := url.Parse(reg.URL)
	img := peers.PushImage(t, reg, "library/alpine", "1")

	var mu sync.Mutex
	var cdnAuth []string
	cdnHits := 0
	cdnProxy := httputil.NewSingleHostReverseProxy(regURL)
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		cdnHits++
		if a := r.Header.Get("Authorization"); a != "" {
			cdnAuth = append(cdnAuth, a)
		}
		mu.Unlock()
		cdnProxy.ServeHTTP(w, r)
	}))
	t.Cleanup(cdn.Close)
	// Another host name for the same loopback address, so net/http treats it as cross-host.
	cdnBase := strings.Replace(cdn.URL, "127.0.0.1", "localhost", 1)

	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("tg:pw"))
	regProxy := httputil.NewSingleHostReverseProxy(regURL)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != want {
			w.Header().Set("WWW-Authenticate", `Basic realm="front"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			http.Redirect(w, r, cdnBase+r.URL.Path, http.StatusTemporaryRedirect)
			return
		}
		regProxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	frontURL, _ := url.Parse(front.URL)
	trust := newFakeTrust()
	trust.sign("docker.io/library/alpine", "1", img, "targets")
	s, err := New(Options{
		Upstreams: []*Upstream{{Name: "docker.io", URL: frontURL, DockerHub: true, Username: "tg", Password: "pw", Trust: trust}},
		Default:   "docker.io", Policy: mustPolicy(t), TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := &env{t: t, srv: s, http: newTestHTTP(t, s)}
	if r := e.get("/v2/alpine/manifests/1"); r.status != 200 {
		t.Fatalf("manifest: %d %s", r.status, r.body)
	}
	for _, l := range img.Layers {
		r := e.get("/v2/alpine/blobs/" + l.Digest)
		if r.status != 200 || sha(r.body) != l.Digest {
			t.Errorf("blob %s: %d", l.Digest, r.status)
		}
		if r.header.Get("Location") != "" {
			t.Errorf("redirect passed to the client")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if cdnHits < len(img.Layers) {
		t.Errorf("CDN hits %d: redirect not followed", cdnHits)
	}
	if len(cdnAuth) != 0 {
		t.Errorf("upstream credentials leaked to the CDN: %q", cdnAuth)
	}
}
