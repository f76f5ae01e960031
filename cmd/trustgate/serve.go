package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"
)

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "configuration file (YAML); re-read on SIGHUP")
	fs.String("listen", "", "address to serve on, host:port (overrides listen)")
	fs.String("trust-dir", "", fmt.Sprintf("directory for verified trust state, or %s (overrides trust_dir; default %s)", memoryTrustDir, defaultTrustDir))
	fs.Duration("trust-ttl", 0, "how long verified trust state is used before re-checking (overrides trust_ttl)")
	fs.String("log-level", "", "debug, info, warn or error (overrides log.level)")
	watch := fs.Duration("watch-config", 0, "also reload when the configuration file's content changes, checking this often (0: SIGHUP only)")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	if *watch < 0 || (*watch > 0 && *file == "") {
		fmt.Fprintln(stderr, "trustgate serve: --watch-config needs --config and a positive interval")
		return exitError(2)
	}
	flags := changedFlags(fs)
	seen := fileSum(*file) // before loading: a change while loading is seen by the first check
	load := func() (*Config, error) { return loadConfig(*file, flags) }
	cfg, err := load()
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if *watch > 0 {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go watchFile(wctx, *file, *watch, seen, hup)
	}
	source := *file
	if source == "" {
		source = "flags and environment"
	}
	return serve(ctx, cfg, stderr, serveOptions{reload: hup, load: load, source: source})
}

// serveOptions are what callers of serve other than the configuration vary.
type serveOptions struct {
	// ready, if not nil, is called with the listening address once the mirror accepts
	// connections; it runs on serve's goroutine, so it must not block.
	ready func(addr net.Addr)
	// Each value received on reload re-reads the configuration with load.
	reload <-chan os.Signal
	load   func() (*Config, error)
	source string // where the configuration comes from, for /readyz; "" = "built in"
}

// serve runs the mirror cfg describes until ctx ends, logging to stderr. On reload it builds the
// configuration load returns and swaps it in; requests in flight finish on the configuration they
// started with, and a configuration that fails to load or build is rejected with the reason (its
// key) in the log while the current one keeps serving.
func serve(ctx context.Context, cfg *Config, stderr io.Writer, opts serveOptions) error {
	logTo := func(lc LogConfig) *slog.Logger { return newLogger(lc, stderr) }
	log := logTo(cfg.Log)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rt := &runtime{metrics: reg, log: log, source: opts.source}
	if rt.source == "" {
		rt.source = "built in"
	}
	if err := rt.install(cfg, log); err != nil {
		return err
	}
	// Once the listeners are shut down no request holds a generation, so this closes the last:
	// blob downloads still running stop and their spools are removed.
	defer func() { rt.cur.Load().retire() }()
	rt.cur.Load().describe()
	// What a killed trustgate left behind goes once, at start, before any request; a reload has
	// no crash to clean up after.
	sweepDebris(rt.cur.Load().cfg, log)

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	var handler http.Handler = rt
	if cfg.Health.MainListener {
		mux := http.NewServeMux()
		hh := healthHandler(rt)
		mux.Handle("/healthz", hh)
		mux.Handle("/readyz", hh)
		mux.Handle("/", rt)
		handler = mux
	}
	hs := &http.Server{
		Handler: handler,
		// No WriteTimeout: a multi-GiB layer to a slow client legitimately takes long. Slow or
		// idle clients are bounded by the header and idle timeouts instead.
		ReadHeaderTimeout: cfg.Timeouts.ReadHeader,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 2)
	if cfg.TLS.CertFile != "" {
		// The certificate comes from the current configuration, so a reload renews it.
		hs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return rt.cur.Load().cert, nil }}
		go func() { errc <- hs.ServeTLS(ln, "", "") }()
	} else {
		go func() { errc <- hs.Serve(ln) }()
	}
	var ms *http.Server
	metricsAddr := ""
	if cfg.Metrics.Listen != "" {
		mln, err := net.Listen("tcp", cfg.Metrics.Listen)
		if err != nil {
			_ = hs.Close()
			return fmt.Errorf("metrics.listen: %w", err)
		}
		metricsAddr = mln.Addr().String()
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		hh := healthHandler(rt)
		mux.Handle("/healthz", hh)
		mux.Handle("/readyz", hh)
		if cfg.Metrics.Pprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		ms = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- ms.Serve(mln) }()
	}
	log.Info("trustgate serving", "addr", ln.Addr().String(), "tls", cfg.TLS.CertFile != "",
		"metrics_addr", metricsAddr, "health_on_main_listener", cfg.Health.MainListener,
		"upstreams", len(cfg.Upstreams), "default_upstream", cfg.DefaultUpstream, "version", version)
	if metricsAddr == "" && !cfg.Health.MainListener {
		log.Info("no /healthz or /readyz: set metrics.listen or health.main_listener to serve them")
	}
	if opts.ready != nil {
		opts.ready(ln.Addr())
	}

loop:
	for {
		select {
		case err = <-errc:
			break loop
		case <-ctx.Done():
			break loop
		case <-opts.reload:
			log.Info("reloading the configuration", "source", rt.source)
			next, lerr := opts.load()
			_ = rt.reload(next, lerr, logTo)
		}
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

// fileSum is the sha256 of file's content, or "" when it cannot be read.
func fileSum(file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// watchFile sends SIGHUP on reload whenever file's content differs from the last content seen,
// checking every interval until ctx ends. It compares content rather than modification times or
// inotify events, so a Kubernetes ConfigMap update (a symbolic link swapped to a new directory)
// is seen like an edit in place. A file that cannot be read is a change too: the reload says why.
func watchFile(ctx context.Context, file string, interval time.Duration, seen string, reload chan<- os.Signal) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if sum := fileSum(file); sum != seen {
			seen = sum
			select {
			case reload <- syscall.SIGHUP:
			default: // a reload is already pending
			}
		}
	}
}
