package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

// TestNameAttacks: names built to escape (traversal, encoded slashes and dots, NUL), to overflow
// (very long), or that are simply invalid (uppercase, unicode), and ?ns= values naming hosts of
// the client's choosing. Every one is refused with a registry error before trustgate asks
// anyone anything: no request reaches the upstream or the notary server, no other host is
// dialled, and nothing is created on disk, inside trust_dir or out of it.
func TestNameAttacks(t *testing.T) {
	fw := newFaultWorld(t)
	probe := startDialRecorder(t)
	root := t.TempDir()
	trustDir := filepath.Join(root, "trust")
	g := fw.gate(t, peers.GateConfig{TrustDir: trustDir, TempDir: filepath.Join(root, "spool")})
	if err := os.MkdirAll(filepath.Join(root, "spool"), 0o755); err != nil {
		t.Fatal(err)
	}
	gateDir := filepath.Dir(g.ConfigPath) // its working directory
	before, beforeGate := listTree(t, root), listTree(t, gateDir)
	regMark, notaryMark := fw.regFront.mark(), fw.notaryFront.mark()

	long := strings.Repeat("a", 300)
	huge := strings.Repeat("a", 60<<10)
	tests := []struct {
		name, target string
		codes        []int    // acceptable statuses
		errs         []string // acceptable registry error codes in the body ("" = no body expected)
	}{
		{"dot-dot segments", "/v2/../../etc/passwd/manifests/latest", []int{400, 404}, []string{"NAME_INVALID", "NAME_UNKNOWN"}},
		{"dot-dot inside a name", "/v2/library/../../../etc/passwd/manifests/latest", []int{400}, []string{"NAME_INVALID"}},
		{"encoded dots", "/v2/%2e%2e/%2e%2e/etc/passwd/manifests/latest", []int{400, 404}, []string{"NAME_INVALID", "NAME_UNKNOWN"}},
		{"encoded slashes", "/v2/library%2F..%2F..%2Fetc%2Fpasswd/manifests/latest", []int{400}, []string{"NAME_INVALID"}},
		// Decoded, the slashes leave no route: 404 UNSUPPORTED (distribution redirects to the
		// cleaned path instead).
		{"encoded slash in the tag", "/v2/faults/app/manifests/..%2F..%2Fv1", []int{400, 404}, []string{"TAG_INVALID", "UNSUPPORTED"}},
		{"dot-dot as the tag", "/v2/faults/app/manifests/..", []int{400}, []string{"TAG_INVALID"}},
		{"traversal in a blob digest", "/v2/faults/app/blobs/sha256:..%2F..%2Fetc%2Fpasswd", []int{400, 404}, []string{"DIGEST_INVALID", "UNSUPPORTED"}},
		{"encoded NUL", "/v2/faults/app%00/manifests/v1", []int{400}, []string{"NAME_INVALID"}},
		{"encoded NUL in the tag", "/v2/faults/app/manifests/v1%00", []int{400}, []string{"TAG_INVALID"}},
		{"very long name", "/v2/faults/" + long + "/manifests/v1", []int{400}, []string{"NAME_INVALID"}},
		{"very long tag", "/v2/faults/app/manifests/" + long, []int{400}, []string{"TAG_INVALID"}},
		{"uppercase", "/v2/Faults/App/manifests/v1", []int{400}, []string{"NAME_INVALID"}},
		{"unicode", "/v2/faults/%C3%A4pp/manifests/v1", []int{400}, []string{"NAME_INVALID"}},
		{"raw unicode", "/v2/faults/äpp/manifests/v1", []int{400}, []string{"NAME_INVALID", ""}},
		{"empty segment", "/v2/faults//app/manifests/v1", []int{400}, []string{"NAME_INVALID"}},
		{"trailing slash", "/v2/faults/app//manifests/v1", []int{400}, []string{"NAME_INVALID"}},
		{"backslashes", "/v2/faults/..%5C..%5Capp/manifests/v1", []int{400}, []string{"NAME_INVALID"}},
		{"absolute-looking name", "/v2//etc/passwd/manifests/v1", []int{400, 404}, []string{"NAME_INVALID", "NAME_UNKNOWN"}},
		{"tag list of a traversal", "/v2/../etc/tags/list", []int{400, 404}, []string{"NAME_INVALID", "NAME_UNKNOWN"}},
		{"host as a path prefix", "/v2/" + probe.Host + "/faults/app/manifests/v1", []int{400}, []string{"NAME_INVALID"}},
		{"ns: metadata address", "/v2/faults/app/manifests/v1?ns=169.254.169.254", []int{404}, []string{"NAME_UNKNOWN"}},
		{"ns: loopback port", "/v2/faults/app/manifests/v1?ns=" + probe.Host, []int{404}, []string{"NAME_UNKNOWN"}},
		{"ns: URL", "/v2/faults/app/manifests/v1?ns=http://" + probe.Host + "/", []int{404}, []string{"NAME_UNKNOWN"}},
		{"ns: userinfo", "/v2/faults/app/manifests/v1?ns=docker.io@" + probe.Host, []int{404}, []string{"NAME_UNKNOWN"}},
		{"ns: traversal", "/v2/faults/app/manifests/v1?ns=..%2F..%2Fetc", []int{404}, []string{"NAME_UNKNOWN"}},
		{"ns: blob", "/v2/faults/app/blobs/" + fw.app.Layers[0].Digest + "?ns=" + probe.Host, []int{404}, []string{"NAME_UNKNOWN"}},
		{"ns: tag list", "/v2/faults/app/tags/list?ns=" + probe.Host, []int{404}, []string{"NAME_UNKNOWN"}},
		{"ns: twice", "/v2/faults/app/manifests/v1?ns=docker.io&ns=" + probe.Host, []int{400}, []string{"NAME_INVALID"}},
		// Error messages repeat at most 256 bytes of what the client sent.
		{"60 KB path", "/v2/" + huge, []int{404}, []string{"UNSUPPORTED"}},
		{"60 KB tag", "/v2/faults/app/manifests/" + huge, []int{400}, []string{"TAG_INVALID"}},
		{"60 KB ns", "/v2/faults/app/manifests/v1?ns=" + huge, []int{404}, []string{"NAME_UNKNOWN"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := rawGet(g.Host, tc.target)
			if got.err != nil {
				t.Fatalf("GET %s: %v", tc.target, got.err)
			}
			t.Logf("GET %.80s → %d %.200s", tc.target, got.code, got.body)
			if !slices.Contains(tc.codes, got.code) {
				t.Errorf("status %d, want one of %v: %s", got.code, tc.codes, got.body)
			}
			ok := false
			for _, e := range tc.errs {
				ok = ok || (e == "" && len(got.body) == 0) || (e != "" && bytes.Contains(got.body, []byte(`"code":"`+e+`"`)))
			}
			if !ok {
				t.Errorf("body %s, want one of the errors %q", got.body, tc.errs)
			}
			if len(got.body) > 1024 {
				t.Errorf("a %d-byte error body: %.300s", len(got.body), got.body)
			}
			if bytes.Contains(got.body, []byte("root:")) {
				t.Errorf("body looks like a file's content: %s", got.body)
			}
		})
	}

	if n := len(fw.regFront.requests(regMark)); n != 0 {
		t.Errorf("the upstream registry saw %d requests for invalid names: %+v", n, fw.regFront.requests(regMark))
	}
	if n := len(fw.notaryFront.requests(notaryMark)); n != 0 {
		t.Errorf("the notary server saw %d requests for invalid names: %+v", n, fw.notaryFront.requests(notaryMark))
	}
	if n := probe.dials.Load(); n != 0 {
		t.Errorf("trustgate dialled a host named by the client %d times", n)
	}
	// Valid names without trust data are asked about, but leave nothing on disk either:
	// arbitrary names must not grow trust_dir.
	for _, n := range []string{"faults/nothing", "a/b/c/d", "x" + strings.Repeat("-y", 100)} {
		if got := getManifest(t, g, n, "v1"); got.code != http.StatusNotFound {
			t.Errorf("GET %s:v1 (no trust data): %d %s", n, got.code, got.body)
		}
	}
	for p := range listTree(t, root) {
		if !before[p] {
			t.Errorf("created under trust_dir's parent by invalid requests: %s", p)
		}
	}
	for p := range listTree(t, gateDir) {
		if !beforeGate[p] {
			t.Errorf("created in trustgate's working directory by invalid requests: %s", p)
		}
	}
	// The gate still serves.
	if got := getManifest(t, g, "faults/app", "v1"); got.code != http.StatusOK || got.digest() != fw.app.Digest {
		t.Errorf("GET faults/app:v1 after the attacks: %d %s", got.code, got.body)
	}
}

