package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

const validConfig = `
listen: 127.0.0.1:5050
trust_ttl: 5s
default_upstream: docker.io
upstreams:
  - name: docker.io
    url: http://127.0.0.1:5001
    gun_prefix: docker.io
    docker_hub: true
    token_realms: [https://auth.example.com]
    notary:
      url: http://127.0.0.1:4443
      token_realms: ["https://auth.example.com:5001"]
      trust_pinning:
        certs:
          docker.io/library/alpine: [abc]
policy:
  default: {mode: enforce}
  rules:
    - {match: "docker.io/library/debug*", mode: warn}
`

func TestParseConfig(t *testing.T) {
	cfg, err := parseConfig([]byte(validConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:5050" || cfg.TrustTTL != 5*time.Second || cfg.DefaultUpstream != "docker.io" {
		t.Errorf("scalars: %+v", cfg)
	}
	if len(cfg.Upstreams) != 1 || !cfg.Upstreams[0].DockerHub || cfg.Upstreams[0].Notary.URL != "http://127.0.0.1:4443" {
		t.Errorf("upstreams: %+v", cfg.Upstreams)
	}
	if got := cfg.Upstreams[0].Notary.TrustPinning.Certs["docker.io/library/alpine"]; len(got) != 1 || got[0] != "abc" {
		t.Errorf("pinning: %v", got)
	}
	if u := cfg.Upstreams[0]; len(u.TokenRealms) != 1 || len(u.Notary.TokenRealms) != 1 || u.Notary.TokenRealms[0] != "https://auth.example.com:5001" {
		t.Errorf("token_realms: %q, notary %q", u.TokenRealms, u.Notary.TokenRealms)
	}
	if tl := cfg.TrustLimits; tl.MaxMetadataBytes != 64<<20 || tl.MaxConcurrentBootstraps != 8 || tl.MaxRootBytes != 1<<20 {
		t.Errorf("trust_limits defaults: %+v", tl)
	}
	if want := (TimeoutConfig{ReadHeader: 10 * time.Second, Upstream: 30 * time.Second, Trust: 30 * time.Second}); cfg.Timeouts != want {
		t.Errorf("timeouts = %+v, want defaults %+v", cfg.Timeouts, want)
	}
	if cfg.Cache.ManifestEntries != 4096 || cfg.Log.Format != "json" {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	if len(cfg.Policy.Rules) != 1 || cfg.Policy.Rules[0].Mode != "warn" {
		t.Errorf("policy: %+v", cfg.Policy)
	}
}

func TestParseConfigEnvAndFlags(t *testing.T) {
	t.Setenv("TRUSTGATE_TRUST_TTL", "7s")
	t.Setenv("TRUSTGATE_LOG_LEVEL", "debug")
	t.Setenv("TRUSTGATE_LISTEN", "127.0.0.1:6000")
	t.Setenv("TRUSTGATE_TRUST_LIMITS_MAX_METADATA_BYTES", "33554432")
	t.Setenv("TRUSTGATE_TIMEOUTS_READ_HEADER", "2s")
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.String("listen", "", "")
	if err := fs.Parse([]string{"--listen", "127.0.0.1:7000"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig([]byte(validConfig), changedFlags(fs))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TrustTTL != 7*time.Second || cfg.Log.Level != "debug" {
		t.Errorf("environment not applied: ttl=%s level=%s", cfg.TrustTTL, cfg.Log.Level)
	}
	if cfg.TrustLimits.MaxMetadataBytes != 32<<20 {
		t.Errorf("environment not applied: trust_limits.max_metadata_bytes=%d", cfg.TrustLimits.MaxMetadataBytes)
	}
	if cfg.Timeouts.ReadHeader != 2*time.Second {
		t.Errorf("environment not applied to a nested key: timeouts.read_header=%s", cfg.Timeouts.ReadHeader)
	}
	if cfg.Listen != "127.0.0.1:7000" {
		t.Errorf("flag should beat environment and file: listen=%s", cfg.Listen)
	}
}

func TestParseConfigErrorsNameTheKey(t *testing.T) {
	base := validConfig
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", base + "trust_tll: 5s\n", "trust_tll"},
		{"unknown nested key", strings.Replace(base, "docker_hub: true", "docker_hub: true\n    colour: red", 1), "colour"},
		{"bad duration", strings.Replace(base, "trust_ttl: 5s", "trust_ttl: soon", 1), "trust_ttl"},
		{"negative ttl", strings.Replace(base, "trust_ttl: 5s", "trust_ttl: -1s", 1), "trust_ttl: must be positive"},
		{"bad listen", strings.Replace(base, "127.0.0.1:5050", "nowhere", 1), "listen:"},
		{"bad upstream url", strings.Replace(base, "url: http://127.0.0.1:5001", "url: ftp://x", 1), "upstreams[0].url"},
		{"bad notary url", strings.Replace(base, "url: http://127.0.0.1:4443", "url: 127.0.0.1:4443", 1), "upstreams[0].notary.url"},
		{"unknown default upstream", strings.Replace(base, "default_upstream: docker.io", "default_upstream: quay.io", 1), "default_upstream"},
		{"zero timeout", base + "timeouts: {upstream: 0s}\n", "timeouts.upstream: must be positive"},
		{"bad log level", base + "log: {level: loud}\n", "log.level"},
		{"bad redis addr", base + "state: {redis: {addr: nowhere}}\n", "state.redis.addr"},
		{"empty redis key prefix", base + "state: {redis: {addr: \"127.0.0.1:6379\", key_prefix: \"\"}}\n", "state.redis.key_prefix"},
		{"redis lock_wait", base + "state: {redis: {addr: \"127.0.0.1:6379\", lock_wait: 0s}}\n", "state.redis.lock_wait"},
		{"redis ca_file", base + "state: {redis: {addr: \"127.0.0.1:6379\", tls: {enabled: true, ca_file: /nonexistent/ca.pem}}}\n", "state.redis.tls.ca_file"},
		{"redis unknown key", base + "state: {redis: {adress: \"127.0.0.1:6379\"}}\n", "adress"},
		{"missing ca file", strings.Replace(base, "gun_prefix: docker.io", "gun_prefix: docker.io\n    tls: {ca_file: /nonexistent/ca.pem}", 1), "upstreams[0].tls.ca_file"},
		{"no upstreams", "listen: 127.0.0.1:1\n", "upstreams: none configured"},
		{"pprof without listener", base + "metrics: {pprof: true}\n", "metrics.pprof: needs metrics.listen"},
		{"not yaml", "upstreams: [\n", "config:"},
		{"token realm with a path", strings.Replace(base, "token_realms: [https://auth.example.com]", "token_realms: [https://auth.example.com/token]", 1), "upstreams[0].token_realms"},
		{"zero metadata budget", base + "trust_limits: {max_metadata_bytes: 0}\n", "trust_limits.max_metadata_bytes"},
		{"root cap over the budget", base + "trust_limits: {max_metadata_bytes: 1000, max_root_bytes: 2000}\n", "trust_limits.max_root_bytes"},
		{"root cap over notary's", base + "trust_limits: {max_metadata_bytes: 1073741824, max_root_bytes: 209715200}\n", "trust_limits.max_root_bytes"},
		{"no bootstraps", base + "trust_limits: {max_concurrent_bootstraps: 0}\n", "trust_limits.max_concurrent_bootstraps"},
		{"notary token realm not a URL", strings.Replace(base, `["https://auth.example.com:5001"]`, "[auth.example.com]", 1), "upstreams[0].notary.token_realms"},
		// An upstream's trust state lives in trust_dir/<name>: ".." would be outside trust_dir,
		// "." would be trust_dir itself.
		{"upstream name ..", strings.Replace(strings.Replace(base, "name: docker.io", "name: ..", 1), "default_upstream: docker.io", "default_upstream: ..", 1), "upstreams[0].name"},
		{"upstream name .", strings.Replace(strings.Replace(base, "name: docker.io", "name: .", 1), "default_upstream: docker.io", "default_upstream: .", 1), "upstreams[0].name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tt.yaml), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want error containing %q", err, tt.want)
			}
		})
	}
}

