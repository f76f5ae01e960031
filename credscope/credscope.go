// Package credscope decides whether credentials configured for one server may be sent to a URL.
// The resolver (Notary credentials) and the proxy (upstream registry credentials) both ask it, for
// every request that would carry them: the server's own requests, the target of a redirect, and the
// token realm a 401 names.
//
// The rule (Scope.Allows):
//
//   - the server's own origin (scheme, host, port): yes;
//   - an origin configured explicitly as a token realm: yes;
//   - another port of the server's own host: yes over https, and over plain http only when the
//     server itself is plain http (credentials never downgrade from https to http);
//   - anything else (another host, a subdomain or parent domain, a token realm the server names but
//     the operator did not configure, any non-http scheme): no.
//
// Host names compare case-insensitively and without a trailing dot, IP addresses by value
// (::ffff:127.0.0.1 is 127.0.0.1); a missing port is the scheme's default.
//
// A 401 cannot widen the scope: where a registry's token service lives on another host (Docker
// Hub's auth.docker.io), the operator lists it.
package credscope

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Scope is where one server's credentials may go. The zero value allows nothing; build one with New.
type Scope struct {
	server origin
	realms []origin
}

// origin is a normalised (scheme, host, port).
type origin struct {
	scheme, host, port string
}

// New returns the scope of the credentials configured for serverURL. realms are further origins
// ("https://auth.example.com", "https://auth.example.com:5001") that may receive them; a realm
// must be an http or https URL with a host and nothing after it but an optional "/".
func New(serverURL string, realms []string) (*Scope, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, fmt.Errorf("credscope: server URL %q: %w", serverURL, err)
	}
	srv, ok := originOf(u)
	if !ok {
		return nil, fmt.Errorf("credscope: server URL %q is not an http or https URL with a host", serverURL)
	}
	s := &Scope{server: srv}
	for _, r := range realms {
		o, err := parseRealm(r)
		if err != nil {
			return nil, err
		}
		s.realms = append(s.realms, o)
	}
	return s, nil
}

// parseRealm checks one configured token-realm origin.
func parseRealm(raw string) (origin, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return origin{}, fmt.Errorf("credscope: token realm %q: %w", raw, err)
	}
	o, ok := originOf(u)
	if !ok || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return origin{}, fmt.Errorf("credscope: token realm %q must be an origin: http(s)://host[:port]", raw)
	}
	return o, nil
}

// Allows reports whether the credentials may be sent to u.
func (s *Scope) Allows(u *url.URL) bool {
	if s == nil || u == nil {
		return false
	}
	o, ok := originOf(u)
	if !ok || s.server.host == "" {
		return false
	}
	if o == s.server {
		return true
	}
	for _, r := range s.realms {
		if o == r {
			return true
		}
	}
	return o.host == s.server.host && (o.scheme == "https" || s.server.scheme == "http")
}

// Transport returns a RoundTripper that sends every request through inner, without its
// Authorization header when Allows refuses the request's URL. It is the last layer before the
// network, under any token or redirect logic, so neither a redirect (net/http keeps a header that
// an inner RoundTripper added for same-domain targets of any port and scheme) nor a token exchange
// can carry credentials out of the scope.
func (s *Scope) Transport(inner http.RoundTripper) http.RoundTripper {
	if inner == nil {
		inner = http.DefaultTransport
	}
	return &guard{scope: s, inner: inner}
}

type guard struct {
	scope *Scope
	inner http.RoundTripper
}

func (g *guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") != "" && !g.scope.Allows(req.URL) {
		r := req.Clone(req.Context())
		r.Header.Del("Authorization")
		req = r
	}
	return g.inner.RoundTrip(req)
}

// originOf normalises u's origin; ok is false for anything but http(s) with a valid host and port.
func originOf(u *url.URL) (origin, bool) {
	scheme := strings.ToLower(u.Scheme)
	var def string
	switch scheme {
	case "http":
		def = "80"
	case "https":
		def = "443"
	default:
		return origin{}, false
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "" || strings.ContainsAny(host, "/@ ") {
		return origin{}, false
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.Unmap().String()
	}
	port := u.Port()
	if port == "" {
		if strings.HasSuffix(u.Host, ":") {
			return origin{}, false
		}
		port = def
	} else {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return origin{}, false
		}
		port = strconv.FormatUint(n, 10)
	}
	return origin{scheme: scheme, host: host, port: port}, true
}
