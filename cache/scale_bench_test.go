package cache_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/cache"
	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/resolver"
)

// The scale section of `make bench` (bench/run.sh runs BenchmarkScale* alone; bench/cmd/scale
// renders the growth per 10× work). They assert nothing about speed. Sizes are sub-benchmark
// parameters (tags=, repos=) so the renderer can put them in columns.

var scaleTags = []int{10, 1_000, 10_000, 100_000}

// scaleRepo is a signed repository with tags spread over targets (delegations == 0) or over
// that many delegations of targets, served by the test signer's server.
type scaleRepo struct {
	gun  string
	repo *tuftest.Repo
	srv  *tuftest.Server
	role string // where a new tag goes
	tag  string // a tag that is signed
	next int
}

var (
	scaleMu    sync.Mutex
	scaleRepos = map[string]*scaleRepo{}
)

func tagName(i int) string { return "tag-" + strconv.Itoa(i) }

func newScaleRepo(b *testing.B, tags, delegations int) *scaleRepo {
	b.Helper()
	key := fmt.Sprintf("%d/%d", tags, delegations)
	scaleMu.Lock()
	defer scaleMu.Unlock()
	if r, ok := scaleRepos[key]; ok {
		return r
	}
	gun := fmt.Sprintf("bench.example/scale/t%d-d%d", tags, delegations)
	repo := tuftest.NewRepo(b, gun)
	roles := []string{"targets"}
	if delegations > 0 {
		roles = nil
		for i := range delegations {
			name := fmt.Sprintf("targets/d%d", i)
			repo.AddDelegation(name, []*tuftest.Key{tuftest.NewKey(b, tuftest.ECDSA)}, []string{""}, 1)
			roles = append(roles, name)
		}
	}
	for i := range tags {
		repo.AddTargetDigest(roles[i%len(roles)], tagName(i), fmt.Sprintf("%064x", i), int64(500+i%1000))
	}
	// A tag in roles[0] (tag i is in roles[i%len(roles)]), from the middle.
	r := &scaleRepo{gun: gun, repo: repo, role: roles[0], tag: tagName(len(roles) * (tags / 2 / len(roles))), next: tags}
	r.srv = tuftest.Serve(b, gun, repo.Publish())
	scaleRepos[key] = r
	return r
}

