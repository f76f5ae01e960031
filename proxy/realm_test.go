package proxy

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/policy"
)

// TestDockerHubRealm: an upstream marked docker_hub may send its credentials to Docker Hub's
// token service; any other upstream only to its own host or a configured realm (see credscope).
func TestDockerHubRealm(t *testing.T) {
	hub, _ := url.Parse("https://registry-1.docker.io")
	tests := []struct {
		up    Upstream
		realm string
		ok    bool
	}{
		{Upstream{Name: "docker.io", URL: hub, DockerHub: true}, "https://auth.docker.io/token", true},
		{Upstream{Name: "docker.io", URL: hub, DockerHub: true}, "https://evil.docker.io/token", false},
		{Upstream{Name: "docker.io", URL: hub}, "https://auth.docker.io/token", false},
		{Upstream{Name: "docker.io", URL: hub, TokenRealms: []string{"https://auth.docker.io"}}, "https://auth.docker.io/token", true},
	}
	for _, tc := range tests {
		u, err := newUpstream(&tc.up, 1, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := url.Parse(tc.realm)
		if got := u.creds.Allows(r); got != tc.ok {
			t.Errorf("docker_hub=%v token_realms=%q: Allows(%s) = %v", tc.up.DockerHub, tc.up.TokenRealms, tc.realm, got)
		}
	}
	if _, err := newUpstream(&Upstream{Name: "x", URL: hub, TokenRealms: []string{"auth.docker.io"}}, 1, time.Second); err == nil {
		t.Error("a token realm that is not an origin was accepted")
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
