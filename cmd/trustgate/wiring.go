package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"

	"github.com/trustgate/trustgate/cache"
	"github.com/trustgate/trustgate/proxy"
	"github.com/trustgate/trustgate/resolver"
)

func newLogger(cfg LogConfig, w io.Writer) *slog.Logger {
	level, _ := parseLevel(cfg.Level) // validated by loadConfig
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// openTrustDir makes cfg.TrustDir absolute, creates it, and says where trust state lives, so an
// operator never has to guess whether a restart will repeat trust on first use. A directory that
// cannot be created is a start-up error, not a fall-back to memory; ":memory:" is allowed, with a
// warning.
func openTrustDir(cfg *Config, log *slog.Logger) error {
	if cfg.TrustDir == memoryTrustDir {
		log.Warn("trust state is kept in memory only: every restart repeats trust on first use and forgets rollback versions",
			"trust_dir", memoryTrustDir)
		return nil
	}
	abs, err := filepath.Abs(cfg.TrustDir)
	if err != nil {
		return fmt.Errorf("trust_dir %s: %w", cfg.TrustDir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return fmt.Errorf("trust_dir: %w (set trust_dir or --trust-dir to a writable directory, or %q)", err, memoryTrustDir)
	}
	cfg.TrustDir = abs
	log.Info("trust state", "dir", abs)
	return nil
}

// newLimiter builds the trust_limits shared by every upstream's resolver, so the byte budget
// bounds the total.
func newLimiter(cfg *Config) (*resolver.Limiter, error) {
	l, err := resolver.NewLimiter(resolver.Limits{
		MaxMetadataBytes:        cfg.TrustLimits.MaxMetadataBytes,
		MaxConcurrentBootstraps: cfg.TrustLimits.MaxConcurrentBootstraps,
		MaxRootBytes:            cfg.TrustLimits.MaxRootBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("trust_limits: %w", err)
	}
	return l, nil
}

// newResolver builds the Notary client for one upstream. Each upstream keeps its verified state in
// its own subdirectory of trust_dir, so two trust servers can never overwrite each other's pinned
// roots or rollback versions. h, if not nil, watches the trust server's reachability. shared, if
// not nil, is the trust store replicas share (state.redis); trust_ttl is how long a check another
// replica made stands for this one.
func newResolver(cfg *Config, u UpstreamConfig, lim *resolver.Limiter, log *slog.Logger, h *health, shared *sharedState) (*resolver.Client, error) {
	rcfg, err := resolverConfig(cfg, u, lim, log)
	if err != nil {
		return nil, err
	}
	if shared != nil {
		rcfg.Shared, rcfg.StoreMetrics = shared.trust(u.Name)
		rcfg.SharedFresh = cfg.TrustTTL
	}
	if h != nil {
		if rcfg.Transport, err = h.watch("trust_server", u.Name, u.Notary.URL, "/_notary_server/health", rcfg.Transport); err != nil {
			return nil, fmt.Errorf("upstreams[%s].notary.url: %w", u.Name, err)
		}
	}
	return resolver.NewClient(rcfg)
}

// resolverConfig is the resolver.Config of one upstream's Notary client.
func resolverConfig(cfg *Config, u UpstreamConfig, lim *resolver.Limiter, log *slog.Logger) (resolver.Config, error) {
	rt, err := u.Notary.TLS.transport()
	if err != nil {
		return resolver.Config{}, fmt.Errorf("upstreams[%s].notary.tls: %w", u.Name, err)
	}
	pin := resolver.TrustPinning{
		Certs:       u.Notary.TrustPinning.Certs,
		CA:          map[string]string{},
		DisableTOFU: u.Notary.TrustPinning.DisableTOFU,
		EveryRoot:   u.Notary.TrustPinning.EveryRoot,
	}
	for prefix, file := range u.Notary.TrustPinning.CA {
		pem, err := os.ReadFile(file)
		if err != nil {
			return resolver.Config{}, fmt.Errorf("upstreams[%s].notary.trust_pinning.ca[%s]: %w", u.Name, prefix, err)
		}
		pin.CA[prefix] = string(pem)
	}
	return resolver.Config{
		ServerURL:   u.Notary.URL,
		Transport:   rt,
		Username:    u.Notary.Username,
		Password:    u.Notary.Password,
		TokenRealms: u.Notary.TokenRealms,
		Limiter:     lim,
		TrustDir:    upstreamDir(cfg, u.Name),
		Pinning:     pin,
		Logger:      log.With("upstream", u.Name),
	}, nil
}

// upstreamDir is where one upstream's state lives in trust_dir: tuf/ (the resolver's verified
// trust data) and graph/ (manifest edges). "" means memory only.
func upstreamDir(cfg *Config, name string) string {
	if cfg.TrustDir == memoryTrustDir {
		return ""
	}
	return filepath.Join(cfg.TrustDir, url.PathEscape(name))
}

// tempDir is temp_dir, "" meaning the system's.
func tempDir(cfg *Config) string {
	if cfg.TempDir == "" {
		return os.TempDir()
	}
	return cfg.TempDir
}

// caches are the trust caches of one build's upstreams.
type caches []*cache.Cache

// close removes what the caches spilled to disk; background refreshes still running store
// nothing more there.
func (cs caches) close() error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// newUpstreams builds every configured upstream with its cached trust source, and returns the
// caches for the caller to close once no request uses them. h, if not nil, watches the
// reachability of every upstream and trust server. With shared state (state.redis), trust state
// is shared through it and the manifest graph lives there instead of trust_dir/<upstream>/graph.
func newUpstreams(cfg *Config, log *slog.Logger, h *health, shared *sharedState) (ups []*proxy.Upstream, cs caches, err error) {
	defer func() {
		if err != nil {
			_ = cs.close()
		}
	}()
	lim, err := newLimiter(cfg)
	if err != nil {
		return nil, nil, err
	}
	for _, u := range cfg.Upstreams {
		rc, err := newResolver(cfg, u, lim, log, h, shared)
		if err != nil {
			return nil, cs, err
		}
		opts := cache.Options{TTL: cfg.TrustTTL, Size: cfg.Cache.TrustEntries, MaxBytes: cfg.Cache.TrustBytes,
			UpdateTimeout: cfg.Timeouts.Trust, Logger: log.With("upstream", u.Name)}
		if cfg.Cache.Spill {
			opts.SpillDir = tempDir(cfg)
		}
		c, err := cache.New(rc, opts)
		if err != nil {
			return nil, cs, fmt.Errorf("upstreams[%s]: %w", u.Name, err)
		}
		cs = append(cs, c)
		rt, err := u.TLS.transport()
		if err != nil {
			return nil, cs, fmt.Errorf("upstreams[%s].tls: %w", u.Name, err)
		}
		if h != nil {
			if rt, err = h.watch("upstream", u.Name, u.URL, "/v2/", rt); err != nil {
				return nil, cs, fmt.Errorf("upstreams[%s].url: %w", u.Name, err)
			}
		}
		uu, err := url.Parse(u.URL)
		if err != nil {
			return nil, cs, fmt.Errorf("upstreams[%s].url: %w", u.Name, err)
		}
		// The manifest graph learned from this upstream sits next to its trust state, so a
		// restart derives what is signed without fetching manifests again.
		var edges proxy.EdgeStore
		if shared != nil {
			edges = shared.edges(u.Name)
		} else if dir := upstreamDir(cfg, u.Name); dir != "" {
			if edges, err = proxy.OpenFileEdges(filepath.Join(dir, "graph"), 0); err != nil {
				return nil, cs, fmt.Errorf("upstreams[%s]: %w", u.Name, err)
			}
		}
		ups = append(ups, &proxy.Upstream{
			Name:        u.Name,
			URL:         uu,
			GUNPrefix:   u.GUNPrefix,
			DockerHub:   u.DockerHub,
			Username:    u.Username,
			Password:    u.Password,
			TokenRealms: u.TokenRealms,
			Transport:   rt,
			Trust:       proxy.NotaryStates(c.State),
			Edges:       edges,
		})
	}
	return ups, cs, nil
}
