package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/cache"
	"github.com/trustgate/trustgate/internal/peers"
	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/resolver"
)

// BenchmarkScaleWarmHTTP: warm GET manifest by tag through the proxy handler over loopback HTTP,
// round robin over N repositories, from parallel keep-alive clients, with the trust cache at its
// default 1,024 entries (trust_entries), spilling as serve does by default (cache.spill), and a
// real resolver over a trust dir on disk. A working set of 2,048 repositories is twice the cache:
// every request finds its repository evicted and reads it back from the spill. The
// manifests stay in the manifest cache (4,096 entries), so no request reaches the upstream
// registry; what differs between sizes is the trust state alone.
func BenchmarkScaleWarmHTTP(b *testing.B) {
	const n = 2 * cache.DefaultSize
	reg := peers.StartRegistry(b)
	man := benchManifest(b, reg.URL, n)
	root := tuftest.NewCertKeyFor(tuftest.ECDSA, "bench.example/many/*")
	trust := tuftest.NewServer(b)
	for i := range n {
		gun := fmt.Sprintf("bench.example/many/r%d", i)
		repo := tuftest.NewRepo(b, gun, tuftest.WithRootKey(root))
		repo.AddTargetDigest("targets", "v1", man.digest, man.size)
		trust.Set(gun, repo.Publish())
	}
	u, err := url.Parse(reg.URL)
	if err != nil {
		b.Fatal(err)
	}
	pol, err := policy.New(policy.Config{Default: policy.RuleConfig{Mode: policy.Enforce}})
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{1, 100, 1000, n} {
		// Setup and priming stay outside the sub-benchmark, which the benchmark driver runs more
		// than once (b.N = 1 first).
		rc, err := resolver.NewClient(resolver.Config{ServerURL: trust.URL, TrustDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		tc, err := cache.New(rc, cache.Options{TTL: time.Hour, SpillDir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		s, err := New(Options{
			Upstreams: []*Upstream{{Name: "bench.example", URL: u, Trust: NotaryStates(tc.State)}},
			Default:   "bench.example",
			Policy:    pol,
			TempDir:   b.TempDir(),
			Logger:    slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})),
		})
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(s)
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
		get := func(i int) error {
			req, err := http.NewRequestWithContext(context.Background(), http.MethodGet,
				fmt.Sprintf("%s/v2/many/r%d/manifests/v1", srv.URL, i), nil)
			if err != nil {
				return err
			}
			req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != man.digest {
				return fmt.Errorf("r%d: %d %s", i, resp.StatusCode, body)
			}
			return nil
		}
		for i := range size {
			if err := get(i); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(fmt.Sprintf("repos=%d", size), func(b *testing.B) {
			var next atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := get(int(next.Add(1)) % size); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
		client.CloseIdleConnections()
		srv.Close()
		_ = s.Close()
		tc.Wait()
		_ = tc.Close()
	}
}

type benchImage struct {
	digest string
	size   int64
}

// benchManifest stores one small OCI image as v1 in bench.example's repositories many/r0 …
// many/r<n-1> (the blobs uploaded once and mounted into the others).
func benchManifest(b *testing.B, registryURL string, n int) benchImage {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := []byte("layer")
	var blobs []peers.Blob
	for _, c := range [][]byte{config, layer} {
		bl, err := peers.UploadBlob(ctx, registryURL, "many/r0", bytes.NewReader(c))
		if err != nil {
			b.Fatal(err)
		}
		blobs = append(blobs, bl)
	}
	man := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		blobs[0].Digest, blobs[0].Size, blobs[1].Digest, blobs[1].Size)
	sum := sha256.Sum256(man)
	img := benchImage{digest: "sha256:" + hex.EncodeToString(sum[:]), size: int64(len(man))}
	for i := range n {
		repo := fmt.Sprintf("many/r%d", i)
		if i > 0 {
			for _, bl := range blobs {
				req, err := http.NewRequestWithContext(ctx, http.MethodPost,
					registryURL+"/v2/"+repo+"/blobs/uploads/?from=many/r0&mount="+bl.Digest, http.NoBody)
				if err != nil {
					b.Fatal(err)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					b.Fatalf("mounting %s into %s: %s", bl.Digest, repo, resp.Status)
				}
			}
		}
		if _, err := peers.PutManifest(ctx, registryURL, repo, "v1", "application/vnd.oci.image.manifest.v1+json", man); err != nil {
			b.Fatal(err)
		}
	}
	return img
}
