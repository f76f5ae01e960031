package resolver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// otherHost is the same loopback listener under another host name: credentials must treat it as
// a different server.
func otherHost(u string) string { return strings.Replace(u, "127.0.0.1", "localhost", 1) }

// recorder is a server on "another host" that records the Authorization of every request.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	auth []string
}

func newRecorder(t *testing.T, h http.HandlerFunc) *recorder {
	r := &recorder{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.auth = append(r.auth, req.Header.Get("Authorization"))
		r.mu.Unlock()
		if h != nil {
			h(w, req)
		}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.auth...)
}

// TestRedirectsNotFollowed: like notary's HTTP store, a trust fetch does not follow a 3xx (it is
// an unavailable server), so the credentials the client attaches never reach the redirect's
// target. Both Basic and bearer credentials are tried.
func TestRedirectsNotFollowed(t *testing.T) {
	for _, scheme := range []string{"basic", "bearer"} {
		t.Run(scheme, func(t *testing.T) {
			evil := newRecorder(t, nil)
			tok := newTokenService(t, "alice", "pw")
			srv := fixtureServer(t)
			inner := srv.Config.Handler
			srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				authorized := tok.valid(r)
				if u, p, ok := r.BasicAuth(); scheme == "basic" {
					authorized = ok && u == "alice" && p == "pw"
				}
				if !authorized {
					if scheme == "basic" {
						w.Header().Set("Www-Authenticate", `Basic realm="notary"`)
					} else {
						w.Header().Set("Www-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="notary-test"`, tok.URL))
					}
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				if strings.HasSuffix(r.URL.Path, "/timestamp.json") {
					http.Redirect(w, r, otherHost(evil.URL)+r.URL.Path, http.StatusFound)
					return
				}
				inner.ServeHTTP(w, r)
			})
			c := newTestClient(t, srv, func(cfg *Config) { cfg.Username, cfg.Password = "alice", "pw" })
			_, err := c.Update(context.Background(), gunApp)
			if !errors.Is(err, ErrUnavailable) || IsNotSigned(err) {
				t.Errorf("err = %v, want ErrUnavailable", err)
			}
			if got := evil.seen(); len(got) != 0 {
				t.Errorf("redirect followed to another host (Authorization %q)", got)
			}
		})
	}
}

// TestTokenRealmScope: a 401 names the token realm, so it is the server, not the operator, that
// says where credentials go. They go only to a realm on the notary server's own host or to one
// configured in Config.TokenRealms; a client without credentials may use any realm.
func TestTokenRealmScope(t *testing.T) {
	tests := []struct {
		name       string
		realm      func(tok string) string // the realm the 401 names, from the token service's URL
		configured func(tok string) []string
		user       string
		ok         bool // the update succeeds
		leak       bool // the token service may see the credentials
	}{
		{"same host, other port", func(tok string) string { return tok }, nil, "alice", true, true},
		{"another host", otherHost, nil, "alice", false, false},
		{"another host, configured", otherHost, func(tok string) []string { return []string{otherHost(tok)} }, "alice", true, true},
		{"another host, no credentials", otherHost, nil, "", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var sawCreds bool
			tok := newTokenService(t, tc.user, "pw")
			inner := tok.Config.Handler
			tok.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, _, ok := r.BasicAuth(); ok {
					mu.Lock()
					sawCreds = true
					mu.Unlock()
				}
				inner.ServeHTTP(w, r)
			})
			srv := fixtureServer(t)
			files := srv.Config.Handler
			srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !tok.valid(r) {
					w.Header().Set("Www-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="notary-test"`, tc.realm(tok.URL)))
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				files.ServeHTTP(w, r)
			})
			c := newTestClient(t, srv, func(cfg *Config) {
				cfg.Username, cfg.Password = tc.user, "pw"
				if tc.configured != nil {
					cfg.TokenRealms = tc.configured(tok.URL)
				}
			})
			_, err := c.Update(context.Background(), gunApp)
			if tc.ok && err != nil {
				t.Fatalf("update: %v", err)
			}
			if !tc.ok && (!errors.Is(err, ErrUnavailable) || IsNotSigned(err) || !strings.Contains(err.Error(), "refusing to send credentials")) {
				t.Fatalf("err = %v, want ErrUnavailable refusing to send credentials", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if sawCreds && !tc.leak {
				t.Errorf("credentials sent to token realm %s", tc.realm(tok.URL))
			}
			if tc.user != "" && tc.leak && !sawCreds {
				t.Errorf("credentials not sent to the allowed realm")
			}
		})
	}
}

func TestNewClientRefusesBadTokenRealm(t *testing.T) {
	if _, err := NewClient(Config{ServerURL: "https://notary.example.com", TokenRealms: []string{"https://auth.example.com/token"}}); err == nil {
		t.Fatal("a realm with a path accepted")
	}
}
