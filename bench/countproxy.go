package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// CountingProxy is a reverse proxy on loopback that counts every request it forwards, by method
// and kind of resource. Put in front of notary-server or the upstream registry, it gives exact
// request counts without parsing the peers' logs, whose formats differ and can drop lines.
type CountingProxy struct {
	URL  string // http://127.0.0.1:port
	Host string // 127.0.0.1:port

	srv *http.Server

	mu       sync.Mutex
	counts   map[string]int
	arrivals []arrival // the first maxArrivals requests since Reset
}

type arrival struct {
	key string
	at  time.Time
}

// maxArrivals bounds the arrival times a CountingProxy keeps between Resets (counts are exact
// past it; Arrivals is not).
const maxArrivals = 1 << 16

// StartCountingProxy listens on a free loopback port and forwards everything to target.
func StartCountingProxy(target string) (*CountingProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("counting proxy target: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("counting proxy: %w", err)
	}
	c := &CountingProxy{URL: "http://" + ln.Addr().String(), Host: ln.Addr().String(), counts: map[string]int{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host // registries build Location headers from Host
		},
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConnsPerHost: 256,
			DisableCompression:  true,
			IdleConnTimeout:     time.Minute,
		},
		FlushInterval: -1, // stream blobs as they come
		ErrorLog:      nil,
	}
	c.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c.add(r.Method + " " + Classify(r.URL.Path))
			rp.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = c.srv.Serve(ln) }()
	return c, nil
}

func (c *CountingProxy) add(key string) {
	now := time.Now()
	c.mu.Lock()
	c.counts[key]++
	if len(c.arrivals) < maxArrivals {
		c.arrivals = append(c.arrivals, arrival{key, now})
	}
	c.mu.Unlock()
}

// Arrivals returns when the requests since the last Reset whose key has the given method ("" =
// any) and kind prefix arrived, in order (as Counts.Match selects them; at most the first 65,536
// requests of any kind are remembered).
func (c *CountingProxy) Arrivals(method, kindPrefix string) []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Time
	for _, a := range c.arrivals {
		if keyMatches(a.key, method, kindPrefix) {
			out = append(out, a.at)
		}
	}
	return out
}

// Counts returns the counts since the last Reset, keyed "METHOD kind" (see Classify).
func (c *CountingProxy) Counts() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(Counts, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// Reset zeroes the counts, so a scenario sees only its own requests.
func (c *CountingProxy) Reset() {
	c.mu.Lock()
	c.counts = map[string]int{}
	c.arrivals = nil
	c.mu.Unlock()
}

// Close stops the listener and waits briefly for forwarded requests to end.
func (c *CountingProxy) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return c.srv.Close()
	}
	return err
}

// Counts maps "METHOD kind" to a number of requests.
type Counts map[string]int

// Total is the number of requests of any kind.
func (c Counts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// Match sums the counts whose key has the given method ("" = any) and kind prefix.
func (c Counts) Match(method, kindPrefix string) int {
	n := 0
	for k, v := range c {
		if keyMatches(k, method, kindPrefix) {
			n += v
		}
	}
	return n
}

func keyMatches(key, method, kindPrefix string) bool {
	m, kind, _ := strings.Cut(key, " ")
	return (method == "" || m == method) && strings.HasPrefix(kind, kindPrefix)
}

// String lists the counts in a stable order, e.g. "GET blob=1, HEAD manifest-tag=2".
func (c Counts) String() string {
	if len(c) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%d", k, c[k])
	}
	return b.String()
}

// Classify names the kind of resource a registry or Notary URL path addresses:
//
//	/v2/                                  → base
//	/v2/<name>/manifests/sha256:…         → manifest-digest
//	/v2/<name>/manifests/<tag>            → manifest-tag
//	/v2/<name>/blobs/uploads/…            → upload
//	/v2/<name>/blobs/<digest>             → blob
//	/v2/<name>/tags/list                  → tags
//	/v2/<gun>/_trust/tuf/<role>.json      → tuf:<role>  (tuf:<role>.<checksum> when fetched by hash)
//	anything else                         → other
func Classify(path string) string {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return "other"
	}
	if rest == "" {
		return "base"
	}
	if i := strings.LastIndex(rest, "/_trust/tuf/"); i >= 0 {
		file := rest[i+len("/_trust/tuf/"):]
		role, ok := strings.CutSuffix(file, ".json")
		if !ok || role == "" {
			return "other"
		}
		// notary fetches consistent snapshots as <role>.<sha256hex>.json
		if j := strings.LastIndex(role, "."); j >= 0 && len(role)-j-1 == 64 {
			return "tuf:" + role[:j] + ".<checksum>"
		}
		return "tuf:" + role
	}
	if i := strings.LastIndex(rest, "/manifests/"); i > 0 {
		ref := rest[i+len("/manifests/"):]
		if ref == "" || strings.Contains(ref, "/") {
			return "other"
		}
		if strings.Contains(ref, ":") {
			return "manifest-digest"
		}
		return "manifest-tag"
	}
	if i := strings.LastIndex(rest, "/blobs/uploads"); i > 0 {
		return "upload"
	}
	if i := strings.LastIndex(rest, "/blobs/"); i > 0 {
		d := rest[i+len("/blobs/"):]
		if d != "" && !strings.Contains(d, "/") {
			return "blob"
		}
		return "other"
	}
	if strings.HasSuffix(rest, "/tags/list") {
		return "tags"
	}
	return "other"
}
