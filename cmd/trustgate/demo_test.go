package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var readyLine = regexp.MustCompile(`trustgate on (\S+), trust state in (\S+) \(removed on exit\)`)

// demoLeftovers checks that the demo's listener is closed and its temporary directory removed,
// given the address and trust directory it printed.
func demoLeftovers(t *testing.T, out string) {
	t.Helper()
	m := readyLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no ready line in output:\n%s", out)
	}
	if c, err := net.DialTimeout("tcp", m[1], time.Second); err == nil {
		c.Close()
		t.Errorf("trustgate still listens on %s after the demo returned", m[1])
	}
	if _, err := os.Stat(filepath.Dir(m[2])); !os.IsNotExist(err) {
		t.Errorf("temporary directory %s: %v; want it removed", filepath.Dir(m[2]), err)
	}
}

// TestDemoCheck runs `trustgate demo --check` in-process: the self-check passes through the
// mirror serve builds, and the demo then stops, closing its listener and removing its files.
func TestDemoCheck(t *testing.T) {
	var stdout, stderr syncBuffer
	err := run(context.Background(), []string{"demo", "--check", "--listen", "127.0.0.1:0"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("demo --check: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	out := stdout.String()
	for _, want := range []string{
		"  ok    demo/hello:signed    served at its signed digest sha256:",
		"  ok    demo/hello:unsigned  refused with 404 MANIFEST_UNKNOWN",
		"  ok    demo/hello:moved     served at its signed digest sha256:",
		"  ok    demo/multi:signed    served at its signed digest sha256:",
		"Self-check passed.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Try it") {
		t.Errorf("--check printed the commands to try:\n%s", out)
	}
	if !strings.Contains(stderr.String(), "decision=refuse") {
		t.Errorf("trustgate's log has no refusal:\n%s", &stderr)
	}
	demoLeftovers(t, out)
}

// TestDemoServesUntilCancelled runs the interactive demo: it prints the commands, keeps serving
// after the self-check, and returns nil (exit 0) when its context ends, as on Ctrl-C.
func TestDemoServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, []string{"demo", "--listen", "127.0.0.1:0"}, &stdout, &stderr) }()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(stdout.String(), "Ctrl-C stops the demo.") {
		select {
		case err := <-errc:
			t.Fatalf("demo returned before serving: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
		case <-deadline:
			t.Fatalf("no commands printed:\n%s\nstderr:\n%s", &stdout, &stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
	out := stdout.String()
	gate := readyLine.FindStringSubmatch(out)[1]
	for _, want := range []string{
		"crane digest --insecure " + gate + "/demo/hello:signed ",
		"crane digest --insecure " + gate + "/demo/hello:unsigned ",
		`"registry-mirrors": ["http://` + gate + `"]`,
		`server = "http://` + gate + `"`,
		"skopeo inspect --tls-verify=false docker://" + gate + "/demo/hello:signed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("commands lack %q:\n%s", want, out)
		}
	}
	if c, err := net.Dial("tcp", gate); err != nil {
		t.Errorf("trustgate does not serve after the self-check: %v", err)
	} else {
		c.Close()
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("demo after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop after cancel")
	}
	demoLeftovers(t, out)
}

func TestDemoRefusesArguments(t *testing.T) {
	var stdout, stderr syncBuffer
	if err := run(context.Background(), []string{"demo", "extra"}, &stdout, &stderr); err != exitError(2) {
		t.Errorf("demo extra = %v; want exit status 2", err)
	}
}

func TestClientAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5000": "127.0.0.1:5000",
		"0.0.0.0:5000":   "127.0.0.1:5000",
		"[::]:5000":      "127.0.0.1:5000",
		"[::1]:5000":     "[::1]:5000",
		"10.0.0.7:80":    "10.0.0.7:80",
	} {
		a, err := net.ResolveTCPAddr("tcp", in)
		if err != nil {
			t.Fatal(err)
		}
		if got := clientAddr(a); got != want {
			t.Errorf("clientAddr(%s) = %s; want %s", in, got, want)
		}
	}
}
