package peers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseProcAddr(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "0100007F:1F90", want: "127.0.0.1:8080"},
		{in: "00000000:0050", want: "0.0.0.0:80"},
		{in: "00000000000000000000000001000000:01BB", want: "[::1]:443"},
		{in: "0100007F", bad: true},
		{in: "zz00007F:0050", bad: true},
		{in: "0100007F:ZZZZZ", bad: true},
	}
	for _, tt := range tests {
		got, err := parseProcAddr(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("parseProcAddr(%q) = %q, %v; want %q, bad=%v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func TestParseAccess(t *testing.T) {
	lines := []string{
		`time="2026-11-23T12:13:47Z" level=info msg="listening on 127.0.0.1:15001"`,
		`127.0.0.1 - - [23/Nov/2026:12:14:28 +0000] "HEAD /v2/library/alpine/manifests/signed HTTP/1.1" 200 0 "" "docker/20.10.24 UpstreamClient(Docker-Client/20.10.24 \\(linux\\))"`,
		`127.0.0.1 - - [23/Nov/2026:12:14:28 +0000] "GET /v2/library/alpine/blobs/sha256:c5 HTTP/1.1" 404 - "" "Go-http-client/1.1"`,
	}
	got := parseAccess(lines)
	want := []AccessEntry{
		{Method: "HEAD", Path: "/v2/library/alpine/manifests/signed", Status: 200, Bytes: 0,
			UserAgent: `docker/20.10.24 UpstreamClient(Docker-Client/20.10.24 \\(linux\\))`},
		{Method: "GET", Path: "/v2/library/alpine/blobs/sha256:c5", Status: 404, UserAgent: "Go-http-client/1.1"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("parseAccess:\n got %+v\nwant %+v", got, want)
	}
}

func TestDeterministicReader(t *testing.T) {
	read := func(seed uint64) []byte {
		b, err := io.ReadAll(DeterministicReader(seed, 1<<16+3))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b, c := read(1), read(1), read(2)
	if len(a) != 1<<16+3 {
		t.Fatalf("len = %d", len(a))
	}
	if !bytes.Equal(a, b) {
		t.Error("same seed gave different bytes")
	}
	if bytes.Equal(a, c) {
		t.Error("different seeds gave the same bytes")
	}
}

func TestLogWaitFor(t *testing.T) {
	l := newLog(nil, "mem")
	go func() {
		time.Sleep(10 * time.Millisecond)
		_, _ = l.Write([]byte("one\ntw"))
		_, _ = l.Write([]byte("o\nthree"))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := l.WaitFor(ctx, func(s string) bool { return strings.HasPrefix(s, "tw") })
	if err != nil || got != "two" {
		t.Fatalf("WaitFor = %q, %v", got, err)
	}
	if l.Len() != 2 || l.Since(1)[0] != "two" || !strings.HasSuffix(l.Tail(5), "three") {
		t.Errorf("lines = %q, tail %q", l.Lines(), l.Tail(5))
	}
}

func getBody(t *testing.T, url string, accept ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range accept {
		req.Header.Add("Accept", a)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func TestRegistryPushAndAccessLog(t *testing.T) {
	reg := StartRegistry(t)
	img := PushImage(t, reg, "library/peers", "v1")
	idx := PushIndex(t, reg, "library/peers", "multi")
	if len(idx.Children) != 2 {
		t.Fatalf("index children = %d", len(idx.Children))
	}
	for _, p := range []Pushed{img, idx, idx.Children[1]} {
		code, h, body := getBody(t, reg.URL+"/v2/library/peers/manifests/"+p.Digest, p.MediaType)
		sum := sha256.Sum256(body)
		if code != 200 || "sha256:"+hex.EncodeToString(sum[:]) != p.Digest || int64(len(body)) != p.Size {
			t.Errorf("GET %s: %d %s, %d bytes", p.Digest, code, h.Get("Docker-Content-Digest"), len(body))
		}
	}
	want := "/v2/library/peers/manifests/" + img.Digest
	// The access log line is written after the response; allow it to arrive.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := reg.Log.WaitFor(ctx, func(l string) bool { return strings.Contains(l, `"GET `+want) }); err != nil {
		t.Fatal(err)
	}
	if n := reg.CountRequests(func(e AccessEntry) bool { return e.Method == "GET" && e.Path == want }); n != 1 {
		t.Errorf("GET %s counted %d times, want 1", want, n)
	}
}

func TestPushBigImageStreams(t *testing.T) {
	reg := StartRegistry(t)
	const size = 3<<20 + 17
	p := PushBigImage(t, reg, "big/image", "v1", size, 42)
	if len(p.Layers) != 1 || p.Layers[0].Size < size {
		t.Fatalf("layers = %+v", p.Layers)
	}
	code, _, body := getBody(t, reg.URL+"/v2/big/image/blobs/"+p.Layers[0].Digest)
	sum := sha256.Sum256(body)
	if code != 200 || "sha256:"+hex.EncodeToString(sum[:]) != p.Layers[0].Digest {
		t.Fatalf("blob GET %d, digest mismatch", code)
	}
	// Same seed → same layer: the benchmark relies on it.
	again := PushBigImage(t, reg, "big/other", "v1", size, 42)
	if again.Layers[0] != p.Layers[0] || again.Digest != p.Digest {
		t.Errorf("not deterministic: %+v vs %+v", again, p)
	}
	_, _, man := getBody(t, reg.URL+"/v2/big/image/manifests/v1", p.MediaType)
	var m struct {
		Layers []struct{ Digest string } `json:"layers"`
	}
	if err := json.Unmarshal(man, &m); err != nil || len(m.Layers) != 1 || m.Layers[0].Digest != p.Layers[0].Digest {
		t.Errorf("manifest by tag = %s (%v)", man, err)
	}
}

func TestNotarySignListRestart(t *testing.T) {
	n := StartNotary(t)
	cli := NewNotaryCLI(t, n.URL)
	const gun = "docker.io/library/peers"
	cli.InitRepo(gun)
	p := Pushed{Digest: "sha256:" + strings.Repeat("ab", 32), Size: 1234}
	Sign(t, cli, gun, "v1", p)
	got := cli.List(gun)
	want := []ListedTarget{{Name: "v1", SHA256: p.Hex(), Size: 1234, Role: "targets"}}
	if !slices.Equal(got, want) {
		t.Fatalf("List = %+v, want %+v", got, want)
	}
	cli.RotateRoot(gun)
	if got := cli.List(gun); !slices.Equal(got, want) {
		t.Fatalf("List after root rotation = %+v", got)
	}
	code, _, _ := getBody(t, n.URL+"/v2/"+gun+"/_trust/tuf/timestamp.json")
	if code != 200 {
		t.Fatalf("timestamp.json: %d", code)
	}
	ts := func(r NotaryRequest) bool {
		return strings.HasSuffix(r.URI, "/_trust/tuf/timestamp.json") && r.Method == "GET"
	}
	if c := n.CountRequests(ts); c < 1 {
		t.Errorf("timestamp requests counted %d", c)
	}

	n.Restart()
	code, _, _ = getBody(t, n.URL+"/v2/"+gun+"/_trust/tuf/root.json")
	if code != http.StatusNotFound {
		t.Errorf("root.json after restart: %d, want 404 (memory storage)", code)
	}
	before := n.CountRequests(ts)
	getBody(t, n.URL+"/v2/"+gun+"/_trust/tuf/timestamp.json")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := n.Log().WaitFor(ctx, func(l string) bool {
		return strings.Contains(l, "response completed") && strings.Contains(l, "timestamp.json")
	}); err != nil {
		t.Fatal(err)
	}
	if after := n.CountRequests(ts); after != before+1 {
		t.Errorf("timestamp count %d → %d across restart", before, after)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(n.URL + "/_notary_server/health"); err == nil {
		t.Error("stopped notary-server still answers")
	}
}

func TestCraneAndSkopeo(t *testing.T) {
	reg := StartRegistry(t)
	p := PushImage(t, reg, "library/tools", "v1")
	r := Crane(t, "digest", reg.Host+"/library/tools:v1")
	if r.Err != nil || strings.TrimSpace(r.Stdout) != p.Digest {
		t.Errorf("crane digest = %q, %v; want %s", r.Stdout, r.Err, p.Digest)
	}
	if r := Crane(t, "digest", reg.Host+"/library/tools:missing"); r.Err == nil {
		t.Error("crane digest of a missing tag succeeded")
	}
	s := Skopeo(t, "inspect", "--tls-verify=false", "docker://"+reg.Host+"/library/tools:v1")
	var out struct{ Digest string }
	if s.Err != nil || json.Unmarshal([]byte(s.Stdout), &out) != nil || out.Digest != p.Digest {
		t.Errorf("skopeo inspect = %q, %v", s.Stdout, s.Err)
	}
}

// TestDockerdMirror pins down what the daemon sends to a mirror, which the proxy's routing relies on.
func TestDockerdMirror(t *testing.T) {
	reg := StartRegistry(t)
	p := PushImage(t, reg, "library/peersdk", "v1")
	d := StartDockerd(t, reg.URL)
	ctx := context.Background()
	mark := reg.Log.Len()
	if err := d.Pull(ctx, "peersdk:v1"); err != nil {
		t.Fatalf("pull: %v\n%s", err, d.Log.Tail(20))
	}
	ds, err := d.RepoDigests(ctx, "peersdk:v1")
	if err != nil || !slices.Contains(ds, "peersdk@"+p.Digest) {
		t.Errorf("RepoDigests = %v, %v; want peersdk@%s", ds, err, p.Digest)
	}
	var sawHead bool
	for _, e := range reg.RequestsSince(mark) {
		if strings.Contains(e.Path, "ns=") {
			t.Errorf("dockerd sent ns= to the mirror: %s %s", e.Method, e.Path)
		}
		if e.Method == "HEAD" && e.Path == "/v2/library/peersdk/manifests/v1" {
			sawHead = true
		}
	}
	if !sawHead {
		t.Errorf("no HEAD by tag on the mirror; saw %+v", reg.RequestsSince(mark))
	}
	if err := d.Pull(ctx, "peersdk:missing"); err == nil {
		t.Error("pull of a tag the mirror lacks succeeded")
	}
	imgs, err := d.Images(ctx)
	if err != nil || slices.Contains(imgs, "peersdk:missing") || !slices.Contains(imgs, "peersdk:v1") {
		t.Errorf("images = %v, %v", imgs, err)
	}
}

// TestContainerdHosts pins down that containerd adds ?ns=docker.io for a hosts.toml server and
// does not fall back to Docker Hub.
func TestContainerdHosts(t *testing.T) {
	reg := StartRegistry(t)
	p := PushImage(t, reg, "library/peersctd", "v1")
	c := StartContainerd(t, reg.URL)
	ctx := context.Background()
	mark := reg.Log.Len()
	if err := c.Pull(ctx, "docker.io/library/peersctd:v1"); err != nil {
		t.Fatalf("pull: %v", err)
	}
	if d, err := c.ImageDigest(ctx, "docker.io/library/peersctd:v1"); err != nil || d != p.Digest {
		t.Errorf("image digest = %q, %v; want %s", d, err, p.Digest)
	}
	reqs := reg.RequestsSince(mark)
	if len(reqs) == 0 {
		t.Fatal("no requests reached the registry")
	}
	for _, e := range reqs {
		if !strings.HasSuffix(e.Path, "?ns=docker.io") {
			t.Errorf("request without ns=docker.io: %s %s", e.Method, e.Path)
		}
	}
	err := c.Pull(ctx, "docker.io/library/peersctd:missing")
	if err == nil || strings.Contains(err.Error(), "registry-1.docker.io") {
		t.Errorf("pull of a missing tag: %v; want a not-found error from the configured server only", err)
	}
}

// TestRedis: the launcher's redis-server answers on its kernel-chosen loopback port, stops on
// Stop, and comes back empty on the same address after Restart.
func TestRedis(t *testing.T) {
	r := StartRedis(t)
	if err := ping(context.Background(), r.Addr); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := ping(context.Background(), r.Addr); err == nil {
		t.Fatal("redis-server still answers after Stop")
	}
	r.Restart(t)
	if err := ping(context.Background(), r.Addr); err != nil {
		t.Fatalf("after Restart: %v", err)
	}
}