// buildConfigErr parses doc (which must parse) with trust_dir in memory and returns what build
// says of it: the policy is compiled there, once per start or reload.
func buildConfigErr(t *testing.T, doc []byte) error {
	t.Helper()
	cfg, err := parseConfig(doc, nil)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	cfg.TrustDir = memoryTrustDir
	b, err := build(cfg, slog.New(slog.DiscardHandler), nil)
	if err == nil {
		b.close()
	}
	return err
}

func TestBuildPolicyErrorsNameTheKey(t *testing.T) {
	for _, tt := range []struct{ name, yaml, want string }{
		{"bad policy mode", strings.Replace(validConfig, "mode: warn", "mode: lenient", 1), "policy.rules[0]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := buildConfigErr(t, []byte(tt.yaml)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestLoadConfigNamesFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(f, []byte("bogus_key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadConfig(f, nil)
	if err == nil || !strings.Contains(err.Error(), f) || !strings.Contains(err.Error(), "bogus_key") {
		t.Fatalf("got %v", err)
	}
}

// TestLocateReference: resolve maps a reference to an upstream and GUN through the proxy's own
// name mapping (docker.io's library/ included).
func TestLocateReference(t *testing.T) {
	cfg, err := parseConfig([]byte(strings.Replace(validConfig, "policy:", `  - name: registry.example.com
    url: https://registry.example.com
    gun_prefix: registry.example.com
    notary: {url: "https://notary.example.com"}
policy:`, 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.TrustDir = memoryTrustDir
	b, err := build(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	tests := []struct{ ref, upstream, gun, tag, err string }{
		{"alpine", "docker.io", "docker.io/library/alpine", "latest", ""},
		{"alpine:3.20", "docker.io", "docker.io/library/alpine", "3.20", ""},
		{"registry.example.com/team/app:v1", "registry.example.com", "registry.example.com/team/app", "v1", ""},
		{"quay.io/x/y:1", "", "", "", "not a configured upstream"},
		{"alpine@sha256:" + strings.Repeat("a", 64), "", "", "", "already pinned"},
		{"library/Alpine", "", "", "", "must be lowercase"},
		{"not a ref!", "", "", "", "invalid reference format"},
	}
	for _, tt := range tests {
		u, gun, tag, err := b.locate(tt.ref)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err = %v, want %q", tt.ref, err, tt.err)
			}
			continue
		}
		if err != nil || u.Name != tt.upstream || gun != tt.gun || tag != tt.tag {
			t.Errorf("%s: got (%v, %s, %s, %v)", tt.ref, u, gun, tag, err)
		}
	}
}

// FuzzParseConfig: no configuration file, however malformed, may crash start-up.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(validConfig))
	f.Add([]byte("upstreams: [{name: x}]"))
	f.Add([]byte("policy: {rules: [{match: '***'}]}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parseConfig(data, nil)
	})
}

// The shipped examples must stay loadable: they are what a new user copies first. That includes
// the configuration in the Kubernetes ConfigMap and the Helm chart's default values.
func TestExampleConfigsLoad(t *testing.T) {
	for _, f := range []string{"../../configs/trustgate.yaml", "../../configs/local-dev.yaml"} {
		if _, err := loadConfig(f, nil); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	for _, e := range []struct{ file, key string }{
		{"../../deploy/kubernetes/configmap.yaml", "  trustgate.yaml: |"},
		{"../../deploy/helm/trustgate/values.yaml", "config:"},
	} {
		b, err := os.ReadFile(e.file)
		if err != nil {
			t.Fatal(err)
		}
		doc := embeddedBlock(string(b), e.key)
		if !strings.Contains(doc, "upstreams:") {
			t.Fatalf("%s: no configuration under %q", e.file, e.key)
		}
		if _, err := parseConfig([]byte(doc), nil); err != nil {
			t.Errorf("%s %s: %v\n%s", e.file, e.key, err, doc)
		}
	}
}

// embeddedBlock returns the lines indented under the line key, de-indented.
func embeddedBlock(doc, key string) string {
	lines := strings.Split(doc, "\n")
	var out []string
	indent := -1
	for i, l := range lines {
		if l != key {
			continue
		}
		for _, l := range lines[i+1:] {
			if strings.TrimSpace(l) == "" {
				continue
			}
			n := len(l) - len(strings.TrimLeft(l, " "))
			if indent < 0 {
				indent = n
			}
			if n < indent {
				break
			}
			out = append(out, l[indent:])
		}
		break
	}
	return strings.Join(out, "\n") + "\n"
}

func TestParseConfigEveryRoot(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want bool
	}{
		{"", false},
		{"\n      trust_pinning: {every_root: true}", true},
	} {
		doc := "upstreams:\n  - name: docker.io\n    url: http://127.0.0.1:5001\n    gun_prefix: docker.io\n    notary:\n      url: http://127.0.0.1:4443" + tc.yaml + "\n"
		cfg, err := parseConfig([]byte(doc), nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		if got := cfg.Upstreams[0].Notary.TrustPinning.EveryRoot; got != tc.want {
			t.Errorf("%q: every_root = %v, want %v", tc.yaml, got, tc.want)
		}
	}
}

// TestParseConfigState: without state.redis nothing is shared (addr empty); with it, the defaults
// fill what the file leaves out, and TRUSTGATE_STATE_REDIS_PASSWORD supplies the secret.
func TestParseConfigState(t *testing.T) {
	cfg, err := parseConfig([]byte(validConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.State.Redis.Addr != "" {
		t.Errorf("state.redis.addr defaults to %q, want empty (no shared state)", cfg.State.Redis.Addr)
	}
	t.Setenv("TRUSTGATE_STATE_REDIS_PASSWORD", "s3cret")
	cfg, err = parseConfig([]byte(validConfig+"state:\n  redis: {addr: \"redis.internal:6380\", db: 2, tls: {enabled: true, server_name: redis.internal}}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.State.Redis
	if r.Addr != "redis.internal:6380" || r.DB != 2 || !r.TLS.Enabled || r.TLS.ServerName != "redis.internal" || r.Password != "s3cret" {
		t.Errorf("state.redis = %+v", r)
	}
	if r.KeyPrefix != "trustgate:" || r.Lease != 5*time.Second || r.LockWait != 10*time.Second || r.Timeout != 2*time.Second {
		t.Errorf("state.redis defaults = %+v", r)
	}
}
