package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

func TestRedirectPolicy(t *testing.T) {
	names := map[string][]netip.Addr{
		"cdn.example.com":      {netip.MustParseAddr("93.184.216.34")},
		"metadata.example.com": {netip.MustParseAddr("169.254.169.254")},
		"mixed.example.com":    {netip.MustParseAddr("10.0.0.8"), netip.MustParseAddr("127.0.0.1")},
		"storage.corp":         {netip.MustParseAddr("10.1.2.3")},
	}
	resolve := func(_ context.Context, host string) ([]netip.Addr, error) {
		if a, ok := names[host]; ok {
			return a, nil
		}
		return nil, errors.New("no such host")
	}
	for _, tc := range []struct {
		name, upstream, from, to string
		hops                     int
		ok                       bool
	}{
		{"CDN on a public name", "registry-1.docker.io", "https://registry-1.docker.io/v2/x", "https://cdn.example.com/blob", 1, true},
		{"storage on a private address", "registry.corp", "https://registry.corp/v2/x", "https://storage.corp/blob", 1, true},
		{"private IP literal", "registry.corp", "http://registry.corp/v2/x", "http://10.9.9.9/blob", 1, true},
		{"cloud metadata literal", "registry.corp", "http://registry.corp/v2/x", "http://169.254.169.254/latest/meta-data/", 1, false},
		{"cloud metadata by name", "registry.corp", "http://registry.corp/v2/x", "http://metadata.example.com/", 1, false},
		{"IPv6 link-local", "registry.corp", "http://registry.corp/v2/x", "http://[fe80::1]/", 1, false},
		{"IPv4-mapped metadata", "registry.corp", "http://registry.corp/v2/x", "http://[::ffff:169.254.169.254]/", 1, false},
		{"loopback from a remote upstream", "registry.corp", "http://registry.corp/v2/x", "http://127.0.0.1:2375/containers/json", 1, false},
		{"a name with one loopback address", "registry.corp", "http://registry.corp/v2/x", "http://mixed.example.com/", 1, false},
		{"unspecified", "registry.corp", "http://registry.corp/v2/x", "http://0.0.0.0:8080/", 1, false},
		{"loopback upstream to loopback", "127.0.0.1", "http://127.0.0.1:5000/v2/x", "http://127.0.0.1:5001/blob", 1, true},
		{"https to plain http", "registry.corp", "https://registry.corp/v2/x", "http://storage.corp/blob", 1, false},
		{"other scheme", "registry.corp", "https://registry.corp/v2/x", "file:///etc/passwd", 1, false},
		{"unresolvable", "registry.corp", "https://registry.corp/v2/x", "https://nowhere.invalid/", 1, false},
		{"too many hops", "registry.corp", "https://registry.corp/v2/x", "https://cdn.example.com/blob", maxRedirects, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newRedirectPolicy(tc.upstream)
			p.resolve = resolve
			from, _ := http.NewRequest(http.MethodGet, tc.from, nil)
			to, _ := http.NewRequest(http.MethodGet, tc.to, nil)
			via := make([]*http.Request, tc.hops)
			for i := range via {
				via[i] = from
			}
			err := p.check(to, via)
			if (err == nil) != tc.ok {
				t.Fatalf("check(%s) = %v, want allowed=%t", tc.to, err, tc.ok)
			}
			if err != nil && !errors.Is(err, errRedirectRefused) {
				t.Fatalf("error %v does not wrap errRedirectRefused", err)
			}
		})
	}
}

// TestRedirectToHostRefused: an upstream of a repository in off mode (bytes relayed unverified)
// redirects the manifest fetch to 0.0.0.0, which on Linux reaches services listening on
// trustgate's own host. trustgate answers 503 without dialling it. (The test uses 0.0.0.0 rather
// than the metadata address so that a regression dials nothing off this machine.)
func TestRedirectToHostRefused(t *testing.T) {
	var hits atomic.Int32
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/vnd.docker.distribution.manifest.v2+json")
		_, _ = w.Write([]byte(`{"secret":"internal"}`))
	}))
	t.Cleanup(internal.Close)
	_, port, _ := net.SplitHostPort(internal.Listener.Addr().String())
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") {
			http.Redirect(w, r, "http://0.0.0.0:"+port+"/", http.StatusTemporaryRedirect)
			return
		}
		w.WriteHeader(http.StatusOK) // /v2/ ping
	}))
	t.Cleanup(redirector.Close)
	u, _ := url.Parse(redirector.URL)
	s, err := New(Options{
		Upstreams: []*Upstream{{Name: "docker.io", URL: u, DockerHub: true, Trust: newFakeTrust()}},
		Default:   "docker.io", Policy: mustPolicy(t), TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := &env{t: t, srv: s, http: newTestHTTP(t, s)}
	r := e.get("/v2/off/app/manifests/latest")
	if r.status != http.StatusServiceUnavailable || hits.Load() != 0 {
		t.Fatalf("off-mode manifest redirected to 0.0.0.0: %d %s, internal service asked %d times; want 503 and none",
			r.status, r.body, hits.Load())
	}
}
