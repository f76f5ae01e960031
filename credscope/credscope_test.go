package credscope

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// TestAllows is the one table of where credentials may go; the resolver and the proxy both rely
// on it.
func TestAllows(t *testing.T) {
	tests := []struct {
		name, server string
		realms       []string
		target       string
		want         bool
	}{
		{"own origin", "https://notary.example.com", nil, "https://notary.example.com/v2/x/_trust/tuf/root.json", true},
		{"own origin, explicit default port", "https://notary.example.com", nil, "https://notary.example.com:443/token", true},
		{"own origin, server URL with a path", "https://example.com/notary", nil, "https://example.com/token", true},
		{"host case and trailing dot", "https://Notary.Example.com", nil, "https://notary.example.com./token", true},
		{"same host, other port, https", "https://notary.example.com:4443", nil, "https://notary.example.com:5001/auth", true},
		{"same host, other port, plain http server", "http://127.0.0.1:4443", nil, "http://127.0.0.1:5001/auth", true},
		{"same host, plain http when the server is https", "https://notary.example.com", nil, "http://notary.example.com/token", false},
		{"same host:port, plain http when the server is https", "https://127.0.0.1:4443", nil, "http://127.0.0.1:4443/token", false},
		{"another host", "https://notary.example.com", nil, "https://evil.example.net/token", false},
		{"a subdomain", "https://example.com", nil, "https://auth.example.com/token", false},
		{"a sibling under the parent domain", "https://registry-1.docker.io", nil, "https://auth.docker.io/token", false},
		{"a suffix look-alike", "https://docker.io", nil, "https://evildocker.io/token", false},
		{"another loopback name", "http://127.0.0.1:4443", nil, "http://localhost:4443/token", false},
		{"another host over plain http", "http://127.0.0.1:4443", nil, "http://127.0.0.2:4443/token", false},
		{"IPv4-mapped IPv6 is the same address", "http://127.0.0.1:4443", nil, "http://[::ffff:127.0.0.1]:4443/x", true},
		{"IPv6 forms", "https://[::1]:4443", nil, "https://[0:0::1]:4443/x", true},
		{"configured realm", "https://registry-1.docker.io", []string{"https://auth.docker.io"}, "https://auth.docker.io/token?scope=x", true},
		{"configured realm, trailing slash", "https://registry-1.docker.io", []string{"https://auth.docker.io/"}, "https://auth.docker.io/token", true},
		{"configured realm is an origin: other port", "https://registry-1.docker.io", []string{"https://auth.docker.io"}, "https://auth.docker.io:8443/token", false},
		{"configured realm is an origin: plain http", "https://registry-1.docker.io", []string{"https://auth.docker.io"}, "http://auth.docker.io/token", false},
		{"configured plain-http realm", "http://127.0.0.1:4443", []string{"http://10.0.0.5:5001"}, "http://10.0.0.5:5001/auth", true},
		{"not http", "https://notary.example.com", nil, "ftp://notary.example.com/x", false},
		{"no host", "https://notary.example.com", nil, "https:///x", false},
		{"port zero", "https://notary.example.com", nil, "https://notary.example.com:0/x", false},
		{"leading-zero port is the same port", "https://notary.example.com:4443", nil, "https://notary.example.com:04443/x", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.server, tc.realms)
			if err != nil {
				t.Fatal(err)
			}
			u, err := url.Parse(tc.target)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Allows(u); got != tc.want {
				t.Errorf("New(%q, %q).Allows(%q) = %v, want %v", tc.server, tc.realms, tc.target, got, tc.want)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		server string
		realms []string
	}{
		{"notary.example.com", nil},
		{"ftp://notary.example.com", nil},
		{"https://", nil},
		{"https://notary.example.com", []string{"auth.docker.io"}},
		{"https://notary.example.com", []string{"https://auth.docker.io/token"}},
		{"https://notary.example.com", []string{"https://auth.docker.io?x=1"}},
		{"https://notary.example.com", []string{"https://user:pw@auth.docker.io"}},
		{"https://notary.example.com", []string{"https://auth.docker.io#f"}},
		{"https://notary.example.com", []string{""}},
	}
	for _, tc := range tests {
		if _, err := New(tc.server, tc.realms); err == nil {
			t.Errorf("New(%q, %q) accepted", tc.server, tc.realms)
		}
	}
	var zero *Scope
	if zero.Allows(&url.URL{Scheme: "https", Host: "x"}) || (&Scope{}).Allows(&url.URL{Scheme: "https", Host: "x"}) {
		t.Error("an empty scope allows something")
	}
}

// TestTransport: the guard removes Authorization from requests outside the scope and leaves the
// caller's request untouched.
func TestTransport(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
	}))
	defer srv.Close()
	s, err := New("https://notary.example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	rt := s.Transport(nil)
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Authorization", "Basic c2VjcmV0")
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(got) != 1 || got[0] != "" {
		t.Errorf("server outside the scope saw Authorization %q", got)
	}
	if req.Header.Get("Authorization") == "" {
		t.Error("the caller's request was modified")
	}
	// Inside the scope the header passes.
	s2, _ := New(srv.URL, nil)
	resp, err = s2.Transport(nil).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(got) != 2 || got[1] != "Basic c2VjcmV0" {
		t.Errorf("server inside the scope saw %q", got)
	}
}
