package proxy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// DefaultRedisEdgeTTL is how long a RedisEdges record lives. It is not renewed on reads: a record
// is a fact about immutable content, fetched again once gone.
const DefaultRedisEdgeTTL = 30 * 24 * time.Hour

// RedisEdges is an EdgeStore in Redis (or Valkey) shared by replicas: <prefix>graph/<digest>
// holds the EncodeEdges record, as FileEdges holds it in a file. Records carry a TTL, so a Redis
// with maxmemory-policy volatile-lru evicts edges (refetchable) and never trust floors (no TTL).
type RedisEdges struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
	errors prometheus.Counter // nil = not counted
}

// NewRedisEdges returns a store on rdb under prefix. ttl <= 0 means DefaultRedisEdgeTTL; errs,
// if not nil, counts failed Redis operations.
func NewRedisEdges(rdb redis.UniversalClient, prefix string, ttl time.Duration, errs prometheus.Counter) *RedisEdges {
	if ttl <= 0 {
		ttl = DefaultRedisEdgeTTL
	}
	return &RedisEdges{rdb: rdb, prefix: prefix, ttl: ttl, errors: errs}
}

func (s *RedisEdges) key(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", err
	}
	return s.prefix + "graph/" + d.String(), nil
}

func (s *RedisEdges) fail(err error) error {
	if s.errors != nil {
		s.errors.Inc()
	}
	return err
}

// Edges implements EdgeStore. A record that does not decode is deleted and reported missing.
func (s *RedisEdges) Edges(ctx context.Context, d digest.Digest) (Edges, bool, error) {
	k, err := s.key(d)
	if err != nil {
		return Edges{}, false, err
	}
	n, err := s.rdb.StrLen(ctx, k).Result()
	if err != nil {
		return Edges{}, false, s.fail(fmt.Errorf("redis: %w", err))
	}
	if n == 0 {
		return Edges{}, false, nil
	}
	if n > maxEdgeRecordBytes {
		s.rdb.Del(ctx, k)
		return Edges{}, false, fmt.Errorf("%s: edge record of %d bytes exceeds %d (removed)", d, n, maxEdgeRecordBytes)
	}
	b, err := s.rdb.Get(ctx, k).Bytes()
	if errors.Is(err, redis.Nil) {
		return Edges{}, false, nil
	}
	if err != nil {
		return Edges{}, false, s.fail(fmt.Errorf("redis: %w", err))
	}
	e, err := DecodeEdges(d, b)
	if err != nil {
		s.rdb.Del(ctx, k)
		return Edges{}, false, fmt.Errorf("%s: %w (removed)", d, err)
	}
	return e, true, nil
}

// Record implements EdgeStore. A digest already recorded is left alone: its edges cannot differ.
func (s *RedisEdges) Record(ctx context.Context, d digest.Digest, e Edges) error {
	k, err := s.key(d)
	if err != nil {
		return err
	}
	b, err := EncodeEdges(d, e)
	if err != nil {
		return err
	}
	if err := s.rdb.SetNX(ctx, k, b, s.ttl).Err(); err != nil {
		return s.fail(fmt.Errorf("redis: %w", err))
	}
	return nil
}
