package proxy

import (
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
	"github.com/trustgate/trustgate/policy"
)

// TestRealClients pulls through trustgate with crane and skopeo, which exercise HEAD-then-GET tag
// resolution, index → platform manifest → blobs, and tag listing the way they do against a real
// registry.
func TestRealClients(t *testing.T) {
	reg := peers.StartRegistry(t)
	e := newEnv(t, reg, envConfig{})
	idx := peers.PushIndex(t, reg, "library/alpine", "3")
	peers.PushImage(t, reg, "library/alpine", "unsigned")
	e.trust.sign("docker.io/library/alpine", "3", idx, "targets/releases")
	host := strings.TrimPrefix(e.http.URL, "http://")

	if r := peers.Crane(t, "digest", host+"/alpine:3"); r.Err != nil || strings.TrimSpace(r.Stdout) != idx.Digest {
		t.Fatalf("crane digest: %q %v", r.Stdout, r.Err)
	}
	if r := peers.Crane(t, "pull", "--platform", "linux/arm64", host+"/alpine:3", filepath.Join(t.TempDir(), "img.tar")); r.Err != nil {
		t.Fatalf("crane pull: %v", r.Err)
	}
	if r := peers.Crane(t, "ls", host+"/alpine"); r.Err != nil || strings.TrimSpace(r.Stdout) != "3" {
		t.Errorf("crane ls: %q %v", r.Stdout, r.Err)
	}
	r := peers.Crane(t, "manifest", host+"/alpine:unsigned")
	if r.Err == nil || !strings.Contains(r.Stderr, "MANIFEST_UNKNOWN") || !strings.Contains(r.Stderr, "no valid signature") {
		t.Errorf("crane unsigned: %v %q", r.Err, r.Stderr)
	}
	r = peers.Skopeo(t, "copy", "--src-tls-verify=false", "--override-arch", "amd64", "--override-os", "linux",
		"docker://"+host+"/alpine:3", "oci:"+filepath.Join(t.TempDir(), "oci")+":x")
	if r.Err != nil {
		t.Errorf("skopeo copy: %v", r.Err)
	}
	r = peers.Skopeo(t, "inspect", "--tls-verify=false", "--raw", "docker://"+host+"/alpine:unsigned")
	if r.Err == nil || !strings.Contains(r.Stderr, "no valid signature") {
		t.Errorf("skopeo unsigned: %v %q", r.Err, r.Stderr)
	}
}

// TestUpstreamHangs: an upstream that accepts connections and never answers is an outage (503)
// after the configured timeout, not a hung request.
func TestUpstreamHangs(t *testing.T) {
	l := listenLoopback(t)
	held := make(chan net.Conn, 64)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held <- c // held open, never answered
		}
	}()
	t.Cleanup(func() {
		l.Close()
		for {
			select {
			case c := <-held:
				c.Close()
			default:
				return
			}
		}
	})
	u, _ := url.Parse("http://" + l.Addr().String())
	pol, err := policy.New(policy.Config{Rules: []policy.RuleConfig{{Match: "x/off/**", Mode: policy.Off}}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{
		Upstreams: []*Upstream{{Name: "x", URL: u, Trust: newFakeTrust()}}, Default: "x", Policy: pol,
		TempDir: t.TempDir(), UpstreamTimeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := &env{t: t, srv: s, http: newTestHTTP(t, s)}
	for _, p := range []string{"/v2/off/a/manifests/1", "/v2/off/a/blobs/sha256:" + strings.Repeat("0", 64), "/v2/off/a/tags/list"} {
		expectError(t, e.get(p), http.StatusServiceUnavailable, "UNAVAILABLE")
	}
	if r := e.do(http.MethodHead, "/v2/off/a/blobs/sha256:"+strings.Repeat("0", 64), nil); r.status != http.StatusServiceUnavailable {
		t.Errorf("HEAD blob: %d", r.status)
	}
}
