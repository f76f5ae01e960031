package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/trustgate/trustgate/internal/peers"
	"github.com/trustgate/trustgate/proxy"
)

// TestSharedStateWiring: with state.redis, each upstream's edges go to Redis under its own
// prefix (not trust_dir/<upstream>/graph), the trustgate_state_* metrics register beside the
// others (again on a reload) and count per upstream; /readyz reports Redis, as optional; an
// unreachable Redis at start is a warning, not a failure.
func TestSharedStateWiring(t *testing.T) {
	red := peers.StartRedis(t)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	cfg, err := parseConfig([]byte(minimalConfig+"trust_dir: \""+filepath.Join(t.TempDir(), "trust")+"\"\nstate: {redis: {addr: \""+red.Addr+"\"}}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	shared, err := openShared(cfg, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer shared.close()
	again, err := openShared(cfg, log, reg) // a reload's build: the metrics are already registered
	if err != nil {
		t.Fatal(err)
	}
	again.close()
	ups, cs, err := newUpstreams(cfg, log, nil, shared)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.close()
	if _, ok := ups[0].Edges.(*proxy.RedisEdges); !ok {
		t.Errorf("edge store %T, want *proxy.RedisEdges", ups[0].Edges)
	}
	if c := shared.check(context.Background()); !c.OK || !c.Optional {
		t.Errorf("readyz check with Redis up: %+v", c)
	}
	store, m := shared.trust("docker.io")
	if err := store.MarkChecked(context.Background(), "docker.io/library/alpine"); err != nil {
		t.Fatal(err)
	}
	if n, err := shared.rdb.Exists(context.Background(), "trustgate:docker.io/tuf/docker.io/library/alpine").Result(); err != nil || n != 1 {
		t.Errorf("key under the upstream's prefix: %d %v", n, err)
	}
	m.Hits.Inc()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP trustgate_state_hits_total Trust updates answered from state another replica checked within trust_ttl, without asking the trust server.
# TYPE trustgate_state_hits_total counter
trustgate_state_hits_total{upstream="docker.io"} 1
`), "trustgate_state_hits_total"); err != nil {
		t.Error(err)
	}

	if err := red.Stop(); err != nil {
		t.Fatal(err)
	}
	if c := shared.check(context.Background()); c.OK || !c.Optional || c.Detail == "" {
		t.Errorf("readyz check with Redis down: %+v, want failed, optional, with the reason", c)
	}
	logs.Reset()
	down, err := openShared(cfg, log, nil)
	if err != nil {
		t.Fatalf("Redis down at start: %v", err)
	}
	down.close()
	if !strings.Contains(logs.String(), "Redis unreachable at start") {
		t.Errorf("no warning: %s", logs.String())
	}
}
