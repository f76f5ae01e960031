package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/trustgate/trustgate/credscope"
	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/resolver"
)

// Config is the whole configuration file. Field tags are the YAML keys; TRUSTGATE_<KEY> (upper
// case, '.' → '_') overrides any scalar key, e.g. TRUSTGATE_TRUST_TTL=10s, TRUSTGATE_LOG_LEVEL=debug.
type Config struct {
	Listen          string           `mapstructure:"listen"`
	TLS             ServerTLS        `mapstructure:"tls"`
	Log             LogConfig        `mapstructure:"log"`
	Metrics         MetricsConfig    `mapstructure:"metrics"`
	TrustDir        string           `mapstructure:"trust_dir"`
	TrustTTL        time.Duration    `mapstructure:"trust_ttl"`
	TrustLimits     TrustLimits      `mapstructure:"trust_limits"`
	Cache           CacheConfig      `mapstructure:"cache"`
	TempDir         string           `mapstructure:"temp_dir"`
	BlobSpoolBytes  int64            `mapstructure:"blob_spool_bytes"`
	BlobStore       BlobStoreConfig  `mapstructure:"blob_store"`
	DefaultUpstream string           `mapstructure:"default_upstream"`
	Upstreams       []UpstreamConfig `mapstructure:"upstreams"`
	Policy          policy.Config    `mapstructure:"policy"`
	Timeouts        TimeoutConfig    `mapstructure:"timeouts"`
	Health          HealthConfig     `mapstructure:"health"`
	State           StateConfig      `mapstructure:"state"`
}

// HealthConfig configures /healthz and /readyz, which are always served on the metrics listener.
type HealthConfig struct {
	// MainListener also serves them on the registry listener, for setups with no metrics port.
	MainListener bool `mapstructure:"main_listener"`
	// ProbeInterval is how often a dependency that real traffic has not reached within the
	// interval is probed (GET /v2/ on an upstream, /_notary_server/health on a trust server).
	ProbeInterval time.Duration `mapstructure:"probe_interval"`
	// RequireTrustServers makes an unreachable trust server fail /readyz (the default: pulls of
	// the repositories it holds answer 503). false still reports it but keeps the mirror ready,
	// for a trust server that is gone for good while frozen trust files serve what matters.
	RequireTrustServers bool `mapstructure:"require_trust_servers"`
	// RequireSharedState and RequireBlobStore make an unreachable state.redis or blob_store fail
	// /readyz. Both default to false: replicas keep serving without them (verified local state;
	// blobs from upstream), and one shared store's outage must not take every replica out of the
	// load balancer at once. Set them where serving without the store is worse than not serving.
	RequireSharedState bool `mapstructure:"require_shared_state"`
	RequireBlobStore   bool `mapstructure:"require_blob_store"`
}

// BlobStoreConfig is the verified-blob store replicas share (proxy/blobstore). Without a storage
// driver there is none: every replica keeps only its own spool.
type BlobStoreConfig struct {
	// Storage is distribution's `storage:` section, as in a registry's config.yml: one driver
	// name (filesystem, s3, azure, or gcs in a binary built with -tags gcs) mapped to its
	// parameters. distribution's other storage keys (delete, redirect, cache, maintenance) do
	// not apply.
	Storage map[string]any `mapstructure:"storage"`
	// MaxBytes bounds the stored blobs; the sweeper deletes the oldest beyond it. 0 = no bound.
	MaxBytes int64 `mapstructure:"max_bytes"`
	// MaxAge: the sweeper deletes blobs stored longer ago. 0 = no bound.
	MaxAge time.Duration `mapstructure:"max_age"`
	// SweepInterval is how often each replica sweeps the store.
	SweepInterval time.Duration `mapstructure:"sweep_interval"`
	// Timeout bounds each store operation (a read's or write's body excepted); a store that
	// does not answer within it is skipped for a while and blobs come from upstream.
	Timeout time.Duration `mapstructure:"timeout"`
}

// StateConfig selects where trust state is shared between replicas. Without state.redis.addr
// every process keeps its own, in trust_dir.
type StateConfig struct {
	Redis RedisConfig `mapstructure:"redis"`
}

