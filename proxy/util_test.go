package proxy

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/resolver"
)

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var errTrustDown = fmt.Errorf("GET timestamp.json: %w", resolver.ErrUnavailable)

func mustPolicy(tb testing.TB) *policy.Policy {
	tb.Helper()
	p, err := policy.New(policy.Config{Rules: []policy.RuleConfig{{Match: "docker.io/off/**", Mode: policy.Off}}})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func newTestHTTP(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}
