package credscope

import (
	"net/url"
	"testing"
)

// FuzzAllows checks the rule's invariants on arbitrary URLs: the server's own URL is always
// allowed; anything allowed is either a configured realm or on the server's host; nothing goes
// over plain http to a host other than the server's unless that exact origin is configured.
func FuzzAllows(f *testing.F) {
	f.Add("https://notary.example.com:4443", "https://auth.example.com", "https://notary.example.com:5001/token")
	f.Add("http://127.0.0.1:4443", "", "http://[::ffff:127.0.0.1]:4443/x")
	f.Add("https://Registry-1.Docker.IO.", "https://auth.docker.io/", "http://auth.docker.io/token")
	f.Add("https://[::1]:443", "http://10.0.0.5:5001", "https://[0:0::1]/x")
	f.Fuzz(func(t *testing.T, server, realm, target string) {
		var realms []string
		if realm != "" {
			realms = []string{realm}
		}
		s, err := New(server, realms)
		if err != nil {
			return
		}
		su, _ := url.Parse(server)
		if !s.Allows(su) {
			t.Fatalf("server URL %q not allowed to itself", server)
		}
		u, err := url.Parse(target)
		if err != nil || !s.Allows(u) {
			return
		}
		o, ok := originOf(u)
		if !ok {
			t.Fatalf("allowed %q without an origin", target)
		}
		configured := false
		for _, r := range s.realms {
			configured = configured || r == o
		}
		if configured {
			return
		}
		if o.host != s.server.host {
			t.Fatalf("allowed %q: host %q is neither the server's %q nor configured", target, o.host, s.server.host)
		}
		if o.scheme == "http" && s.server.scheme != "http" {
			t.Fatalf("allowed %q: plain http for an https server", target)
		}
	})
}
