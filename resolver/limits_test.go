package resolver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// endless is a reader that never ends.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

func TestLimiterRead(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 100<<10)
	tests := []struct {
		name     string
		r        io.Reader
		limit    int64
		declared int64 // the announced length; -1: none
		held     int64 // taken from the budget by "other fetches" during the read
		want     []byte
		budget   bool // fails on the budget
	}{
		{"short body", bytes.NewReader(body), 1 << 20, -1, 0, body, false},
		{"cut at the limit", bytes.NewReader(body), 1000, -1, 0, body[:1000], false},
		{"empty", bytes.NewReader(nil), 1 << 20, -1, 0, []byte{}, false},
		{"endless body within the limit's reach", endless{}, 256 << 10, -1, 0, bytes.Repeat([]byte(" "), 256<<10), false},
		{"endless body past the budget", endless{}, 4 << 20, -1, 0, nil, true},
		{"budget taken by other fetches", bytes.NewReader(body), 1 << 20, -1, 1<<20 - 50<<10, nil, true},
		{"announced length", bytes.NewReader(body), 1 << 20, int64(len(body)), 0, body, false},
		{"longer than announced", bytes.NewReader(body), 1 << 20, 5000, 0, body, false},
		{"longer than announced, cut at the limit", bytes.NewReader(body), 6000, 5000, 0, body[:6000], false},
		{"shorter than announced", bytes.NewReader(body), 1 << 20, 1 << 20, 0, body, false},
		{"endless body announced short, past the budget", endless{}, 4 << 20, 1000, 0, nil, true},
		{"announced length past the budget", bytes.NewReader(body), 1 << 20, 1 << 20, 1<<20 - 50<<10, nil, true},
		// The announcement reserves nothing: a short body announced at the whole budget, while
		// other fetches hold all but 8 KiB of it, is read.
		{"announced the whole budget, short body", bytes.NewReader(body[:1000]), 1 << 20, 1 << 20, 1<<20 - 8<<10, body[:1000], false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewLimiter(Limits{MaxMetadataBytes: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			if tc.held > 0 && !l.bytes.TryAcquire(tc.held) {
				t.Fatal("cannot hold")
			}
			got, err := l.read(tc.r, tc.limit, tc.declared)
			if tc.budget {
				if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "max_metadata_bytes") {
					t.Fatalf("err = %v, want the budget's ErrUnavailable", err)
				}
			} else if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("read %d bytes, err %v; want %d bytes", len(got), err, len(tc.want))
			} else if c := cap(got); c > len(got)+len(got)/8 && c > readChunk {
				t.Errorf("%d bytes kept in a buffer of %d", len(got), c)
			} else if int64(len(got)) == tc.declared && c != len(got) {
				t.Errorf("%d bytes as announced, kept in a buffer of %d", len(got), c)
			}
			// Whatever happened, the read's reservation is gone.
			l.bytes.Release(tc.held)
			if !l.bytes.TryAcquire(1 << 20) {
				t.Fatal("budget not fully released after the read")
			}
		})
	}
}

func TestNewLimiter(t *testing.T) {
	l, err := NewLimiter(Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Limits(); got != (Limits{DefaultMaxMetadataBytes, DefaultMaxConcurrentBootstraps, DefaultMaxRootBytes}) {
		t.Errorf("defaults: %+v", got)
	}
	if l, err := NewLimiter(Limits{MaxMetadataBytes: 64 << 10}); err != nil || l.Limits().MaxRootBytes != 64<<10 {
		t.Errorf("a budget under the default root cap: %v, %+v", err, l)
	}
	for _, bad := range []Limits{
		{MaxMetadataBytes: -1},
		{MaxConcurrentBootstraps: -1},
		{MaxRootBytes: -1},
		{MaxRootBytes: 200 << 20, MaxMetadataBytes: 1 << 30},
		{MaxRootBytes: 2 << 20, MaxMetadataBytes: 1 << 20},
	} {
		if _, err := NewLimiter(bad); err == nil {
			t.Errorf("NewLimiter(%+v) accepted", bad)
		}
	}
}

// writeEndless writes spaces to w until the client hangs up, counting what it wrote.
func writeEndless(w http.ResponseWriter, written *atomic.Int64) {
	chunk := []byte(strings.Repeat(" ", 32<<10))
	for written.Load() < 1<<30 {
		n, err := w.Write(chunk)
		written.Add(int64(n))
		if err != nil {
			return
		}
	}
}

// TestRootSizeCap: root.json has no parent to give its length, so notary reads up to 100 MiB of
// it. trustgate stops at Limits.MaxRootBytes: on first contact, and on the root re-fetch a failed
// pass triggers for a repository already trusted. (A server that declares a length over the cap
// is refused before any body is read.)
func TestRootSizeCap(t *testing.T) {
	// Bytes the server may write past the cap before the client hangs up: socket buffers.
	const slack = 32 << 20
	t.Run("first contact", func(t *testing.T) {
		var written atomic.Int64
		srv := fixtureServer(t)
		srv.setOverride("root", func(w http.ResponseWriter, r *http.Request) { writeEndless(w, &written) })
		c := newTestClient(t, srv, nil)
		if _, err := c.Update(context.Background(), gunApp); !errors.Is(err, ErrInvalid) {
			t.Fatalf("err = %v, want ErrInvalid", err)
		}
		if n := written.Load(); n > DefaultMaxRootBytes+slack {
			t.Fatalf("server wrote %d MiB of root.json before the client hung up", n>>20)
		}
	})
	t.Run("declared too long", func(t *testing.T) {
		srv := fixtureServer(t)
		srv.setOverride("root", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(DefaultMaxRootBytes+1))
			w.WriteHeader(http.StatusOK)
		})
		c := newTestClient(t, srv, nil)
		if _, err := c.Update(context.Background(), gunApp); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "exceeds") {
			t.Fatalf("err = %v, want ErrInvalid for the declared length", err)
		}
	})
	t.Run("warm repository", func(t *testing.T) {
		srv := fixtureServer(t)
		c := newTestClient(t, srv, nil)
		if _, err := c.Update(context.Background(), gunApp); err != nil {
			t.Fatal(err)
		}
		// An invalid timestamp makes the pass fail, which makes the client re-fetch root.json.
		var written atomic.Int64
		srv.setOverride("timestamp", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("{}")) })
		srv.setOverride("root", func(w http.ResponseWriter, r *http.Request) { writeEndless(w, &written) })
		const updates = 3
		for range updates {
			if _, err := c.Update(context.Background(), gunApp); err == nil {
				t.Fatal("update succeeded")
			}
		}
		if n := written.Load(); n > updates*(DefaultMaxRootBytes+slack) {
			t.Fatalf("server wrote %d MiB of root.json in %d updates", n>>20, updates)
		}
	})
}