func scaleClient(b *testing.B, url string, trustDir string) *resolver.Client {
	b.Helper()
	c, err := resolver.NewClient(resolver.Config{ServerURL: url, TrustDir: trustDir})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkScaleResolution: one repository of N tags (in targets, or in 10 delegations).
// cold: a new client's first Update (TOFU, every file fetched and verified); warm: a resolution
// answered by the cache; recheck: an Update that finds the same timestamp (what each trust_ttl
// costs); newtag: an Update after one tag was added and the repository re-published.
func BenchmarkScaleResolution(b *testing.B) {
	ctx := context.Background()
	for _, deleg := range []int{0, 10} {
		for _, n := range scaleTags {
			b.Run(fmt.Sprintf("delegations=%d/tags=%d", deleg, n), func(b *testing.B) {
				r := newScaleRepo(b, n, deleg)
				roles := []string{r.role}
				b.Run("cold", func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if _, err := scaleClient(b, r.srv.URL, "").Update(ctx, r.gun); err != nil {
							b.Fatal(err)
						}
					}
				})
				c := scaleClient(b, r.srv.URL, "")
				if _, err := c.Update(ctx, r.gun); err != nil {
					b.Fatal(err)
				}
				b.Run("warm", func(b *testing.B) {
					tc, err := cache.New(c, cache.Options{TTL: time.Hour})
					if err != nil {
						b.Fatal(err)
					}
					if _, err := tc.Resolve(ctx, r.gun, r.tag, roles); err != nil {
						b.Fatal(err)
					}
					b.ReportAllocs()
					for b.Loop() {
						if _, err := tc.Resolve(ctx, r.gun, r.tag, roles); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.Run("recheck", func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						if _, err := c.Update(ctx, r.gun); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.Run("newtag", func(b *testing.B) {
					b.ReportAllocs()
					for i := 0; i < b.N; i++ {
						b.StopTimer()
						r.repo.AddTargetDigest(r.role, tagName(r.next), fmt.Sprintf("%064x", r.next), 1)
						r.next++
						r.srv.Set(r.gun, r.repo.Publish())
						b.StartTimer()
						if _, err := c.Update(ctx, r.gun); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		}
	}
}

// diskServer serves published trust files from a directory, so the process holds none of them.
func diskServer(b *testing.B, gun string, files map[string][]byte) *httptest.Server {
	b.Helper()
	dir := b.TempDir()
	write := func(name string, raw []byte) {
		p := filepath.Join(dir, strings.ReplaceAll(name, "/", "%2F"))
		if err := os.WriteFile(p, raw, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	for name, raw := range files {
		write(name, raw)
		write(strings.TrimSuffix(name, ".json")+"."+tuftest.SHA256Hex(raw)+".json", raw)
	}
	prefix := "/v2/" + gun + "/_trust/tuf/"
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		name, ok := strings.CutPrefix(req.URL.Path, prefix)
		if !ok {
			http.NotFound(w, req)
			return
		}
		http.ServeFile(w, req, filepath.Join(dir, strings.ReplaceAll(name, "/", "%2F")))
	}))
	b.Cleanup(s.Close)
	return s
}

// procMiB reads a /proc/self/status field (VmRSS, VmHWM) in MiB.
func procMiB(field string) float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// settle collects garbage and returns freed memory to the OS, then reports the live heap.
func settle() float64 {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc) / (1 << 20)
}

// BenchmarkScaleMemory: the memory one repository of N tags holds once resolved through the
// cache, with the trust files served from disk (the signer's copy released first): heap-MiB is
// the live heap it adds, rss-MiB the process's resident set afterwards, peak-rss-MiB the most
// resident during the cold resolution.
func BenchmarkScaleMemory(b *testing.B) {
	ctx := context.Background()
	for _, n := range scaleTags {
		b.Run(fmt.Sprintf("tags=%d", n), func(b *testing.B) {
			gun := fmt.Sprintf("bench.example/memory/t%d", n)
			var url, tag string
			func() {
				repo := tuftest.NewRepo(b, gun)
				for i := range n {
					repo.AddTargetDigest("targets", tagName(i), fmt.Sprintf("%064x", i), 1)
				}
				url, tag = diskServer(b, gun, repo.Publish()).URL, tagName(n/2)
			}()
			for b.Loop() {
				b.StopTimer()
				before := settle()
				_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset VmHWM
				b.StartTimer()
				tc, err := cache.New(scaleClient(b, url, b.TempDir()), cache.Options{TTL: time.Hour})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := tc.Resolve(ctx, gun, tag, nil); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				peak := procMiB("VmHWM")
				heap := settle() - before
				b.ReportMetric(heap, "heap-MiB")
				b.ReportMetric(procMiB("VmRSS"), "rss-MiB")
				b.ReportMetric(peak, "peak-rss-MiB")
				runtime.KeepAlive(tc)
				b.StartTimer()
			}
		})
	}
}

// reposFixture is up to 5,000 small signed repositories (10 tags each) on one server, sharing a
// root key whose certificate names them all (CN bench.example/many/*).
type reposFixture struct {
	srv  *tuftest.Server
	guns []string
}

// manyRepos makes n repositories served for the rest of b (call it before b's sub-benchmarks).
func manyRepos(b *testing.B, n int) reposFixture {
	root := tuftest.NewCertKeyFor(tuftest.ECDSA, "bench.example/many/*")
	f := reposFixture{srv: tuftest.NewServer(b)}
	for i := range n {
		gun := fmt.Sprintf("bench.example/many/r%d", i)
		repo := tuftest.NewRepo(b, gun, tuftest.WithRootKey(root))
		for j := range 10 {
			repo.AddTargetDigest("targets", tagName(j), fmt.Sprintf("%064x", i*10+j), 1)
		}
		f.srv.Set(gun, repo.Publish())
		f.guns = append(f.guns, gun)
	}
	return f
}

func (f reposFixture) first(n int) reposFixture { return reposFixture{srv: f.srv, guns: f.guns[:n]} }

// BenchmarkScaleRepos: the heap and resident set of a process holding N repositories' verified
// state (each 10 tags), everything resolved once.
func BenchmarkScaleRepos(b *testing.B) {
	ctx := context.Background()
	all := manyRepos(b, 5000)
	for _, n := range []int{10, 100, 1000, 5000} {
		b.Run(fmt.Sprintf("repos=%d", n), func(b *testing.B) {
			f := all.first(n)
			for b.Loop() {
				b.StopTimer()
				before := settle()
				b.StartTimer()
				tc, err := cache.New(scaleClient(b, f.srv.URL, b.TempDir()), cache.Options{TTL: time.Hour, Size: n})
				if err != nil {
					b.Fatal(err)
				}
				for _, gun := range f.guns {
					if _, err := tc.Resolve(ctx, gun, tagName(1), nil); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				heap := settle() - before
				b.ReportMetric(heap, "heap-MiB")
				b.ReportMetric(heap*1024/float64(n), "KiB/repo")
				b.ReportMetric(procMiB("VmRSS"), "rss-MiB")
				runtime.KeepAlive(tc)
				b.StartTimer()
			}
		})
	}
}

// BenchmarkScaleWarm: warm resolutions from parallel clients, round robin over N repositories,
// with the cache at its default 1,024 entries, spilling as serve does by default: 2,048 is a
// working set twice the cache, where each resolution reads an evicted repository back from the
// spill.
func BenchmarkScaleWarm(b *testing.B) {
	ctx := context.Background()
	all := manyRepos(b, 2*cache.DefaultSize)
	for _, n := range []int{1, 100, 1000, 2 * cache.DefaultSize} {
		b.Run(fmt.Sprintf("repos=%d", n), func(b *testing.B) {
			f := all.first(n)
			tc, err := cache.New(scaleClient(b, f.srv.URL, b.TempDir()), cache.Options{TTL: time.Hour, SpillDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = tc.Close() }) // untimed, unlike a defer
			for _, gun := range f.guns {
				if _, err := tc.Resolve(ctx, gun, tagName(1), nil); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					gun := f.guns[int(next.Add(1))%len(f.guns)]
					if _, err := tc.Resolve(ctx, gun, tagName(1), nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