// RedisConfig is the Redis (or Valkey) server replicas share TOFU roots, version floors, cached
// trust metadata, refresh leases and manifest edges through. trust_dir keeps a copy of the trust
// state (written through), and a role's floor is the higher of the two.
type RedisConfig struct {
	Addr     string `mapstructure:"addr"` // host:port; "" = no shared state
	Username string `mapstructure:"username"`
	Password string `mapstructure:"password"`
	DB       int    `mapstructure:"db"`
	TLS      struct {
		Enabled    bool   `mapstructure:"enabled"`
		ServerName string `mapstructure:"server_name"`
		ClientTLS  `mapstructure:",squash"`
	} `mapstructure:"tls"`
	// KeyPrefix starts every key; each upstream's keys follow under <key_prefix><upstream name>/.
	KeyPrefix string `mapstructure:"key_prefix"`
	// Lease is how long one replica's refresh lease on a repository outlives the replica (it is
	// renewed while the refresh runs): a crashed replica delays the others by at most this, then
	// one of them takes over. LockWait is how long a replica waits for another's refresh before
	// refreshing on its own.
	Lease    time.Duration `mapstructure:"lease"`
	LockWait time.Duration `mapstructure:"lock_wait"`
	// Timeout bounds one Redis command (dial, read, write).
	Timeout time.Duration `mapstructure:"timeout"`
}

// TimeoutConfig bounds how long trustgate waits on its clients and its peers. Defaults are in
// configDefaults.
type TimeoutConfig struct {
	// ReadHeader is how long a client has to send its request headers; it bounds slowloris
	// connections.
	ReadHeader time.Duration `mapstructure:"read_header"`
	// Upstream bounds a manifest, tag-list or referrers round trip to an upstream registry and
	// the wait for a blob's response headers.
	Upstream time.Duration `mapstructure:"upstream"`
	// Trust bounds one update of a repository's trust data from its notary server.
	Trust time.Duration `mapstructure:"trust"`
}

// ServerTLS serves HTTPS when both files are set. Docker and containerd talk plain HTTP only to
// registries listed as insecure, so production mirrors want this.
type ServerTLS struct {
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
}

// LogConfig selects the slog handler.
type LogConfig struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// MetricsConfig serves Prometheus metrics on their own listener, so the registry port does not
// expose operational data to every client.
type MetricsConfig struct {
	Listen string `mapstructure:"listen"`
	// Pprof adds /debug/pprof/ to the metrics listener; off by default because profiles expose
	// internals and cost CPU while taken.
	Pprof bool `mapstructure:"pprof"`
}

// TrustLimits bound what trust fetches may take, whatever the notary servers send (see
// resolver.Limits).
type TrustLimits struct {
	// MaxMetadataBytes bounds the trust metadata being downloaded at once, in total over every
	// upstream's notary server; a fetch that would go past it fails as an unavailable trust
	// server (503, or the cached timestamp while valid).
	MaxMetadataBytes int64 `mapstructure:"max_metadata_bytes"`
	// MaxConcurrentBootstraps bounds first-contact root.json fetches per notary server; more wait
	// for a slot.
	MaxConcurrentBootstraps int `mapstructure:"max_concurrent_bootstraps"`
	// MaxRootBytes caps root.json and N.root.json, which no signed parent gives a length for.
	MaxRootBytes int64 `mapstructure:"max_root_bytes"`
}

// CacheConfig sizes the in-memory caches.
type CacheConfig struct {
	TrustEntries    int `mapstructure:"trust_entries"`
	ManifestEntries int `mapstructure:"manifest_entries"`
	// TrustBytes bounds the estimated memory of the verified trust states kept (0: entries only).
	TrustBytes int64 `mapstructure:"trust_bytes"`
	// Spill keeps the verified states evicted past TrustEntries or TrustBytes in a directory of
	// the process's own under temp_dir, sealed with a key held only in memory (see package
	// cache), so reading one back costs a file read instead of re-verifying trust_dir.
	Spill bool `mapstructure:"spill"`
}

// ClientTLS configures trust in a server we dial.
type ClientTLS struct {
	CAFile             string `mapstructure:"ca_file"`
	InsecureSkipVerify bool   `mapstructure:"insecure_skip_verify"`
}

// UpstreamConfig is one registry trustgate pulls from, and the Notary server that holds its trust
// data.
type UpstreamConfig struct {
	Name      string `mapstructure:"name"`
	URL       string `mapstructure:"url"`
	GUNPrefix string `mapstructure:"gun_prefix"`
	DockerHub bool   `mapstructure:"docker_hub"`
	Username  string `mapstructure:"username"`
	Password  string `mapstructure:"password"`
	// TokenRealms are origins besides the registry's own host that may receive Username and
	// Password as a token realm (docker_hub: true adds https://auth.docker.io).
	TokenRealms []string     `mapstructure:"token_realms"`
	TLS         ClientTLS    `mapstructure:"tls"`
	Notary      NotaryConfig `mapstructure:"notary"`
}

