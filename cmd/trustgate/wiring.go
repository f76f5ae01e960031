package main

import (
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

// newResolver builds the Notary client for one upstream. Each upstream keeps its verified state in
// its own subdirectory of trust_dir, so two trust servers can never overwrite each other's pinned
// roots or rollback versions.
func newResolver(cfg *Config, u UpstreamConfig, log *slog.Logger) (*resolver.Client, error) {
	rt, err := u.Notary.TLS.transport()
	if err != nil {
		return nil, fmt.Errorf("upstreams[%s].notary.tls: %w", u.Name, err)
	}
	pin := resolver.TrustPinning{
		Certs:       u.Notary.TrustPinning.Certs,
		CA:          map[string]string{},
		DisableTOFU: u.Notary.TrustPinning.DisableTOFU,
	}
	for prefix, file := range u.Notary.TrustPinning.CA {
		pem, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("upstreams[%s].notary.trust_pinning.ca[%s]: %w", u.Name, prefix, err)
		}
		pin.CA[prefix] = string(pem)
	}
	dir := ""
	if cfg.TrustDir != "" {
		dir = filepath.Join(cfg.TrustDir, url.PathEscape(u.Name))
	}
	return resolver.NewClient(resolver.Config{
		ServerURL: u.Notary.URL,
		Transport: rt,
		Username:  u.Notary.Username,
		Password:  u.Notary.Password,
		TrustDir:  dir,
		Pinning:   pin,
		Logger:    log.With("upstream", u.Name),
	})
}

// newUpstreams builds every configured upstream with its cached trust source.
func newUpstreams(cfg *Config, log *slog.Logger) ([]*proxy.Upstream, error) {
	var ups []*proxy.Upstream
	for _, u := range cfg.Upstreams {
		rc, err := newResolver(cfg, u, log)
		if err != nil {
			return nil, err
		}
		c, err := cache.New(rc, cache.Options{TTL: cfg.TrustTTL, Size: cfg.Cache.TrustEntries, UpdateTimeout: cfg.Timeouts.Trust})
		if err != nil {
			return nil, err
		}
		rt, err := u.TLS.transport()
		if err != nil {
			return nil, fmt.Errorf("upstreams[%s].tls: %w", u.Name, err)
		}
		uu, err := url.Parse(u.URL)
		if err != nil {
			return nil, fmt.Errorf("upstreams[%s].url: %w", u.Name, err)
		}
		ups = append(ups, &proxy.Upstream{
			Name:      u.Name,
			URL:       uu,
			GUNPrefix: u.GUNPrefix,
			DockerHub: u.DockerHub,
			Username:  u.Username,
			Password:  u.Password,
			Transport: rt,
			Trust:     c,
		})
	}
	return ups, nil
}
