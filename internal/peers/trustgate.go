package peers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BuildTrustgate compiles ./cmd/trustgate of the module containing the working directory into dir
// and returns the binary's path. Tests run the real binary, so configuration parsing, wiring and
// logging are covered as users get them. Callers build once (TestMain) and share the path.
func BuildTrustgate(dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "trustgate")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/trustgate")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/trustgate: %w\n%s", err, b)
	}
	return out, nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module")
	}
	return filepath.Dir(mod), nil
}

// GateConfig is the part of trustgate's configuration tests vary. It is rendered as the YAML the
// binary reads (the format in configs/trustgate.yaml) with one docker.io upstream.
type GateConfig struct {
	RegistryURL string        // upstream registry (docker.io's stand-in)
	NotaryURL   string        // its notary-server
	TrustDir    string        // "" = a fresh temporary directory
	TrustTTL    time.Duration // 0 = 30s
	LogLevel    string        // "" = debug, so blob decisions are visible too
	DefaultMode string        // "" = enforce
	Rules       []GateRule
	// PinCerts is notary.trust_pinning.certs: GUN (or "prefix*") → root certificate key IDs.
	PinCerts    map[string][]string
	DisableTOFU bool
	EveryRoot   bool // notary.trust_pinning.every_root
	// MaxMetadataBytes, MaxRootBytes and MaxConcurrentBootstraps are trust_limits; 0 leaves the
	// key out (its default).
	MaxMetadataBytes, MaxRootBytes int64
	MaxConcurrentBootstraps        int
	// TempDir is the blob spool directory; "" = the binary's default ($TMPDIR).
	TempDir string
	// Timeouts; 0 = the binary's default.
	ReadHeaderTimeout, UpstreamTimeout, TrustTimeout time.Duration
	// Credentials trustgate itself uses for the upstream registry and its notary server
	// ("" = anonymous).
	RegistryUser, RegistryPassword string
	NotaryUser, NotaryPassword     string
	// Extra is YAML appended at the top level, for keys no field above covers.
	Extra string
	// RedisAddr is state.redis.addr: the Redis replicas share trust state through ("" = none);
	// RedisLockWait and RedisLease are its lock_wait and lease (0 = the binary's default).
	RedisAddr                 string
	RedisLockWait, RedisLease time.Duration
}

// GateRule is one policy rule.
type GateRule struct {
	Match, Mode string
	Roles       []string // nil = policy default
	// FrozenFile and FrozenSHA256 set the rule's frozen trust ("" = none).
	FrozenFile, FrozenSHA256 string
	// Verifiers is the rule's verifiers block as a YAML flow mapping, e.g.
	// `{require: any, cosign: {keys: ["/k.pub"]}}`; "" leaves it out.
	Verifiers string
}

// YAML renders the configuration. Strings are emitted as JSON strings, which YAML reads as
// double-quoted scalars, so paths and URLs need no escaping rules of their own.
func (c GateConfig) YAML() string {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	ttl := c.TrustTTL
	if ttl == 0 {
		ttl = 30 * time.Second
	}
	level := c.LogLevel
	if level == "" {
		level = "debug"
	}
	mode := c.DefaultMode
	if mode == "" {
		mode = "enforce"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "listen: 127.0.0.1:0\n")
	fmt.Fprintf(&b, "log: {level: %s, format: json}\n", level)
	fmt.Fprintf(&b, "trust_dir: %s\n", q(c.TrustDir))
	fmt.Fprintf(&b, "trust_ttl: %s\n", ttl)
	if c.MaxMetadataBytes != 0 || c.MaxRootBytes != 0 || c.MaxConcurrentBootstraps != 0 {
		fmt.Fprintf(&b, "trust_limits:\n")
		for _, kv := range []struct {
			key string
			v   int64
		}{{"max_metadata_bytes", c.MaxMetadataBytes}, {"max_root_bytes", c.MaxRootBytes}, {"max_concurrent_bootstraps", int64(c.MaxConcurrentBootstraps)}} {
			if kv.v != 0 {
				fmt.Fprintf(&b, "  %s: %d\n", kv.key, kv.v)
			}
		}
	}
	if c.TempDir != "" {
		fmt.Fprintf(&b, "temp_dir: %s\n", q(c.TempDir))
	}
	var timeouts []string
	for _, t := range []struct {
		key string
		d   time.Duration
	}{{"read_header", c.ReadHeaderTimeout}, {"upstream", c.UpstreamTimeout}, {"trust", c.TrustTimeout}} {
		if t.d > 0 {
			timeouts = append(timeouts, fmt.Sprintf("%s: %s", t.key, t.d))
		}
	}
	if len(timeouts) > 0 {
		fmt.Fprintf(&b, "timeouts: {%s}\n", strings.Join(timeouts, ", "))
	}
	if c.RedisAddr != "" {
		fmt.Fprintf(&b, "state:\n  redis:\n    addr: %s\n", q(c.RedisAddr))
		if c.RedisLockWait > 0 {
			fmt.Fprintf(&b, "    lock_wait: %s\n", c.RedisLockWait)
		}
		if c.RedisLease > 0 {
			fmt.Fprintf(&b, "    lease: %s\n", c.RedisLease)
		}
	}
	fmt.Fprintf(&b, "default_upstream: docker.io\n")
	fmt.Fprintf(&b, "upstreams:\n  - name: docker.io\n    url: %s\n    gun_prefix: docker.io\n    docker_hub: true\n", q(c.RegistryURL))
	fmt.Fprintf(&b, "    username: %s\n    password: %s\n", q(c.RegistryUser), q(c.RegistryPassword))
	fmt.Fprintf(&b, "    notary:\n      url: %s\n", q(c.NotaryURL))
	if c.NotaryUser != "" || c.NotaryPassword != "" {
		fmt.Fprintf(&b, "      username: %s\n      password: %s\n", q(c.NotaryUser), q(c.NotaryPassword))
	}
	if len(c.PinCerts) > 0 || c.DisableTOFU || c.EveryRoot {
		certs, _ := json.Marshal(c.PinCerts) // a JSON object is a YAML flow mapping
		if c.PinCerts == nil {
			certs = []byte("{}")
		}
		fmt.Fprintf(&b, "      trust_pinning: {certs: %s, disable_tofu: %t, every_root: %t}\n", certs, c.DisableTOFU, c.EveryRoot)
	}
	fmt.Fprintf(&b, "policy:\n  default: {mode: %s}\n", mode)
	if len(c.Rules) > 0 {
		fmt.Fprintf(&b, "  rules:\n")
		for _, r := range c.Rules {
			fmt.Fprintf(&b, "    - {match: %s, mode: %s", q(r.Match), r.Mode)
			if r.Roles != nil {
				rs, _ := json.Marshal(r.Roles)
				fmt.Fprintf(&b, ", notary: {roles: %s}", rs)
			}
			if r.FrozenFile != "" {
				fmt.Fprintf(&b, ", frozen: {file: %s, sha256: %s}", q(r.FrozenFile), q(r.FrozenSHA256))
			}
			if r.Verifiers != "" {
				fmt.Fprintf(&b, ", verifiers: %s", r.Verifiers)
			}
			fmt.Fprintf(&b, "}\n")
		}
	}
	b.WriteString(c.Extra)
	return b.String()
}