// NotaryConfig is an upstream's trust server.
type NotaryConfig struct {
	URL          string        `mapstructure:"url"`
	Username     string        `mapstructure:"username"`
	Password     string        `mapstructure:"password"`
	TokenRealms  []string      `mapstructure:"token_realms"` // as UpstreamConfig.TokenRealms, for the notary server
	TLS          ClientTLS     `mapstructure:"tls"`
	TrustPinning PinningConfig `mapstructure:"trust_pinning"`
}

// PinningConfig mirrors Notary's trust_pinning: certs[GUN or "prefix*"] = root cert key IDs,
// ca[GUN prefix] = path of a PEM CA bundle, disable_tofu refuses repositories no pin covers.
// every_root (not in Notary) applies certs and ca to every root, not only when trust is
// established (resolver.TrustPinning.EveryRoot).
type PinningConfig struct {
	Certs       map[string][]string `mapstructure:"certs"`
	CA          map[string]string   `mapstructure:"ca"`
	DisableTOFU bool                `mapstructure:"disable_tofu"`
	EveryRoot   bool                `mapstructure:"every_root"`
}

// trust_dir's default and its one non-directory value. The default is relative to the working
// directory, as in the README and configs/trustgate.yaml (the container image sets
// TRUSTGATE_TRUST_DIR=/var/lib/trustgate/trust, a volume). Memory-only state repeats trust on first
// use and forgets rollback floors on every restart, so it must be asked for by name; ":memory:"
// cannot be mistaken for a directory anyone means.
const (
	defaultTrustDir = "./trust"
	memoryTrustDir  = ":memory:"
)

// configDefaults are set in viper (not only in the struct) so that TRUSTGATE_* environment
// variables can override keys the file does not mention: viper only binds environment variables
// for keys it knows.
func configDefaults() map[string]any {
	return map[string]any{
		"listen":                 "127.0.0.1:5000",
		"tls.cert_file":          "",
		"tls.key_file":           "",
		"log.level":              "info",
		"log.format":             "json",
		"metrics.listen":         "",
		"metrics.pprof":          false,
		"trust_dir":              defaultTrustDir,
		"trust_ttl":              "30s",
		"cache.trust_entries":    1024,
		"cache.manifest_entries": 4096,
		"cache.trust_bytes":      int64(256 << 20),
		"cache.spill":            true,
		"temp_dir":               "",
		"blob_spool_bytes":       int64(1 << 30),
		// blob_store.storage has no default: no shared blob store unless configured.
		"blob_store.max_bytes":         int64(100 << 30),
		"blob_store.max_age":           "720h",
		"blob_store.sweep_interval":    "10m",
		"blob_store.timeout":           "10s",
		"default_upstream":             "",
		"timeouts.read_header":         "10s",
		"timeouts.upstream":            "30s",
		"timeouts.trust":               "30s",
		"health.main_listener":         false,
		"health.probe_interval":        "10s",
		"health.require_trust_servers": true,
		"health.require_shared_state":  false,
		"health.require_blob_store":    false,

		"state.redis.addr":                     "",
		"state.redis.username":                 "",
		"state.redis.password":                 "",
		"state.redis.db":                       0,
		"state.redis.tls.enabled":              false,
		"state.redis.tls.server_name":          "",
		"state.redis.tls.ca_file":              "",
		"state.redis.tls.insecure_skip_verify": false,
		"state.redis.key_prefix":               "trustgate:",
		"state.redis.lease":                    "5s",
		"state.redis.lock_wait":                "10s",
		"state.redis.timeout":                  "2s",

		// the resolver's own defaults, so the library and the binary cannot drift apart
		"trust_limits.max_metadata_bytes":        int64(resolver.DefaultMaxMetadataBytes),
		"trust_limits.max_concurrent_bootstraps": resolver.DefaultMaxConcurrentBootstraps,
		"trust_limits.max_root_bytes":            int64(resolver.DefaultMaxRootBytes),
	}
}

