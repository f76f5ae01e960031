package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/trustgate/trustgate/cache"
	"github.com/trustgate/trustgate/internal/peers"
	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/resolver"
)

// Micro-benchmarks of the per-request path of a warm pull, for `make bench` (which profiles
// them). They assert nothing about speed.

// benchServer builds the handler as cmd/trustgate wires it: a real resolver behind the trust cache,
// talking to a notary-like server with metadata from the test signer, in front of upstream.
func benchServer(b *testing.B, upstream string, sign func(r *tuftest.Repo)) *Server {
	b.Helper()
	const gun = "docker.io/library/bench"
	repo := tuftest.NewRepo(b, gun)
	if sign != nil {
		sign(repo)
	}
	srv := tuftest.Serve(b, gun, repo.Publish())
	rc, err := resolver.NewClient(resolver.Config{ServerURL: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	tc, err := cache.New(rc, cache.Options{TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	u, err := url.Parse(upstream)
	if err != nil {
		b.Fatal(err)
	}
	pol, err := policy.New(policy.Config{Default: policy.RuleConfig{Mode: policy.Enforce}})
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Options{
		Upstreams: []*Upstream{{Name: "docker.io", URL: u, GUNPrefix: "docker.io", DockerHub: true, Trust: NotaryStates(tc.State)}},
		Default:   "docker.io",
		Policy:    pol,
		TempDir:   b.TempDir(),
		// The decision record of every manifest request is part of the cost, as in production.
		Logger: slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// BenchmarkLocate: upstream selection and name mapping/validation for the request forms clients
// send (docker mirror, path prefix, containerd ?ns=).
func BenchmarkLocate(b *testing.B) {
	s := benchServer(b, "http://127.0.0.1:1", nil) // never dialled
	for _, tc := range []struct{ name, target, repo string }{
		{"official", "/v2/alpine/manifests/3", "alpine"},
		{"two-segments", "/v2/library/alpine/manifests/3", "library/alpine"},
		{"prefix", "/v2/docker.io/library/alpine/manifests/3", "docker.io/library/alpine"},
		{"ns", "/v2/library/alpine/manifests/3?ns=docker.io", "library/alpine"},
		{"deep", "/v2/team/group/sub/project/app/manifests/3", "team/group/sub/project/app"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, tc.target, nil)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.locate(r, tc.repo); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWarmManifest: the whole handler (routing, policy, cached trust, cached manifest,
// decision log) for HEAD and GET of a signed tag whose trust state and manifest are warm —
// scenario 2 of the report without the network, so its profile is trustgate's alone.
func BenchmarkWarmManifest(b *testing.B) {
	reg := peers.StartRegistry(b)
	img := peers.PushImage(b, reg, "library/bench", "v1")
	s := benchServer(b, reg.URL, func(r *tuftest.Repo) {
		r.AddTargetDigest("targets", "v1", img.Digest, img.Size)
	})
	serve := func(method string) *httptest.ResponseRecorder {
		r := httptest.NewRequestWithContext(context.Background(), method, "/v2/library/bench/manifests/v1", nil)
		r.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	if w := serve(http.MethodGet); w.Code != http.StatusOK || w.Header().Get("Docker-Content-Digest") != img.Digest {
		b.Fatalf("priming GET: %d %s %s", w.Code, w.Header().Get("Docker-Content-Digest"), w.Body)
	}
	// The registry writes its access-log line after the response; wait for the priming fetch's line
	// so that it is not mistaken for a request made while warm.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := reg.Log.WaitFor(ctx, func(l string) bool { return strings.Contains(l, "/manifests/"+img.Digest) }); err != nil {
		b.Fatal(err)
	}
	mark := reg.Log.Len()
	for _, method := range []string{http.MethodHead, http.MethodGet} {
		b.Run(method, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if w := serve(method); w.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", method, w.Code, w.Body)
				}
			}
		})
		b.Run(method+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if w := serve(method); w.Code != http.StatusOK {
						b.Errorf("%s: %d %s", method, w.Code, w.Body)
						return
					}
				}
			})
		})
	}
	if n := len(reg.RequestsSince(mark)); n != 0 {
		b.Fatalf("warm requests reached the upstream %d times", n)
	}
}

// BenchmarkByDigestVerdict: the verdict for a layer asked for by digest in a repository with n
// signed tags, each an image whose edges are recorded (no upstream request in any case):
// warm (derived set memoised), derive-memory (the set derived again, as after a trust state with
// different signatures), derive-disk (also the in-memory edges gone, as after a restart: edges are
// read from FileEdges).
func BenchmarkByDigestVerdict(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("tags=%d", n), func(b *testing.B) {
			ctx := context.Background()
			edges, err := OpenFileEdges(b.TempDir(), 0)
			if err != nil {
				b.Fatal(err)
			}
			var last digest.Digest
			s := benchServer(b, "http://127.0.0.1:1", func(r *tuftest.Repo) {
				for i := range n {
					m := digest.FromString(fmt.Sprint("manifest", i))
					r.AddTargetDigest("targets", fmt.Sprint("t", i), m.String(), 1000)
					last = digest.FromString(fmt.Sprint("layer", i))
					e := Edges{Blobs: []digest.Digest{digest.FromString(fmt.Sprint("config", i)), last}}
					if err := edges.Record(ctx, m, e); err != nil {
						b.Fatal(err)
					}
				}
			})
			s.graph["docker.io"].next = edges
			ref, err := s.locate(httptest.NewRequest(http.MethodGet, "/v2/library/bench/blobs/"+last.String(), nil), "library/bench")
			if err != nil {
				b.Fatal(err)
			}
			subj := subject{gun: ref.gun, upstream: "docker.io", kind: kindBlob, digest: last}
			judge := func() {
				if v := s.judge(ctx, ref, subj); v.decision != decisionAllow {
					b.Fatalf("verdict %+v", v)
				}
			}
			judge()
			b.Run("warm", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					judge()
				}
			})
			b.Run("derive-memory", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					s.reach.memos.Purge()
					judge()
				}
			})
			b.Run("derive-disk", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					s.reach.memos.Purge()
					s.graph["docker.io"].mem.Purge()
					judge()
				}
			})
		})
	}
}
