package proxy

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/trustgate/trustgate/internal/peers"
	"github.com/trustgate/trustgate/policy"
)

// The upstream's credentials go only where package credscope allows: the upstream's own host
// (another port over https, or over http when the upstream is http) or a configured token realm.
// These are the attacks on that rule; credscope's own table has the rule itself. (ggcr adds its own
// limits: no plain-http realm for an https registry, no private-address realm other than the
// registry's host:port, and requests to the registry's host are forced to the registry's scheme.)
// TestBlobRedirect covers redirects to another host, TestRealmRefused a realm on another host.

var basicTGPW = "Basic " + base64.StdEncoding.EncodeToString([]byte("tg:pw"))

// authLog records the Authorization header of requests, by host.
type authLog struct {
	mu  sync.Mutex
	got map[string][]string
}

func (l *authLog) add(key, auth string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.got == nil {
		l.got = map[string][]string{}
	}
	l.got[key] = append(l.got[key], auth)
}

func (l *authLog) get(key string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.got[key]...)
}

// tokenFront is an upstream registry (a front on the real one) with bearer auth: the n-th 401
// names the realm realmFor(n), and any token is accepted.
func tokenFront(t *testing.T, regURL *url.URL, realmFor func(n int) string) *httptest.Server {
	rp := httputil.NewSingleHostReverseProxy(regURL)
	var mu sync.Mutex
	n := 0
	return newTestHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			mu.Lock()
			n++
			realm := realmFor(n)
			mu.Unlock()
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="front"`, realm))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		r.Header.Del("Authorization")
		rp.ServeHTTP(w, r)
	}))
}

// tokenServer issues a token to anyone and records the Authorization it was asked with, by the
// host name it was addressed by.
func tokenServer(t *testing.T, log *authLog) *httptest.Server {
	return newTestHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r.Host, r.Header.Get("Authorization"))
		fmt.Fprint(w, `{"token":"t","expires_in":300}`)
	}))
}

// TestTokenRealmScope covers the realms a 401 can name, for an upstream with credentials.
func TestTokenRealmScope(t *testing.T) {
	reg := peers.StartRegistry(t)
	regURL, _ := url.Parse(reg.URL)
	img := peers.PushImage(t, reg, "library/alpine", "1")
	// localhost is the same listener under another host name.
	local := func(u string) string { return strings.Replace(u, "127.0.0.1", "localhost", 1) }
	same := func(u string) string { return u }
	tests := []struct {
		name       string
		front      func(string) string // the upstream URL, from the front's
		realm      func(tok string, n int) string
		configured func(tok string) []string
		ok         bool                    // the pull succeeds
		realmHost  func(tok string) string // the realm that must get the credentials, if ok
		noLeakHost func(tok string) string // a realm that must not get them
	}{
		// Another port of the upstream's host (a host name: ggcr refuses private IP realms).
		{"same host, other port", local, func(tok string, _ int) string { return local(tok) + "/token" }, nil, true, local, nil},
		// Configured explicitly, another host may have the credentials.
		{"another host, configured", same, func(tok string, _ int) string { return local(tok) + "/token" },
			func(tok string) []string { return []string{local(tok)} }, true, local, nil},
		// The first challenge (the one checked) names an allowed realm, later ones another host.
		{"realm switched after the check", same, func(tok string, n int) string {
			if n == 1 {
				return tok + "/token"
			}
			return local(tok) + "/token"
		}, nil, false, nil, local},
	}
	hostOf := func(u string) string { return strings.TrimPrefix(u, "http://") }
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log authLog
			tok := tokenServer(t, &log)
			front := tokenFront(t, regURL, func(n int) string { return tc.realm(tok.URL, n) })
			frontURL, _ := url.Parse(tc.front(front.URL))
			trust := newFakeTrust()
			trust.sign("docker.io/library/alpine", "1", img, "targets")
			up := &Upstream{Name: "docker.io", URL: frontURL, DockerHub: true, Username: "tg", Password: "pw", Trust: trust}
			if tc.configured != nil {
				up.TokenRealms = tc.configured(tok.URL)
			}
			s, err := New(Options{Upstreams: []*Upstream{up}, Default: "docker.io", Policy: mustPolicy(t), TempDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			e := &env{t: t, srv: s, http: newTestHTTP(t, s)}
			r := e.get("/v2/alpine/manifests/1")
			if tc.ok && r.status != 200 {
				t.Fatalf("manifest: %d %s", r.status, r.body)
			}
			if tc.noLeakHost != nil {
				for _, a := range log.get(hostOf(tc.noLeakHost(tok.URL))) {
					if a != "" {
						t.Errorf("credentials sent to token realm on %s: %q", hostOf(tc.noLeakHost(tok.URL)), a)
					}
				}
			}
			if tc.realmHost != nil && !slices.Contains(log.get(hostOf(tc.realmHost(tok.URL))), basicTGPW) {
				t.Errorf("credentials never reached the allowed realm: %v", log.got)
			}
		})
	}
}

// TestPlainHTTPRealmRefused: an https upstream naming a plain-http token realm on its own host
// gets no credentials; the pull fails with 503 and the realm is never contacted.
func TestPlainHTTPRealmRefused(t *testing.T) {
	var log authLog
	tok := tokenServer(t, &log)
	front := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="front"`, tok.URL+"/token"))
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(front.Close)
	frontURL, _ := url.Parse(front.URL)
	pol, err := policy.New(policy.Config{Default: policy.RuleConfig{Mode: policy.Off}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{
		Upstreams: []*Upstream{{Name: "x", URL: frontURL, Username: "tg", Password: "pw", Transport: front.Client().Transport, Trust: newFakeTrust()}},
		Default:   "x", Policy: pol, TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := &env{t: t, srv: s, http: newTestHTTP(t, s)}
	expectError(t, e.get("/v2/a/manifests/1"), http.StatusServiceUnavailable, "UNAVAILABLE", "refusing to send credentials")
	if got := log.got; len(got) != 0 {
		t.Errorf("plain-http realm contacted: %q", got)
	}
}
