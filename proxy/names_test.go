package proxy

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/trustgate/trustgate/policy"
)

func testServer(t *testing.T, def string) *Server {
	t.Helper()
	pol, err := policy.New(policy.Config{})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(name, u string, hub bool) *Upstream {
		pu, _ := url.Parse(u)
		return &Upstream{Name: name, URL: pu, DockerHub: hub, Trust: newFakeTrust()}
	}
	s, err := New(Options{
		Upstreams: []*Upstream{mk("docker.io", "https://registry-1.docker.io", true), mk("ghcr.io", "https://ghcr.io", false), mk("127.0.0.1:5000", "http://127.0.0.1:5000", false)},
		Default:   def, Policy: pol, TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestLocate(t *testing.T) {
	cases := []struct {
		name, query, def string
		up, repo, gun    string
		status           int
	}{
		{name: "alpine", def: "docker.io", up: "docker.io", repo: "library/alpine", gun: "docker.io/library/alpine"},
		{name: "library/alpine", def: "docker.io", up: "docker.io", repo: "library/alpine", gun: "docker.io/library/alpine"},
		{name: "a/b/c/d", def: "docker.io", up: "docker.io", repo: "a/b/c/d", gun: "docker.io/a/b/c/d"},
		{name: "alpine", query: "ns=docker.io", up: "docker.io", repo: "library/alpine", gun: "docker.io/library/alpine"},
		{name: "owner/img", query: "ns=ghcr.io", def: "docker.io", up: "ghcr.io", repo: "owner/img", gun: "ghcr.io/owner/img"},
		{name: "single", query: "ns=ghcr.io", up: "ghcr.io", repo: "single", gun: "ghcr.io/single"},                              // no library/ off Docker Hub
		{name: "ghcr.io/owner/img", up: "ghcr.io", repo: "owner/img", gun: "ghcr.io/owner/img"},                                  // path prefix
		{name: "docker.io/nginx", up: "docker.io", repo: "library/nginx", gun: "docker.io/library/nginx"},                        // prefix + library/
		{name: "127.0.0.1:5000/x/y", up: "127.0.0.1:5000", repo: "x/y", gun: "127.0.0.1:5000/x/y"},                               // a name with a port is only an upstream name
		{name: "docker.io/nginx", query: "ns=docker.io", up: "docker.io", repo: "library/nginx", gun: "docker.io/library/nginx"}, // prefix and ns agree
		{name: "ghcr.io/owner/img", query: "ns=docker.io", status: 400},                                                          // prefix contradicts ns
		{name: "ghcr.io", def: "docker.io", up: "docker.io", repo: "library/ghcr.io", gun: "docker.io/library/ghcr.io"},          // a lone segment is a name
		{name: "alpine", query: "ns=evil.example", def: "docker.io", status: 404},
		{name: "alpine", query: "ns=docker.io&ns=ghcr.io", def: "docker.io", status: 400},
		{name: "alpine", query: "ns=", def: "docker.io", status: 400},
		{name: "alpine", status: 404}, // no default, no ns, no prefix
		{name: "evil.example/x", status: 404},
		{name: "Alpine", def: "docker.io", status: 400},
		{name: "a//b", def: "docker.io", status: 400},
		{name: "a/./b", def: "docker.io", status: 400},
		{name: "a/-b", def: "docker.io", status: 400},
		{name: "127.0.0.1:5001/x", def: "docker.io", status: 400},
		{name: "docker.io/", def: "docker.io", status: 400},
	}
	for _, c := range cases {
		t.Run(c.name+"?"+c.query, func(t *testing.T) {
			s := testServer(t, c.def)
			r := httptest.NewRequest(http.MethodGet, "/v2/x/manifests/y?"+c.query, nil)
			ref, err := s.locate(r, c.name)
			if c.status != 0 {
				var ae *apiError
				if !errors.As(err, &ae) || ae.status != c.status {
					t.Fatalf("err = %v, want status %d", err, c.status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ref.up.cfg.Name != c.up || ref.repo != c.repo || ref.gun != c.gun {
				t.Errorf("got %s %s %s, want %s %s %s", ref.up.cfg.Name, ref.repo, ref.gun, c.up, c.repo, c.gun)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	pol, _ := policy.New(policy.Config{})
	u, _ := url.Parse("https://r.example")
	ok := func() *Upstream { return &Upstream{Name: "r", URL: u, Trust: newFakeTrust()} }
	cases := map[string]Options{
		"no policy":    {Upstreams: []*Upstream{ok()}},
		"no upstream":  {Policy: pol},
		"no trust":     {Policy: pol, Upstreams: []*Upstream{{Name: "r", URL: u}}},
		"duplicate":    {Policy: pol, Upstreams: []*Upstream{ok(), ok()}},
		"unknown def":  {Policy: pol, Upstreams: []*Upstream{ok()}, Default: "x"},
		"bad scheme":   {Policy: pol, Upstreams: []*Upstream{{Name: "r", URL: &url.URL{Scheme: "ftp", Host: "h"}, Trust: newFakeTrust()}}},
		"relative url": {Policy: pol, Upstreams: []*Upstream{{Name: "r", URL: &url.URL{Path: "/x"}, Trust: newFakeTrust()}}},
		"nil upstream": {Policy: pol, Upstreams: []*Upstream{nil}},
		"unnamed":      {Policy: pol, Upstreams: []*Upstream{{URL: u, Trust: newFakeTrust()}}},
	}
	for name, o := range cases {
		if s, err := New(o); err == nil {
			s.Close()
			t.Errorf("%s: New succeeded", name)
		}
	}
}
