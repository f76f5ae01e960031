package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// generation is one built configuration in service. Requests hold it while they run; once a
// reload retires it, it is closed when the last of them returns, so a blob stream that started
// under it finishes under it.
type generation struct {
	*built
	n      int
	loaded time.Time

	mu      sync.Mutex
	active  int
	retired bool
	closed  bool
}

// acquire registers a request; false means the generation is closed and the caller must take the
// current one.
func (g *generation) acquire() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.active++
	return true
}

func (g *generation) release() {
	g.mu.Lock()
	g.active--
	last := g.retired && g.active == 0 && !g.closed
	if last {
		g.closed = true
	}
	g.mu.Unlock()
	if last {
		g.shut()
	}
}

// retire closes the generation once no request holds it.
func (g *generation) retire() {
	g.mu.Lock()
	g.retired = true
	now := g.active == 0 && !g.closed
	if now {
		g.closed = true
	}
	g.mu.Unlock()
	if now {
		g.shut()
	}
}

func (g *generation) shut() {
	if err := g.close(); err != nil {
		g.log.Warn("closing the previous configuration", "generation", g.n, "err", err)
	}
}

// runtime is the mirror in service: the current generation, swapped atomically on reload.
type runtime struct {
	cur     atomic.Pointer[generation]
	metrics prometheus.Registerer
	log     *slog.Logger // serve's logger: reload outcomes

	mu        sync.Mutex // serialises reloads
	lastError string     // the last rejected reload, for /readyz; "" after a good one
	source    string     // where configurations come from, for /readyz
}

// ServeHTTP runs the request on the current generation. A generation closed while it is still
// current means serve is stopping: the request gets 503.
func (rt *runtime) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for {
		g := rt.cur.Load()
		if g.acquire() {
			defer g.release()
			g.srv.ServeHTTP(w, r)
			return
		}
		if rt.cur.Load() == g {
			http.Error(w, "trustgate is stopping", http.StatusServiceUnavailable)
			return
		}
	}
}

// install builds cfg and makes it the current generation; the previous one is retired.
func (rt *runtime) install(cfg *Config, log *slog.Logger) error {
	b, err := build(cfg, log, rt.metrics)
	if err != nil {
		return err
	}
	n := 1
	if old := rt.cur.Load(); old != nil {
		n = old.n + 1
	}
	b.start()
	g := &generation{built: b, n: n, loaded: time.Now()}
	if old := rt.cur.Swap(g); old != nil {
		old.retire()
	}
	return nil
}

// reload replaces the configuration with cfg, or with the error loading it produced. A rejected
// configuration is logged, naming the key, and the current one keeps serving.
func (rt *runtime) reload(cfg *Config, loadErr error, logTo func(LogConfig) *slog.Logger) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	err := loadErr
	if err == nil {
		err = restartOnly(rt.cur.Load().cfg, cfg)
	}
	if err == nil {
		err = rt.install(cfg, logTo(cfg.Log))
	}
	if err != nil {
		rt.lastError = err.Error()
		rt.log.Error("reload rejected: still serving the previous configuration", "err", err,
			"generation", rt.cur.Load().n)
		return err
	}
	rt.lastError = ""
	g := rt.cur.Load()
	rt.log.Info("configuration reloaded", "generation", g.n)
	g.describe()
	return nil
}

// restartOnly reports the keys whose change a reload cannot apply: listeners and the server's
// own timeouts are bound at start, and moving trust_dir under a running mirror would start trust
// on first use over again without the operator seeing a restart.
func restartOnly(old, cfg *Config) error {
	var errs []error
	same := func(key string, a, b any) {
		if a != b {
			errs = append(errs, fmt.Errorf("%s: changed from %v to %v; this key takes effect only on restart", key, a, b))
		}
	}
	same("listen", old.Listen, cfg.Listen)
	same("tls (serving HTTPS or not)", old.TLS.CertFile != "", cfg.TLS.CertFile != "")
	same("metrics.listen", old.Metrics.Listen, cfg.Metrics.Listen)
	same("metrics.pprof", old.Metrics.Pprof, cfg.Metrics.Pprof)
	same("health.main_listener", old.Health.MainListener, cfg.Health.MainListener)
	same("timeouts.read_header", old.Timeouts.ReadHeader, cfg.Timeouts.ReadHeader)
	trustDir := cfg.TrustDir
	if abs, err := absTrustDir(trustDir); err == nil {
		trustDir = abs
	}
	same("trust_dir", old.TrustDir, trustDir)
	return errors.Join(errs...)
}

// readiness is /readyz for the current generation.
func (rt *runtime) readiness() readiness {
	g := rt.cur.Load()
	rt.mu.Lock()
	cfgCheck := check{Name: "config", OK: true,
		Detail: fmt.Sprintf("generation %d from %s, loaded %s", g.n, rt.source, g.loaded.UTC().Format(time.RFC3339))}
	if rt.lastError != "" {
		cfgCheck.Detail += "; the last reload was rejected: " + rt.lastError
	}
	rt.mu.Unlock()
	r := readiness{Ready: true, Checks: append(append([]check{cfgCheck}, g.health.ready()...), g.storeCheck()...)}
	for _, c := range r.Checks {
		r.Ready = r.Ready && (c.OK || c.Optional)
	}
	return r
}

// absTrustDir is trust_dir as openTrustDir makes it: absolute, or memoryTrustDir.
func absTrustDir(dir string) (string, error) {
	if dir == memoryTrustDir {
		return dir, nil
	}
	return filepath.Abs(dir)
}
