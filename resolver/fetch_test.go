package resolver

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestTimestampSizeCaps(t *testing.T) {
	var written atomic.Int64
	tests := []struct {
		name string
		h    http.HandlerFunc
	}{
		{"declared too long", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "2097152")
			w.WriteHeader(http.StatusOK)
		}},
		{"endless body", func(w http.ResponseWriter, r *http.Request) {
			chunk := []byte(strings.Repeat(" ", 32<<10))
			for {
				n, err := w.Write(chunk)
				written.Add(int64(n))
				if err != nil || written.Load() > 1<<30 {
					return
				}
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := fixtureServer(t)
			srv.setOverride("timestamp", tc.h)
			c := newTestClient(t, srv, nil)
			_, err := c.Update(context.Background(), gunApp)
			if !errors.Is(err, ErrInvalid) || IsNotSigned(err) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
	// The client stopped reading at the cap; only socket buffers' worth more was accepted.
	if n := written.Load(); n > 64<<20 {
		t.Fatalf("server wrote %d bytes before the client hung up", n)
	}
}

func TestFetchSizeCapFromParent(t *testing.T) {
	// Bodies are read only up to the length the parent lists (chunked, so no Content-Length
	// gives it away): trailing bytes are cut off like notary does, and a longer document
	// cannot match the hash.
	tests := []struct {
		name string
		body func(orig []byte) []byte
		err  error
	}{
		{"trailing junk is cut", func(b []byte) []byte { return append(append([]byte{}, b...), strings.Repeat(" ", 100)...) }, nil},
		{"longer document", func(b []byte) []byte { return append([]byte(" "), b...) }, ErrChecksum},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := fixtureServer(t)
			for name, b := range srv.files[gunApp] {
				if strings.HasPrefix(name, "snapshot.") {
					body := tc.body(b)
					srv.setOverride(name, func(w http.ResponseWriter, r *http.Request) {
						_, _ = w.Write(body[:10])
						w.(http.Flusher).Flush()
						_, _ = w.Write(body[10:])
					})
				}
			}
			c := newTestClient(t, srv, nil)
			_, err := c.Update(context.Background(), gunApp)
			if tc.err == nil && err != nil || tc.err != nil && !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
		})
	}
}

func TestServerFailures(t *testing.T) {
	tests := []struct {
		name   string
		status int
		role   string
	}{
		{"timestamp 500", http.StatusInternalServerError, "timestamp"},
		{"timestamp 503", http.StatusServiceUnavailable, "timestamp"},
		{"timestamp 404", http.StatusNotFound, "timestamp"},
		{"timestamp 401", http.StatusUnauthorized, "timestamp"},
		{"root 500", http.StatusInternalServerError, "root"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := fixtureServer(t)
			srv.setOverride(tc.role, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(tc.status) })
			c := newTestClient(t, srv, nil)
			_, err := c.Update(context.Background(), gunApp)
			if !errors.Is(err, ErrUnavailable) || IsNotSigned(err) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
		})
	}
	// Missing delegation content is not "unsigned": it is a trust failure.
	srv := fixtureServer(t)
	for name := range srv.files[gunApp] {
		if strings.HasPrefix(name, "targets/releases.") {
			srv.setOverride(name, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
		}
	}
	c := newTestClient(t, srv, nil)
	if _, err := c.Update(context.Background(), gunApp); err == nil || IsNotSigned(err) {
		t.Fatalf("missing delegation: err = %v", err)
	}
	// Unreachable server.
	srv.Close()
	c = newTestClient(t, srv, nil)
	if _, err := c.Update(context.Background(), gunApp); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("closed server: err = %v", err)
	}
}

func TestOfflineUsesCachedTimestamp(t *testing.T) {
	srv := fixtureServer(t)
	var now atomic.Pointer[time.Time]
	n := fixtureNow
	now.Store(&n)
	dir := t.TempDir()
	c := newTestClient(t, srv, func(cfg *Config) {
		cfg.TrustDir = dir
		cfg.Now = func() time.Time { return *now.Load() }
	})
	ctx := context.Background()
	if _, err := c.Update(ctx, gunApp); err != nil {
		t.Fatal(err)
	}
	srv.take()
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusNotFound, http.StatusBadGateway} {
		srv.setOverride("timestamp", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) })
		st, err := c.Update(ctx, gunApp)
		if err != nil {
			t.Fatalf("%d: %v", status, err)
		}
		if _, err := st.Lookup("v3", nil); err != nil {
			t.Fatal(err)
		}
	}
	// Server gone entirely, and a restarted client: the on-disk timestamp stands in.
	srv.Close()
	c2 := newTestClient(t, srv, func(cfg *Config) {
		cfg.TrustDir = dir
		cfg.Now = func() time.Time { return *now.Load() }
	})
	if _, err := c2.Update(ctx, gunApp); err != nil {
		t.Fatalf("offline restart: %v", err)
	}
	// Once the cached timestamp has expired, offline is an error, both unavailable and expired.
	later := time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC)
	now.Store(&later)
	for _, cl := range []*Client{c, c2} {
		_, err := cl.Update(ctx, gunApp)
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrExpired) {
			t.Fatalf("expired offline: err = %v", err)
		}
	}
}

func TestInvalidTimestampIsNotReplacedByCache(t *testing.T) {
	// A reachable server serving a bad timestamp is an attack or a fault, not an outage: no
	// fallback to the cached one.
	srv := fixtureServer(t)
	c := newTestClient(t, srv, nil)
	if _, err := c.Update(context.Background(), gunApp); err != nil {
		t.Fatal(err)
	}
	srv.setOverride("timestamp", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"signed":{"_type":"Timestamp"},"signatures":[]}`))
	})
	if _, err := c.Update(context.Background(), gunApp); err == nil {
		t.Fatal("bad timestamp accepted")
	}
}
