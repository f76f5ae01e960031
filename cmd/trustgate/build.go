package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/proxy"
	"github.com/trustgate/trustgate/proxy/blobstore"
)

// built is one configuration turned into a mirror: the handler serve swaps on reload, the
// upstreams resolve asks, and the dependencies /readyz reports on. build is the only place a
// Config becomes these objects; serve, reload, resolve and demo all go through it.
type built struct {
	cfg    *Config
	log    *slog.Logger
	pol    *policy.Policy
	srv    *proxy.Server
	ups    []*proxy.Upstream
	caches caches // the upstreams' trust caches
	health *health
	store  *blobstore.Store // the shared blob store; nil = none
	shared *sharedState     // state.redis; nil = none
	cert   *tls.Certificate // the serving certificate; nil = plain HTTP
	stop   context.CancelFunc
}

// build validates what parseConfig cannot (policy, certificates, CA files, the trust_dir) and
// builds the mirror cfg describes. It makes no request to any peer; the health probe starts with
// start. Errors name the configuration key at fault. metrics may be shared by successive builds
// (reloads): their counters continue.
func build(cfg *Config, log *slog.Logger, metrics prometheus.Registerer) (*built, error) {
	pol, err := newPolicy(cfg)
	if err != nil {
		return nil, err
	}
	b := &built{cfg: cfg, log: log, pol: pol, stop: func() {}}
	if cfg.TLS.CertFile != "" {
		c, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file, tls.key_file: %w", err)
		}
		b.cert = &c
	}
	if err := openTrustDir(cfg, log); err != nil {
		return nil, err
	}
	fz, err := loadFrozen(pol, log)
	if err != nil {
		return nil, err
	}
	bindings, err := newBindings(cfg, log)
	if err != nil {
		return nil, err
	}
	b.health = &health{trustDir: cfg.TrustDir, interval: cfg.Health.ProbeInterval,
		optional: map[string]bool{"trust_server": !cfg.Health.RequireTrustServers}}
	if b.shared, err = openShared(cfg, log, metrics); err != nil {
		return nil, err
	}
	if b.shared != nil {
		b.health.extra = append(b.health.extra, b.shared.check)
	}
	if b.ups, b.caches, err = newUpstreams(cfg, log, b.health, b.shared); err != nil {
		b.shared.close()
		return nil, err
	}
	if b.store, err = newBlobStore(context.Background(), cfg.BlobStore, log, metrics); err != nil {
		_ = b.caches.close()
		b.shared.close()
		return nil, err
	}
	b.srv, err = proxy.New(proxy.Options{
		Upstreams:         b.ups,
		Default:           cfg.DefaultUpstream,
		Policy:            pol,
		Logger:            log,
		ManifestCacheSize: cfg.Cache.ManifestEntries,
		TempDir:           cfg.TempDir,
		BlobSpoolBytes:    cfg.BlobSpoolBytes,
		Metrics:           metrics,
		UpstreamTimeout:   cfg.Timeouts.Upstream,
		Frozen:            fz,
		TrustTTL:          cfg.TrustTTL,
		Bindings:          bindings,
		BlobStore:         b.store,
	})
	if err != nil {
		_ = b.caches.close()
		b.shared.close()
		return nil, err
	}
	return b, nil
}

// start begins probing the dependencies and sweeping the blob store in the background, until
// close.
func (b *built) start() {
	ctx, cancel := context.WithCancel(context.Background())
	b.stop = cancel
	go b.health.probeLoop(ctx)
	if b.store != nil {
		go b.store.Run(ctx)
	}
}

// close stops the probe, the blob downloads still running and removes their spools and the
// trust states spilled to disk. Call it only once no request uses b.
func (b *built) close() error {
	b.stop()
	err := b.srv.Close()
	err = errors.Join(err, b.caches.close())
	b.shared.close()
	return err
}

// describe logs what the configuration makes trustgate do: where it pulls from, which trust
// servers it believes and how it pins them, and what the policy enforces (openTrustDir says where
// trust state lives).
// It warns about every way the configuration lets content through unverified.
func (b *built) describe() {
	cfg, log := b.cfg, b.log
	for _, u := range cfg.Upstreams {
		p := u.Notary.TrustPinning
		trust := "trust on first use"
		switch {
		case len(p.Certs) > 0 || len(p.CA) > 0:
			trust = fmt.Sprintf("pinned (%d cert pins, %d CA pins), trust on first use for the rest", len(p.Certs), len(p.CA))
			if p.DisableTOFU {
				trust = fmt.Sprintf("pinned (%d cert pins, %d CA pins), unpinned repositories refused", len(p.Certs), len(p.CA))
			}
		case p.DisableTOFU:
			trust = "no pins and trust on first use disabled: every repository is refused"
		}
		log.Info("upstream", "name", u.Name, "url", u.URL, "gun_prefix", u.GUNPrefix,
			"default", u.Name == cfg.DefaultUpstream, "trust_server", u.Notary.URL, "roots", trust)
	}
	var rules []string
	lax := 0
	for _, r := range cfg.Policy.Rules {
		rules = append(rules, fmt.Sprintf("%s=%s", r.Match, r.Mode))
		if r.Mode == policy.Off || r.Mode == policy.Warn {
			lax++
		}
	}
	def := cfg.Policy.Default.Mode
	if def == "" {
		def = policy.Enforce
	}
	log.Info("policy", "default", def, "rules", strings.Join(rules, ", "))
	if def == policy.Off || def == policy.Warn {
		log.Warn("policy: repositories no rule matches are served WITHOUT enforcing signatures", "policy.default.mode", def)
	}
	if lax > 0 {
		log.Warn("policy: some rules serve content without enforcing signatures", "rules_in_warn_or_off_mode", lax)
	}
}
