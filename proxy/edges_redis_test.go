package proxy

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/redis/go-redis/v9"

	"github.com/trustgate/trustgate/internal/peers"
)

// TestRedisEdges: against a real redis-server, records round-trip, are byte for byte what
// FileEdges writes, carry a TTL (evictable under volatile-lru, unlike trust floors), and a
// foreign or malformed record is removed and reported missing, never returned.
func TestRedisEdges(t *testing.T) {
	ctx := context.Background()
	r := peers.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	s := NewRedisEdges(rdb, "t:up/", 0, nil)
	d := digest.FromString("index")
	e := Edges{Manifests: []digest.Digest{digest.FromString("a")}, Blobs: []digest.Digest{digest.FromString("c")}, Sizes: []int64{42}}
	if _, ok, err := s.Edges(ctx, d); ok || err != nil {
		t.Fatalf("empty store: %v %v", ok, err)
	}
	if err := s.Record(ctx, d, e); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Edges(ctx, d)
	if !ok || err != nil || !slices.Equal(got.Manifests, e.Manifests) || !slices.Equal(got.Blobs, e.Blobs) || !slices.Equal(got.Sizes, e.Sizes) {
		t.Fatalf("round trip: %+v %v %v", got, ok, err)
	}
	dir := t.TempDir()
	fs, err := OpenFileEdges(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Record(ctx, d, e); err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(filepath.Join(dir, "sha256", d.Encoded()[:2], d.Encoded()+".json"))
	if err != nil {
		t.Fatal(err)
	}
	inRedis, err := rdb.Get(ctx, "t:up/graph/"+d.String()).Bytes()
	if err != nil || string(inRedis) != string(onDisk) {
		t.Errorf("redis record %q, file record %q (%v)", inRedis, onDisk, err)
	}
	if ttl, err := rdb.TTL(ctx, "t:up/graph/"+d.String()).Result(); err != nil || ttl <= 0 {
		t.Errorf("edge record TTL %v, %v", ttl, err)
	}

	other := digest.FromString("other")
	foreign, _ := EncodeEdges(d, e) // a record about d stored under other
	for _, bad := range [][]byte{foreign, []byte("{not json")} {
		if err := rdb.Set(ctx, "t:up/graph/"+other.String(), bad, 0).Err(); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := s.Edges(ctx, other); ok || err == nil {
			t.Errorf("bad record %q: %+v %v %v", bad, got, ok, err)
		}
		if n, _ := rdb.Exists(ctx, "t:up/graph/"+other.String()).Result(); n != 0 {
			t.Errorf("bad record %q not removed", bad)
		}
	}
}

// TestReplicaDerivesFromRedisEdges: a second replica sharing the Redis edge store serves a
// signed image's layer by digest without fetching a manifest upstream.
func TestReplicaDerivesFromRedisEdges(t *testing.T) {
	reg := peers.StartRegistry(t)
	img := peers.PushImage(t, reg, "library/alpine", "1")
	r := peers.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	first := newEnv(t, reg, envConfig{edges: NewRedisEdges(rdb, "t:up/", 0, nil)})
	first.trust.sign("docker.io/library/alpine", "1", img, "targets")
	if r := first.get("/v2/alpine/manifests/1"); r.status != http.StatusOK {
		t.Fatalf("first replica, tag: %d", r.status)
	}
	second := newEnv(t, reg, envConfig{edges: NewRedisEdges(rdb, "t:up/", 0, nil)})
	second.trust.sign("docker.io/library/alpine", "1", img, "targets")
	mark := reg.Log.Len()
	if r := second.get("/v2/alpine/blobs/" + img.Layers[1].Digest); r.status != http.StatusOK || sha(r.body) != img.Layers[1].Digest {
		t.Fatalf("second replica, layer by digest: %d %s", r.status, r.body)
	}
	if reqs := manifestRequests(reg, mark); len(reqs) != 0 {
		t.Errorf("shared edges not used, manifests fetched: %+v", reqs)
	}
}
