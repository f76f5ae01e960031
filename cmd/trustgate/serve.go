package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"

	"github.com/trustgate/trustgate/proxy"
)

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "configuration file (YAML)")
	fs.String("listen", "", "address to serve on, host:port (overrides listen)")
	fs.String("trust-dir", "", "directory for verified trust state, or :memory: (overrides trust_dir; default ./trust)")
	fs.Duration("trust-ttl", 0, "how long verified trust state is used before re-checking (overrides trust_ttl)")
	fs.String("log-level", "", "debug, info, warn or error (overrides log.level)")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	cfg, err := loadConfig(*file, changedFlags(fs))
	if err != nil {
		return err
	}
	return serve(ctx, cfg, stderr, nil)
}

// serve runs the mirror cfg describes until ctx ends, logging to stderr. ready, if not nil, is
// called with the listening address once the mirror accepts connections; it runs on serve's
// goroutine, so it must not block.
func serve(ctx context.Context, cfg *Config, stderr io.Writer, ready func(addr net.Addr)) error {
	log := newLogger(cfg.Log, stderr)

	pol, err := newPolicy(cfg)
	if err != nil {
		return err
	}
	if err := openTrustDir(cfg, log); err != nil {
		return err
	}
	sweepDebris(cfg, log)
	fz, err := loadFrozen(pol, log)
	if err != nil {
		return err
	}
	bindings, err := newBindings(cfg, log)
	if err != nil {
		return err
	}
	ups, err := newUpstreams(cfg, log)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := proxy.New(proxy.Options{
		Upstreams:         ups,
		Default:           cfg.DefaultUpstream,
		Policy:            pol,
		Logger:            log,
		ManifestCacheSize: cfg.Cache.ManifestEntries,
		TempDir:           cfg.TempDir,
		BlobSpoolBytes:    cfg.BlobSpoolBytes,
		Metrics:           reg,
		UpstreamTimeout:   cfg.Timeouts.Upstream,
		Frozen:            fz,
		TrustTTL:          cfg.TrustTTL,
		Bindings:          bindings,
	})
	if err != nil {
		return err
	}
	defer srv.Close() // stops blob downloads still running and removes their spools

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	hs := &http.Server{
		Handler: srv,
		// No WriteTimeout: a multi-GiB layer to a slow client legitimately takes long. Slow or
		// idle clients are bounded by the header and idle timeouts instead.
		ReadHeaderTimeout: cfg.Timeouts.ReadHeader,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 2)
	go func() {
		if cfg.TLS.CertFile != "" {
			errc <- hs.ServeTLS(ln, cfg.TLS.CertFile, cfg.TLS.KeyFile)
			return
		}
		errc <- hs.Serve(ln)
	}()
	var ms *http.Server
	if cfg.Metrics.Listen != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		if cfg.Metrics.Pprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		ms = &http.Server{Addr: cfg.Metrics.Listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- ms.ListenAndServe() }()
	}
	log.Info("trustgate serving", "addr", ln.Addr().String(), "tls", cfg.TLS.CertFile != "",
		"upstreams", len(ups), "default_upstream", cfg.DefaultUpstream, "version", version)
	if ready != nil {
		ready(ln.Addr())
	}

	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ms != nil {
		_ = ms.Shutdown(shutCtx)
	}
	if serr := hs.Shutdown(shutCtx); serr != nil && err == nil {
		err = serr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("trustgate stopped")
	return nil
}

// changedFlags returns only the flags set on the command line, so that an unset flag's zero value
// doesn't override the file.
func changedFlags(fs *pflag.FlagSet) *pflag.FlagSet {
	out := pflag.NewFlagSet(fs.Name(), pflag.ContinueOnError)
	fs.Visit(func(f *pflag.Flag) { out.AddFlag(f) })
	return out
}