// loadConfig reads the file (if any), applies environment overrides and flags, and validates.
// Unknown keys are errors: a misspelt "trust_tll" must not silently fall back to a default.
func loadConfig(file string, flags *pflag.FlagSet) (*Config, error) {
	var data []byte
	if file != "" {
		var err error
		if data, err = os.ReadFile(file); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	cfg, err := parseConfig(data, flags)
	if err != nil && file != "" {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return cfg, err
}

// parseConfig is loadConfig after the file is read; data may be empty (environment and flags only).
func parseConfig(data []byte, flags *pflag.FlagSet) (*Config, error) {
	v := viper.New()
	for k, val := range configDefaults() {
		v.SetDefault(k, val)
	}
	v.SetEnvPrefix("TRUSTGATE")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if len(data) > 0 {
		v.SetConfigType("yaml")
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	if flags != nil {
		for flag, key := range map[string]string{"listen": "listen", "trust-dir": "trust_dir", "log-level": "log.level", "trust-ttl": "trust_ttl"} {
			if f := flags.Lookup(flag); f != nil {
				if err := v.BindPFlag(key, f); err != nil {
					return nil, fmt.Errorf("config: flag --%s: %w", flag, err)
				}
			}
		}
	}
	var cfg Config
	err := v.UnmarshalExact(&cfg, func(dc *mapstructure.DecoderConfig) {
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		)
	})
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	// viper's unmarshalling drops empty maps, and a driver without parameters ("inmemory: {}")
	// is one: take the section as written.
	if m, ok := v.Get("blob_store.storage").(map[string]any); ok {
		cfg.BlobStore.Storage = m
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return &cfg, nil
}

func (c *Config) validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, args...)...))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "%q is not host:port: %v", c.Listen, err)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls", "cert_file and key_file must be set together")
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		bad("log.level", "%v", err)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		bad("log.format", "%q is not json or text", c.Log.Format)
	}
	if c.Metrics.Pprof && c.Metrics.Listen == "" {
		bad("metrics.pprof", "needs metrics.listen (profiles are served only on the metrics listener)")
	}
	if c.Metrics.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			bad("metrics.listen", "%q is not host:port: %v", c.Metrics.Listen, err)
		}
	}
	if c.TrustDir == "" {
		bad("trust_dir", "is empty; give a directory (default %s) or %q to keep trust state in memory only", defaultTrustDir, memoryTrustDir)
	}
	if c.TrustTTL <= 0 {
		bad("trust_ttl", "must be positive (got %s)", c.TrustTTL)
	}
	if tl := c.TrustLimits; tl.MaxMetadataBytes <= 0 {
		bad("trust_limits.max_metadata_bytes", "must be positive (got %d)", tl.MaxMetadataBytes)
	} else if tl.MaxRootBytes <= 0 || tl.MaxRootBytes > min(tl.MaxMetadataBytes, 100<<20) {
		bad("trust_limits.max_root_bytes", "must be positive and at most max_metadata_bytes and 100 MiB, notary's cap (got %d)", tl.MaxRootBytes)
	}
	if c.TrustLimits.MaxConcurrentBootstraps <= 0 {
		bad("trust_limits.max_concurrent_bootstraps", "must be positive (got %d)", c.TrustLimits.MaxConcurrentBootstraps)
	}
	for key, d := range map[string]time.Duration{"timeouts.read_header": c.Timeouts.ReadHeader,
		"timeouts.upstream": c.Timeouts.Upstream, "timeouts.trust": c.Timeouts.Trust} {
		if d <= 0 {
			bad(key, "must be positive (got %s)", d)
		}
	}
	if c.Cache.TrustEntries <= 0 {
		bad("cache.trust_entries", "must be positive (got %d)", c.Cache.TrustEntries)
	}
	if c.Cache.TrustBytes < 0 {
		bad("cache.trust_bytes", "must not be negative (got %d)", c.Cache.TrustBytes)
	}
	if c.Cache.ManifestEntries <= 0 {
		bad("cache.manifest_entries", "must be positive (got %d)", c.Cache.ManifestEntries)
	}
	if c.BlobSpoolBytes < 0 {
		bad("blob_spool_bytes", "must not be negative (got %d)", c.BlobSpoolBytes)
	}
	c.BlobStore.validate(bad)
	if len(c.Upstreams) == 0 {
		bad("upstreams", "none configured: trustgate has nothing to pull from and no trust server to verify with, "+
			"and it does not guess one. Give a configuration file with --config (see configs/trustgate.yaml), "+
			"or run `trustgate demo` for a self-contained offline example")
	}
	if c.Health.ProbeInterval < time.Second || c.Health.ProbeInterval > 5*time.Minute {
		bad("health.probe_interval", "must be between 1s and 5m (got %s)", c.Health.ProbeInterval)
	}
	names := map[string]bool{}
	for i, u := range c.Upstreams {
		key := fmt.Sprintf("upstreams[%d]", i)
		// The name is also the upstream's directory under trust_dir (wiring.go newResolver).
		if u.Name == "" || u.Name == "." || u.Name == ".." || strings.ContainsAny(u.Name, "/ ?#") {
			bad(key+".name", "%q must be a non-empty registry host name (no '/', space, '?', '#', not . or ..)", u.Name)
		}
		if names[u.Name] {
			bad(key+".name", "%q is used by two upstreams", u.Name)
		}
		names[u.Name] = true
		if err := checkURL(u.URL); err != nil {
			bad(key+".url", "%v", err)
		} else if _, err := credscope.New(u.URL, u.TokenRealms); err != nil {
			bad(key+".token_realms", "%v", err)
		}
		if u.GUNPrefix == "" || strings.HasSuffix(u.GUNPrefix, "/") {
			bad(key+".gun_prefix", "%q must be a non-empty name prefix without a trailing '/' (e.g. docker.io)", u.GUNPrefix)
		}
		if err := checkURL(u.Notary.URL); err != nil {
			bad(key+".notary.url", "%v", err)
		} else if _, err := credscope.New(u.Notary.URL, u.Notary.TokenRealms); err != nil {
			bad(key+".notary.token_realms", "%v", err)
		}
		for _, t := range []struct {
			key string
			tls ClientTLS
		}{{key + ".tls", u.TLS}, {key + ".notary.tls", u.Notary.TLS}} {
			if t.tls.CAFile != "" {
				if _, err := os.Stat(t.tls.CAFile); err != nil {
					bad(t.key+".ca_file", "%v", err)
				}
			}
		}
		for prefix, file := range u.Notary.TrustPinning.CA {
			if _, err := os.Stat(file); err != nil {
				bad(fmt.Sprintf("%s.notary.trust_pinning.ca[%s]", key, prefix), "%v", err)
			}
		}
	}
	if r := c.State.Redis; r.Addr != "" {
		if _, _, err := net.SplitHostPort(r.Addr); err != nil {
			bad("state.redis.addr", "%q is not host:port: %v", r.Addr, err)
		}
		if r.DB < 0 {
			bad("state.redis.db", "must not be negative (got %d)", r.DB)
		}
		if r.KeyPrefix == "" {
			bad("state.redis.key_prefix", "must not be empty (it keeps trustgate's keys apart from others')")
		}
		for key, d := range map[string]time.Duration{"state.redis.lease": r.Lease, "state.redis.lock_wait": r.LockWait, "state.redis.timeout": r.Timeout} {
			if d <= 0 {
				bad(key, "must be positive (got %s)", d)
			}
		}
		if r.TLS.CAFile != "" {
			if _, err := os.Stat(r.TLS.CAFile); err != nil {
				bad("state.redis.tls.ca_file", "%v", err)
			}
		}
	}
	if c.DefaultUpstream != "" && !names[c.DefaultUpstream] {
		bad("default_upstream", "%q is not the name of a configured upstream", c.DefaultUpstream)
	}
	return errors.Join(errs...)
}

