package main

import (
	"context"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/trustgate/trustgate/bench"
	"github.com/trustgate/trustgate/internal/peers"
)

// world is everything the scenarios share: one upstream registry and its notary-server, each also
// reachable through a counting proxy, the signed images, and the trustgate binary.
type world struct {
	tb        *scope
	reg       *peers.Registry
	notary    *peers.Notary
	upCount   *bench.CountingProxy // in front of reg
	notCount  *bench.CountingProxy // in front of notary
	trustgate string               // binary
	gateYAML  string               // appended to every trustgate configuration

	big   peers.Pushed // one ~1 GiB layer, scenario 1
	small peers.Pushed // a small image, scenarios 2-4
	multi peers.Pushed // 5 layers, scenarios 4 (blob herd) and 5
}

const (
	bigRepo   = "library/big"
	smallRepo = "library/small"
	multiRepo = "library/multi"
	tag       = "v1"
)

func gun(repo string) string { return "docker.io/" + repo }

func newWorld(tb *scope, cfg config) *world {
	w := &world{tb: tb, gateYAML: cfg.gateYAML}
	dir := tb.TempDir()
	bin, err := peers.BuildTrustgate(dir)
	if err != nil {
		tb.Fatalf("building trustgate: %v", err)
	}
	w.trustgate = bin
	w.reg = peers.StartRegistry(tb)
	w.notary = peers.StartNotary(tb)
	if w.upCount, err = bench.StartCountingProxy(w.reg.URL); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = w.upCount.Close() })
	if w.notCount, err = bench.StartCountingProxy(w.notary.URL); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = w.notCount.Close() })

	t0 := time.Now()
	w.big = peers.PushBigImage(tb, w.reg, bigRepo, tag, cfg.bigSize, 1)
	tb.Logf("pushed %s:%s (layer %d bytes) in %v", bigRepo, tag, w.big.Layers[0].Size, time.Since(t0).Round(time.Millisecond))
	w.small = peers.PushImage(tb, w.reg, smallRepo, tag)
	w.multi = pushLayered(tb, w.reg, multiRepo, tag, cfg.layerSize, cfg.layers)

	cli := peers.NewNotaryCLI(tb, w.notary.URL)
	for _, p := range []peers.Pushed{w.big, w.small, w.multi} {
		g := gun(p.Repo)
		cli.InitRepo(g)
		peers.Sign(tb, cli, g, tag, p)
	}
	tb.Logf("signed %d tags with the notary CLI", 3)
	return w
}

// pushLayered pushes an image of n random (incompressible) layers of size bytes each.
func pushLayered(tb *scope, reg *peers.Registry, repo, tag string, size int64, n int) peers.Pushed {
	img, err := random.Image(size, int64(n))
	if err != nil {
		tb.Fatal(err)
	}
	ref, err := name.ParseReference(reg.Host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		tb.Fatalf("pushing %s: %v", ref, err)
	}
	d, _ := img.Digest()
	raw, _ := img.RawManifest()
	mt, _ := img.MediaType()
	p := peers.Pushed{Repo: repo, Tag: tag, Digest: d.String(), Size: int64(len(raw)), MediaType: string(mt)}
	ls, _ := img.Layers()
	for _, l := range ls {
		ld, _ := l.Digest()
		sz, _ := l.Size()
		p.Layers = append(p.Layers, peers.Blob{Digest: ld.String(), Size: sz})
	}
	return p
}
