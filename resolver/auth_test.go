package resolver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// tokenService is a docker-registry token server on its own port, like a real deployment
// (notary-server's realm points at the registry's auth service, not at itself).
type tokenService struct {
	*httptest.Server
	issued atomic.Int64
	user   string
	pass   string
	t      *testing.T
}

func newTokenService(t *testing.T, user, pass string) *tokenService {
	ts := &tokenService{user: user, pass: pass, t: t}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ts.user != "" && (!ok || u != ts.user || p != ts.pass) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		q := r.URL.Query()
		if q.Get("service") != "notary-test" || q.Get("scope") != "repository:"+gunApp+":pull" {
			t.Errorf("token request %s", r.URL.RawQuery)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		n := ts.issued.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{"token": fmt.Sprintf("tok-%d", n), "expires_in": 300})
	}))
	t.Cleanup(ts.Close)
	return ts
}

// valid reports whether the request carries a token this service issued.
func (ts *tokenService) valid(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer tok-")
	return ok && tok != "" && tok <= fmt.Sprint(ts.issued.Load())
}

func TestTokenAuth(t *testing.T) {
	tests := []struct {
		name       string
		user, pass string // service expects
		cuser      string // client sends
		ok         bool
	}{
		{"anonymous", "", "", "", true},
		{"credentials", "alice", "s3cret", "alice", true},
		{"wrong credentials", "alice", "s3cret", "bob", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := newTokenService(t, tc.user, tc.pass)
			srv := fixtureServer(t)
			inner := srv.Config.Handler
			srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !tok.valid(r) {
					w.Header().Set("Www-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="notary-test",scope="repository:%s:pull"`, tok.URL, gunApp))
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				inner.ServeHTTP(w, r)
			})
			now := fixtureNow
			c := newTestClient(t, srv, func(cfg *Config) {
				cfg.Username, cfg.Password = tc.cuser, tc.pass
				cfg.Now = func() time.Time { return now }
			})
			st, err := c.Update(context.Background(), gunApp)
			if !tc.ok {
				if err == nil || IsNotSigned(err) {
					t.Fatalf("err = %v, want a trust failure", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Lookup("v1", nil); err != nil {
				t.Fatal(err)
			}
			if n := tok.issued.Load(); n != 1 {
				t.Fatalf("%d tokens issued, want 1", n)
			}
			srv.take()
			// Warm: the cached token is reused, one request, no token round trip.
			if _, err := c.Update(context.Background(), gunApp); err != nil {
				t.Fatal(err)
			}
			if got := srv.take(); len(got) != 1 || tok.issued.Load() != 1 {
				t.Fatalf("warm: requests %v, tokens %d", got, tok.issued.Load())
			}
			// Past the token's lifetime a new one is fetched.
			now = now.Add(10 * time.Minute)
			if _, err := c.Update(context.Background(), gunApp); err != nil {
				t.Fatal(err)
			}
			if n := tok.issued.Load(); n != 2 {
				t.Fatalf("%d tokens issued after expiry, want 2", n)
			}
		})
	}
}

func TestParseChallenge(t *testing.T) {
	tests := []struct {
		in     string
		scheme string
		params map[string]string
	}{
		{`Bearer realm="https://a/token",service="notary",scope="repository:x/y:pull"`, "bearer",
			map[string]string{"realm": "https://a/token", "service": "notary", "scope": "repository:x/y:pull"}},
		{`bearer realm=https://a/token, service="a \"q\" b"`, "bearer", map[string]string{"realm": "https://a/token", "service": `a "q" b`}},
		{`Basic realm="x"`, "basic", map[string]string{"realm": "x"}},
		{`Bearer`, "bearer", map[string]string{}},
		{``, "", map[string]string{}},
		{`Bearer realm="unterminated`, "bearer", map[string]string{"realm": "unterminated"}},
		{`Bearer =x, realm`, "bearer", map[string]string{"": "x"}},
	}
	for _, tc := range tests {
		s, p := parseChallenge(tc.in)
		if s != tc.scheme || fmt.Sprint(p) != fmt.Sprint(tc.params) {
			t.Errorf("parseChallenge(%q) = %q %v, want %q %v", tc.in, s, p, tc.scheme, tc.params)
		}
	}
}

func TestBasicAuth(t *testing.T) {
	srv := fixtureServer(t)
	inner := srv.Config.Handler
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "pw" {
			w.Header().Set("Www-Authenticate", `Basic realm="notary"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		inner.ServeHTTP(w, r)
	})
	c := newTestClient(t, srv, func(cfg *Config) { cfg.Username, cfg.Password = "alice", "pw" })
	if _, err := c.Update(context.Background(), gunApp); err != nil {
		t.Fatal(err)
	}
	srv.take()
	if _, err := c.Update(context.Background(), gunApp); err != nil {
		t.Fatal(err)
	}
	if got := srv.take(); len(got) != 1 {
		t.Fatalf("warm requests with Basic auth: %v", got)
	}
	bad := newTestClient(t, srv, func(cfg *Config) { cfg.Username, cfg.Password = "alice", "wrong" })
	if _, err := bad.Update(context.Background(), gunApp); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("wrong password: err = %v", err)
	}
}
