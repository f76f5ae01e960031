package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/policy"
)

func TestRealmAllowed(t *testing.T) {
	cases := []struct {
		up, realm string
		ok        bool
	}{
		{"registry-1.docker.io", "auth.docker.io", true},
		{"ghcr.io", "ghcr.io", true},
		{"ghcr.io", "token.ghcr.io", true},
		{"ghcr.io", "evil.io", false},
		{"registry-1.docker.io", "docker.io.evil.example", false},
		{"registry-1.docker.io", "evildocker.io", false},
		{"127.0.0.1", "127.0.0.1", true},
		{"10.0.0.1", "0.0.1", false},
		{"a.b.c", "x.b.c", true},
		{"Registry-1.Docker.IO", "AUTH.docker.io", true},
	}
	for _, c := range cases {
		if got := realmAllowed(c.up, c.realm); got != c.ok {
			t.Errorf("realmAllowed(%q, %q) = %v", c.up, c.realm, got)
		}
	}
}

// TestRealmRefused: an upstream whose token realm is on another host gets no credentials: the
// request fails with 503 and the realm is never contacted.
func TestRealmRefused(t *testing.T) {
	realmHit := make(chan string, 10)
	realm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		realmHit <- r.Header.Get("Authorization")
		w.Write([]byte(`{"token":"x"}`))
	}))
	t.Cleanup(realm.Close)
	realmURL := strings.Replace(realm.URL, "127.0.0.1", "localhost", 1) + "/token"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realmURL+`",service="x"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	pol, err := policy.New(policy.Config{Default: policy.RuleConfig{Mode: policy.Off}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{
		Upstreams: []*Upstream{{Name: "x", URL: u, Username: "tg", Password: "pw", Trust: newFakeTrust()}},
		Default:   "x", Policy: pol, TempDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := &env{t: t, srv: s, http: newTestHTTP(t, s)}
	expectError(t, e.get("/v2/a/manifests/1"), http.StatusServiceUnavailable, "UNAVAILABLE", "refusing to send credentials")
	select {
	case a := <-realmHit:
		t.Errorf("realm contacted (Authorization %q)", a)
	default:
	}
}
