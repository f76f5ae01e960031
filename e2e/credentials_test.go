package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

// TestNotaryCredentialsStayHome: trustgate is configured with notary credentials for a
// notary-server behind an authenticating front (the real server, signed with the notary CLI).
// The front is hostile for two repositories: it redirects one's timestamp.json to another host,
// and sends the other to a token realm on another host. Neither host may see the credentials;
// both repositories fail closed (503) while an honest one is served.
func TestNotaryCredentialsStayHome(t *testing.T) {
	w := newWorld(t)
	ok := w.pushSigned(t, "library/ok", "v1")
	w.pushSigned(t, "library/redirected", "v1")
	w.pushSigned(t, "library/realm", "v1")

	var mu sync.Mutex
	elsewhere := map[string][]string{} // path → Authorization seen on the other host
	other := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		elsewhere[r.URL.Path] = append(elsewhere[r.URL.Path], r.Header.Get("Authorization"))
		mu.Unlock()
		fmt.Fprint(rw, `{"token":"t","expires_in":300}`)
	}))
	t.Cleanup(other.Close)
	otherURL := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)

	notaryURL, _ := url.Parse(w.notary.URL)
	rp := httputil.NewSingleHostReverseProxy(notaryURL)
	front := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/library/realm/") && !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			rw.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="notary"`, otherURL))
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		if u, p, okAuth := r.BasicAuth(); !strings.Contains(r.URL.Path, "/library/realm/") && (!okAuth || u != "tg" || p != "pw") {
			rw.Header().Set("WWW-Authenticate", `Basic realm="notary"`)
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		if strings.Contains(r.URL.Path, "/library/redirected/") && strings.HasSuffix(r.URL.Path, "/timestamp.json") {
			http.Redirect(rw, r, otherURL+"/redirect"+r.URL.Path, http.StatusFound)
			return
		}
		r.Header.Del("Authorization")
		rp.ServeHTTP(rw, r)
	}))
	t.Cleanup(front.Close)

	g := peers.StartTrustgate(t, trustgateBin, peers.GateConfig{
		RegistryURL: w.reg.URL, NotaryURL: front.URL, NotaryUser: "tg", NotaryPassword: "pw",
	})
	if got := getManifest(t, g, "library/ok", "v1"); got.code != 200 || got.digest() != ok.Digest {
		t.Fatalf("GET ok:v1 = %d %s", got.code, got.body)
	}
	for repo, reason := range map[string]string{
		"library/redirected": "do not follow redirects",
		"library/realm":      "refusing to send credentials",
	} {
		if got := getManifest(t, g, repo, "v1"); got.code != http.StatusServiceUnavailable {
			t.Errorf("GET %s:v1 = %d %s; want 503", repo, got.code, got.body)
		}
		eventually(t, 10*time.Second, "decision for "+repo+" says why", func() (bool, string) {
			ds := findDecision(g, gun(repo), "v1")
			return len(ds) > 0 && strings.Contains(ds[len(ds)-1].Reason, reason), decisionsString(ds)
		})
	}
	mu.Lock()
	defer mu.Unlock()
	for path, auths := range elsewhere {
		for _, a := range auths {
			if a != "" {
				t.Errorf("credentials reached %s%s: %q", otherURL, path, a)
			}
		}
	}
	if len(elsewhere["/redirect/v2/docker.io/library/redirected/_trust/tuf/timestamp.json"]) != 0 {
		t.Errorf("redirect followed to %s", otherURL)
	}
}
