package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/demo"
)

func readyz(t *testing.T, g *gateUnderTest) (int, readiness) {
	t.Helper()
	code, body := g.status(t, "/readyz")
	var r readiness
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	return code, r
}

func checkNamed(r readiness, name string) (check, bool) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c, true
		}
	}
	return check{}, false
}

// TestReadyz: /healthz answers whenever the process does; /readyz is 200 only while the trust dir
// is writable and every upstream and trust server answers, and says which does not.
func TestReadyz(t *testing.T) {
	env, err := demo.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	cfg, err := demoConfig(env, "127.0.0.1:0", filepath.Join(t.TempDir(), "trust"), "info")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Health.MainListener = true
	cfg.Health.ProbeInterval = time.Second
	g := startServe(t, cfg)
	if code, body := g.status(t, "/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, r := readyz(t, g)
		if code == 200 && r.Ready {
			for _, name := range []string{"config", "trust_dir", "upstream docker.io", "trust_server docker.io"} {
				if c, ok := checkNamed(r, name); !ok || !c.OK {
					t.Errorf("ready, but check %q = %+v", name, c)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never ready: %d %+v", code, r)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A trust dir that can no longer be written (here: replaced by a file, which stops root too)
	// makes the mirror unready, and says so.
	if err := os.RemoveAll(cfg.TrustDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.TrustDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, r := readyz(t, g)
	if c, _ := checkNamed(r, "trust_dir"); code != http.StatusServiceUnavailable || r.Ready || c.OK || !strings.Contains(c.Detail, "not writable") {
		t.Errorf("unwritable trust dir: /readyz = %d %+v", code, c)
	}
}

// TestReadyzUnreachable: peers nobody answers for are not ready, each named with the error.
func TestReadyzUnreachable(t *testing.T) {
	cfg, err := parseConfig([]byte(minimalConfig+"listen: 127.0.0.1:0\nhealth: {main_listener: true, probe_interval: 1s}\ntrust_dir: "+filepath.Join(t.TempDir(), "t")+"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	g := startServe(t, cfg)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, r := readyz(t, g)
		up, _ := checkNamed(r, "upstream docker.io")
		ts, _ := checkNamed(r, "trust_server docker.io")
		if code == http.StatusServiceUnavailable && !r.Ready && up.LastCheck != nil && ts.LastCheck != nil {
			if up.OK || ts.OK || !strings.Contains(up.Detail, "connect") || !strings.Contains(ts.Detail, "connect") {
				t.Errorf("unreachable peers: upstream %+v, trust server %+v", up, ts)
			}
			if td, _ := checkNamed(r, "trust_dir"); !td.OK {
				t.Errorf("trust_dir: %+v", td)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never reported the probes: %d %+v", code, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, _ := g.status(t, "/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
}

// TestReadyzOptionalDependencies: an unreachable trust server makes the mirror unready unless
// health.require_trust_servers is false; an unreachable state.redis leaves it ready unless
// health.require_shared_state is true. Either way the failure is reported, as optional or not.
func TestReadyzOptionalDependencies(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized) // a registry's /v2/ to an anonymous client
	}))
	defer up.Close()
	for _, tc := range []struct {
		health, extra string // health keys, other top-level YAML
		check         string // the failing check
		require       bool   // whether that check must be required
		code          int
	}{
		{"require_trust_servers: true", "", "trust_server docker.io", true, http.StatusServiceUnavailable},
		{"require_trust_servers: false", "", "trust_server docker.io", false, http.StatusOK},
		{"require_trust_servers: false, require_shared_state: false", `state: {redis: {addr: "127.0.0.1:1", timeout: 200ms}}`,
			"shared_state redis", false, http.StatusOK},
		{"require_trust_servers: false, require_shared_state: true", `state: {redis: {addr: "127.0.0.1:1", timeout: 200ms}}`,
			"shared_state redis", true, http.StatusServiceUnavailable},
	} {
		doc := fmt.Sprintf(`listen: 127.0.0.1:0
trust_dir: %q
health: {main_listener: true, probe_interval: 1s, %s}
%s
upstreams:
  - name: docker.io
    url: %s
    gun_prefix: docker.io
    notary: {url: "http://127.0.0.1:1"}
`, filepath.Join(t.TempDir(), "t"), tc.health, tc.extra, up.URL)
		cfg, err := parseConfig([]byte(doc), nil)
		if err != nil {
			t.Fatal(err)
		}
		g := startServe(t, cfg)
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, r := readyz(t, g)
			c, found := checkNamed(r, tc.check)
			ts, _ := checkNamed(r, "trust_server docker.io")
			u, _ := checkNamed(r, "upstream docker.io")
			if found && ts.LastCheck != nil && u.LastCheck != nil {
				if code != tc.code || c.OK || c.Optional == tc.require || !u.OK {
					t.Errorf("%s: /readyz %d, %s %+v, upstream %+v; want %d", tc.health, code, tc.check, c, u, tc.code)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no probe outcome: %+v", tc.health, r)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