// Trustgate is a running `trustgate serve`.
type Trustgate struct {
	URL        string // http://127.0.0.1:port
	Host       string // 127.0.0.1:port
	ConfigPath string
	TrustDir   string
	*Process
}

// StartTrustgate writes cfg next to a fresh trust_dir (unless cfg sets one), starts bin serve, and
// waits until /v2/ answers.
func StartTrustgate(tb testing.TB, bin string, cfg GateConfig) *Trustgate {
	tb.Helper()
	dir := tb.TempDir()
	if cfg.TrustDir == "" {
		cfg.TrustDir = filepath.Join(dir, "trust")
	}
	path := filepath.Join(dir, "trustgate.yaml")
	if err := os.WriteFile(path, []byte(cfg.YAML()), 0o644); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", path)
	cmd.Dir = dir
	cmd.Env = cleanEnv("TRUSTGATE_")
	p := StartProcess(tb, "trustgate", dir, cmd)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := WaitListen(ctx, p); err != nil {
		tb.Fatalf("peers: trustgate: %v", err)
	}
	// It may listen on several ports (metrics.listen); the registry's is the one it logs as addr.
	line, err := p.Log.WaitFor(ctx, func(l string) bool { return strings.Contains(l, `"msg":"trustgate serving"`) })
	if err != nil {
		tb.Fatalf("peers: trustgate: %v\n%s", err, p.Log.Tail(30))
	}
	var serving struct{ Addr string }
	if err := json.Unmarshal([]byte(line), &serving); err != nil || serving.Addr == "" {
		tb.Fatalf("peers: trustgate: no addr in %s: %v", line, err)
	}
	addr := serving.Addr
	g := &Trustgate{URL: "http://" + addr, Host: addr, ConfigPath: path, TrustDir: cfg.TrustDir, Process: p}
	if err := waitHTTP(ctx, g.URL+"/v2/", http.StatusOK); err != nil {
		tb.Fatalf("peers: trustgate: %v\n%s", err, p.Log.Tail(30))
	}
	return g
}

// Decision is one "decision" record of trustgate's JSON log.
type Decision struct {
	Level    string `json:"level"`
	Repo     string `json:"repo"`
	Tag      string `json:"tag"`
	Digest   string `json:"digest"`
	Role     string `json:"role"`
	Verifier string `json:"verifier"`
	Signer   string `json:"signer"`
	Latency  int64  `json:"latency"` // nanoseconds
	Decision string `json:"decision"`
	Reason   string `json:"reason"`
	Upstream string `json:"upstream"`
	Method   string `json:"method"`
}

// Decisions parses the decision records logged so far.
func (g *Trustgate) Decisions() []Decision {
	return jsonRecords[Decision](g.Log.Lines(), "decision")
}

// PeakRSS is the process's high-water resident set size (VmHWM) in bytes.
func PeakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
				return 0, fmt.Errorf("parsing VmHWM %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
