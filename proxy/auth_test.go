package proxy

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/trustgate/trustgate/internal/peers"
	"golang.org/x/crypto/bcrypt"
)

// startAuthRegistry runs the real registry with htpasswd (basic) auth; peers.StartRegistry has no
// auth option.
func startAuthRegistry(t *testing.T, user, pass string) string {
	t.Helper()
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l := listenLoopback(t)
	addr := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf(`version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: %q}}
auth: {htpasswd: {realm: test, path: %q}}
http: {addr: %q}
`, filepath.Join(dir, "data"), filepath.Join(dir, "htpasswd"), addr)
	if err := os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(peers.Binary(t, "registry"), "serve", filepath.Join(dir, "config.yml"))
	p := peers.StartProcess(t, "registry", dir, cmd)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return "http://" + addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("auth registry did not start: %v\n%s", err, p.Log.Tail(20))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestUpstreamCredentials: trustgate authenticates upstream with its own credentials, and a
// client's Authorization is never what gets it in.
func TestUpstreamCredentials(t *testing.T) {
	regURL := startAuthRegistry(t, "trustgate", "s3cret")
	u, _ := url.Parse(regURL)
	ref, err := name.ParseReference(u.Host+"/team/app:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "trustgate", Password: "s3cret"})); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	raw, _ := img.RawManifest()
	pushed := peers.Pushed{Digest: d.String(), Size: int64(len(raw))}

	for _, c := range []struct {
		name, user, pass string
		clientAuth       string
		status           int
	}{
		{"own credentials", "trustgate", "s3cret", "", 200},
		{"client credentials ignored", "trustgate", "s3cret", "Basic Zm9vOmJhcg==", 200},
		{"anonymous", "", "", "Basic " + "dHJ1c3RnYXRlOnMzY3JldA==", 503}, // the client's valid creds don't help
		{"wrong password", "trustgate", "nope", "", 503},
	} {
		t.Run(c.name, func(t *testing.T) {
			trust := newFakeTrust()
			trust.sign("r.example/team/app", "1", pushed, "targets")
			s, err := New(Options{
				Upstreams: []*Upstream{{Name: "r.example", URL: u, Username: c.user, Password: c.pass, Trust: trust}},
				Default:   "r.example", Policy: mustPolicy(t), TempDir: t.TempDir(),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			e := &env{t: t, srv: s}
			e.http = newTestHTTP(t, s)
			hdr := http.Header{}
			if c.clientAuth != "" {
				hdr.Set("Authorization", c.clientAuth)
			}
			r := e.do(http.MethodGet, "/v2/team/app/manifests/1", hdr)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			if c.status == 200 && sha(r.body) != pushed.Digest {
				t.Fatalf("served %s", sha(r.body))
			}
			if c.status == 503 {
				expectError(t, r, 503, "UNAVAILABLE", "credentials")
			}
		})
	}
}
