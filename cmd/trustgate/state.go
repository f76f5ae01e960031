package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/trustgate/trustgate/proxy"
	"github.com/trustgate/trustgate/resolver"
	"github.com/trustgate/trustgate/resolver/redisstore"
)

// sharedState is the Redis connection replicas share trust state and manifest edges through, with
// its metrics. nil when state.redis is not configured.
type sharedState struct {
	rdb      *redis.Client
	cfg      RedisConfig
	log      *slog.Logger
	required bool // health.require_shared_state: an unreachable Redis fails /readyz
	hits     *prometheus.CounterVec
	misses   *prometheus.CounterVec
	waits    *prometheus.CounterVec
	failures *prometheus.CounterVec
}

// openShared connects to state.redis, if configured, and registers its metrics on metrics (if not
// nil; a reload's build finds them registered and keeps counting on them). An unreachable Redis is
// not a start-up error: replicas serve what they have verified themselves and answer 503 for
// repositories they have never seen (see resolver.Client.syncShared).
func openShared(cfg *Config, log *slog.Logger, metrics prometheus.Registerer) (*sharedState, error) {
	rc := cfg.State.Redis
	if rc.Addr == "" {
		return nil, nil
	}
	opts := &redis.Options{
		Addr:         rc.Addr,
		Username:     rc.Username,
		Password:     rc.Password,
		DB:           rc.DB,
		DialTimeout:  rc.Timeout,
		ReadTimeout:  rc.Timeout,
		WriteTimeout: rc.Timeout,
		MaxRetries:   1,
	}
	if rc.TLS.Enabled {
		t, err := rc.TLS.ClientTLS.config()
		if err != nil {
			return nil, fmt.Errorf("state.redis.tls: %w", err)
		}
		t.ServerName = rc.TLS.ServerName
		opts.TLSConfig = t
	}
	s := &sharedState{rdb: redis.NewClient(opts), cfg: rc, log: log, required: cfg.Health.RequireSharedState}
	vec := func(name, help string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "trustgate", Subsystem: "state", Name: name, Help: help}, []string{"upstream"})
		if metrics == nil {
			return v
		}
		if err := metrics.Register(v); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				if old, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
					return old
				}
			}
			log.Warn("shared state: metric not registered", "metric", name, "err", err)
		}
		return v
	}
	s.hits = vec("hits_total", "Trust updates answered from state another replica checked within trust_ttl, without asking the trust server.")
	s.misses = vec("misses_total", "Trust updates with a shared store that asked the trust server.")
	s.waits = vec("lock_waits_total", "Trust updates that waited for another replica's refresh lease.")
	s.failures = vec("redis_errors_total", "Failed Redis operations (trust state and manifest edges).")
	ctx, cancel := context.WithTimeout(context.Background(), rc.Timeout)
	defer cancel()
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		log.Warn("shared state: Redis unreachable at start; repositories not yet read from it answer 503 until it is back", "addr", rc.Addr, "err", err)
	} else {
		log.Info("shared state", "redis", rc.Addr, "db", rc.DB, "key_prefix", rc.KeyPrefix)
	}
	return s, nil
}

// check is /readyz's line for Redis. It is optional unless health.require_shared_state is set:
// replicas keep serving what they have seen
// while Redis is down (see README), so an outage of the one Redis all replicas share must not take
// every replica out of the load balancer at once; it is reported, with the reason.
func (s *sharedState) check(ctx context.Context) check {
	c := check{Name: "shared_state redis", Kind: "shared_state", URL: "redis://" + s.cfg.Addr, OK: true, Optional: !s.required}
	now := time.Now()
	c.LastCheck = &now
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		c.OK, c.Detail = false, err.Error()
	}
	return c
}

func (s *sharedState) close() {
	if s != nil {
		_ = s.rdb.Close()
	}
}

// prefix is where one upstream's keys live: names cannot contain '/', so no upstream's keys can
// be another's. Below it each kind of record has its own segment — tuf/<GUN> and lock/<GUN>
// (package resolver/redisstore), graph/<digest> (proxy.RedisEdges) — and a new kind (tag bindings of
// other signature schemes, say) takes a segment of its own on the same connection.
func (s *sharedState) prefix(upstream string) string {
	return s.cfg.KeyPrefix + upstream + "/"
}

// trust returns the shared trust store of one upstream and its metrics.
func (s *sharedState) trust(upstream string) (resolver.SharedStore, *resolver.StoreMetrics) {
	m := &resolver.StoreMetrics{
		Hits:      s.hits.WithLabelValues(upstream),
		Misses:    s.misses.WithLabelValues(upstream),
		LockWaits: s.waits.WithLabelValues(upstream),
		Errors:    s.failures.WithLabelValues(upstream),
	}
	return redisstore.New(s.rdb, redisstore.Options{
		Prefix:   s.prefix(upstream),
		Lease:    s.cfg.Lease,
		LockWait: s.cfg.LockWait,
		Metrics:  m,
	}), m
}

// edges returns the shared manifest edge store of one upstream.
func (s *sharedState) edges(upstream string) proxy.EdgeStore {
	return proxy.NewRedisEdges(s.rdb, s.prefix(upstream), 0, s.failures.WithLabelValues(upstream))
}