// listTree is every path under root, relative to it.
func listTree(t *testing.T, root string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestHeaderAttacks: request headers over the server's 64 KiB limit get 431 and leave the process
// serving; a large but legal Accept header is read, not echoed back in full.
func TestHeaderAttacks(t *testing.T) {
	fw := newFaultWorld(t)
	g := fw.gate(t, peers.GateConfig{})
	manifest := "/v2/faults/app/manifests/v1"

	t.Run("header over the limit", func(t *testing.T) {
		got := rawGet(g.Host, manifest, "X-Filler: "+strings.Repeat("x", 100<<10))
		if got.err != nil || got.code != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("100 KiB header: %d %v, want 431", got.code, got.err)
		}
	})
	t.Run("many headers over the limit", func(t *testing.T) {
		var hs []string
		for i := range 3000 {
			hs = append(hs, fmt.Sprintf("X-H%d: %s", i, strings.Repeat("y", 20)))
		}
		got := rawGet(g.Host, manifest, hs...)
		if got.err != nil || got.code != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("3000 headers: %d %v, want 431", got.code, got.err)
		}
	})
	t.Run("request target over the limit", func(t *testing.T) {
		got := rawGet(g.Host, "/v2/faults/"+strings.Repeat("a", 100<<10)+"/manifests/v1")
		if got.err != nil || (got.code != http.StatusRequestHeaderFieldsTooLarge && got.code != http.StatusRequestURITooLong) {
			t.Errorf("100 KiB request target: %d %v, want 431 or 414", got.code, got.err)
		}
	})
	t.Run("56 KB Accept naming the manifest's type", func(t *testing.T) {
		got := rawGet(g.Host, manifest, "Accept: "+bigAccept(56<<10, manifestAccept...))
		if got.err != nil || got.code != http.StatusOK || digestOf(got.body) != fw.app.Digest {
			t.Errorf("56 KB Accept: %d %v %.200s, want 200 with %s", got.code, got.err, got.body, fw.app.Digest)
		}
	})
	t.Run("56 KB Accept naming no served type", func(t *testing.T) {
		// faults/app is a docker schema2 manifest, which distribution serves whatever the
		// Accept header says; either way the header must not come back in the body.
		got := rawGet(g.Host, manifest, "Accept: "+bigAccept(56<<10, "application/vnd.example.last+json"))
		served := got.code == http.StatusOK && digestOf(got.body) == fw.app.Digest
		if got.err != nil || (!served && len(got.body) > 4<<10) {
			t.Errorf("56 KB Accept without the manifest's type: %d %v, %d-byte body %.300s; want the manifest or a short refusal, not the Accept echoed",
				got.code, got.err, len(got.body), got.body)
		}
	})
	t.Run("process still serves", func(t *testing.T) {
		if got := getManifest(t, g, "faults/app", "v1"); got.code != http.StatusOK || got.digest() != fw.app.Digest {
			t.Errorf("GET faults/app:v1 after the header attacks: %d %s", got.code, got.body)
		}
		if g.ExitErr() != nil {
			t.Errorf("trustgate exited: %v", g.ExitErr())
		}
	})
}