// TestBootstrapsLimited: first contacts beyond MaxConcurrentBootstraps wait for a slot (so a
// burst of new names cannot open one endless download each), and a waiter whose context ends
// fails with ErrUnavailable, not "unsigned".
func TestBootstrapsLimited(t *testing.T) {
	const slots, names = 2, 6
	var mu sync.Mutex
	inflight, peak := 0, 0
	arrived := make(chan struct{}, names)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inflight++
		peak = max(peak, inflight)
		mu.Unlock()
		arrived <- struct{}{}
		<-release
		mu.Lock()
		inflight--
		mu.Unlock()
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	lim, err := NewLimiter(Limits{MaxConcurrentBootstraps: slots})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(Config{ServerURL: srv.URL, Limiter: lim})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, names)
	for i := range names {
		go func() {
			_, err := c.Update(context.Background(), fmt.Sprintf("example.com/n%d", i))
			errs <- err
		}()
	}
	for range slots {
		<-arrived
	}
	// The other first contacts are queued now or about to be; none may reach the server.
	select {
	case <-arrived:
		mu.Lock()
		t.Errorf("%d root.json fetches at once, limit %d", inflight, slots)
		mu.Unlock()
	case <-time.After(300 * time.Millisecond):
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Update(ctx, "example.com/impatient"); !errors.Is(err, ErrUnavailable) || IsNotSigned(err) {
		t.Errorf("queued update past its deadline: err = %v, want ErrUnavailable", err)
	}
	close(release)
	for range names {
		if err := <-errs; !errors.Is(err, ErrNoTrustData) {
			t.Errorf("err = %v, want ErrNoTrustData", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if peak > slots {
		t.Errorf("peak %d concurrent root.json fetches, limit %d", peak, slots)
	}
}

// TestOutageDoesNotRefetchRoot: a pass that failed because the trust server is unavailable (and
// no cached timestamp can stand in) does not go on to fetch root.json: a new root cannot make an
// unreachable server answer, and every request for a warm repository would otherwise cost a root
// download during an outage, or from a server that fails timestamp.json on purpose.
func TestOutageDoesNotRefetchRoot(t *testing.T) {
	srv := fixtureServer(t)
	dir := t.TempDir()
	c := newTestClient(t, srv, func(cfg *Config) { cfg.TrustDir = dir })
	if _, err := c.Update(context.Background(), gunApp); err != nil {
		t.Fatal(err)
	}
	// A restart that kept the root but not the timestamp: nothing cached can stand in.
	if err := os.Remove(filepath.Join(c.store.gunDir(gunApp), "metadata", "timestamp.json")); err != nil {
		t.Fatal(err)
	}
	c = newTestClient(t, srv, func(cfg *Config) { cfg.TrustDir = dir })
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusBadGateway} {
		srv.setOverride("timestamp", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) })
		srv.take()
		_, err := c.Update(context.Background(), gunApp)
		if !errors.Is(err, ErrUnavailable) || IsNotSigned(err) {
			t.Fatalf("%d: err = %v, want ErrUnavailable", status, err)
		}
		for _, p := range srv.take() {
			if strings.HasSuffix(p, "/root.json") {
				t.Errorf("%d on timestamp.json: root.json fetched (%s)", status, p)
			}
		}
	}
}

// TestBootstrapSlotsPerServer: first-contact slots belong to each trust server's Client (the
// byte budget is what the Clients share), so one server stalling its root.json fetches does not
// hold up first contacts with another.
func TestBootstrapSlotsPerServer(t *testing.T) {
	stalled := make(chan struct{})
	arrived := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-stalled:
		case <-r.Context().Done():
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(stalled) })
	fast := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(fast.Close)
	lim, err := NewLimiter(Limits{MaxConcurrentBootstraps: 1})
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewClient(Config{ServerURL: slow.URL, Limiter: lim})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewClient(Config{ServerURL: fast.URL, Limiter: lim})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = a.Update(context.Background(), "example.com/stalled") }()
	<-arrived // a holds its only slot
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := b.Update(ctx, "example.com/other"); !errors.Is(err, ErrNoTrustData) {
		t.Fatalf("first contact with another server while the first stalls: %v", err)
	}
}