func (b BlobStoreConfig) validate(bad func(key, format string, args ...any)) {
	if b.MaxBytes < 0 {
		bad("blob_store.max_bytes", "must not be negative (got %d)", b.MaxBytes)
	}
	if b.MaxAge < 0 {
		bad("blob_store.max_age", "must not be negative (got %s)", b.MaxAge)
	}
	if b.SweepInterval < 10*time.Second || b.SweepInterval > 24*time.Hour {
		bad("blob_store.sweep_interval", "must be between 10s and 24h (got %s)", b.SweepInterval)
	}
	if b.Timeout <= 0 {
		bad("blob_store.timeout", "must be positive (got %s)", b.Timeout)
	}
	if len(b.Storage) == 0 {
		return
	}
	var drivers []string
	for name := range b.Storage {
		switch name {
		case "delete", "redirect", "cache", "maintenance", "tag":
			bad("blob_store.storage."+name, "is a registry setting of distribution's; trustgate's blob store does not use it")
		default:
			drivers = append(drivers, name)
		}
	}
	if len(drivers) != 1 {
		slices.Sort(drivers)
		bad("blob_store.storage", "must name exactly one storage driver (got %v)", drivers)
		return
	}
	if _, ok := b.Storage[drivers[0]].(map[string]any); !ok && b.Storage[drivers[0]] != nil {
		bad("blob_store.storage."+drivers[0], "must be a map of driver parameters")
	}
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("%q: no host", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: no query or fragment allowed", raw)
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

// transport builds the round tripper for one dialled server. Each server gets its own so that
// one's CA or insecure setting cannot leak to another.
func (t ClientTLS) transport() (http.RoundTripper, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = 30 * time.Second
	tr.MaxIdleConnsPerHost = 64
	tlsCfg, err := t.config()
	if err != nil {
		return nil, err
	}
	tr.TLSClientConfig = tlsCfg
	return tr, nil
}

// config is the TLS client configuration t describes.
func (t ClientTLS) config() (*tls.Config, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // operator's explicit choice
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, err
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificates", t.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	return tlsCfg, nil
}