// bigAccept is an Accept value of about n bytes: made-up media types, then want.
func bigAccept(n int, want ...string) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "application/vnd.example.junk-%06d+json, ", i)
	}
	b.WriteString(strings.Join(want, ", "))
	return b.String()
}

func digestOf(b []byte) string { return response{body: b}.digest() }

// TestSlowloris: connections that send their headers a byte at a time are closed once
// timeouts.read_header has passed, and a normal client is answered promptly meanwhile.
func TestSlowloris(t *testing.T) {
	const (
		readHeader = time.Second
		conns      = 32
		slack      = 1500 * time.Millisecond // scheduling on a busy 2-core machine
	)
	fw := newFaultWorld(t)
	g := fw.gate(t, peers.GateConfig{ReadHeaderTimeout: readHeader})

	start := time.Now()
	closed := make(chan time.Duration, conns)
	for i := range conns {
		c, err := net.Dial("tcp", g.Host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		// Every fourth connection first makes a proper request and keeps the connection alive:
		// the header timeout must hold for a connection's later requests too.
		keepAlive := i%4 == 0
		go func() {
			br := bufio.NewReader(c)
			if keepAlive {
				if _, err := io.WriteString(c, "GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"); err == nil {
					if resp, err := http.ReadResponse(br, nil); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				}
			}
			go func() { // trickle a header that never ends
				if _, err := io.WriteString(c, "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
					return
				}
				for {
					time.Sleep(100 * time.Millisecond)
					if _, err := c.Write([]byte("a")); err != nil {
						return
					}
				}
			}()
			_, _ = io.Copy(io.Discard, br) // the server's answer, if any, then its close
			closed <- time.Since(start)
		}()
	}

	// A normal client keeps being served while the slow connections are open.
	client := &http.Client{Timeout: readHeader + slack, Transport: &http.Transport{DisableKeepAlives: true}}
	for time.Since(start) < readHeader+slack {
		resp, err := client.Get(g.URL + "/v2/")
		if err != nil {
			t.Fatalf("a normal request during the slowloris attack: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("a normal request during the slowloris attack: %s", resp.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}

	deadline := start.Add(readHeader + slack)
	var last time.Duration
	for i := range conns {
		select {
		case d := <-closed:
			last = max(last, d)
		case <-time.After(time.Until(deadline)):
			if len(closed) > 0 { // both were ready: the close came first
				last = max(last, <-closed)
				continue
			}
			t.Fatalf("%d of %d slow connections still open %v after they started (timeouts.read_header %v)",
				conns-i, conns, time.Since(start).Round(time.Millisecond), readHeader)
		}
	}
	t.Logf("all %d slow connections closed within %v", conns, last.Round(time.Millisecond))
	if got := getManifest(t, g, "faults/app", "v1"); got.code != http.StatusOK {
		t.Errorf("GET faults/app:v1 after the slowloris attack: %d %s", got.code, got.body)
	}
}

// dialRecorder is a listener that records every connection made to it; it never answers.
type dialRecorder struct {
	Host  string
	ln    net.Listener
	dials atomic.Int64
}

func startDialRecorder(tb testing.TB) *dialRecorder {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	d := &dialRecorder{Host: ln.Addr().String(), ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d.dials.Add(1)
			c.Close()
		}
	}()
	tb.Cleanup(func() { ln.Close() })
	return d
}

// rawResponse is an answer to a request written byte for byte on a fresh connection.
type rawResponse struct {
	code   int
	header http.Header
	body   []byte
	err    error // the connection failed before a response could be read
}

// rawGet sends "GET target HTTP/1.1" with target and headers exactly as given (no client-side
// parsing, cleaning or escaping) and reads the response.
func rawGet(host, target string, header ...string) rawResponse {
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		return rawResponse{err: err}
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\n", target, host)
	for _, h := range header {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	if _, err := conn.Write(b.Bytes()); err != nil {
		return rawResponse{err: err}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return rawResponse{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return rawResponse{code: resp.StatusCode, header: resp.Header, body: body, err: err}
}
