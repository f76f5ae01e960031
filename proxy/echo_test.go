package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/peers"
)

// TestHugeClientStringsNotEchoed: an error message repeats at most the first maxEcho bytes of
// anything the client sent (path, name, tag, digest, parameters), quoted, wherever it is echoed.
func TestHugeClientStringsNotEchoed(t *testing.T) {
	reg := peers.StartRegistry(t)
	e := newEnv(t, reg, envConfig{})
	huge := strings.Repeat("a", 60<<10)
	for _, c := range []struct {
		name, method, path string
		status             int
	}{
		{"unknown route", http.MethodGet, "/v2/" + huge, http.StatusNotFound},
		{"unknown route with quotes", http.MethodGet, "/v2/%22" + huge, http.StatusNotFound},
		{"unsupported method", http.MethodDelete, "/v2/" + huge, http.StatusMethodNotAllowed},
		{"tag", http.MethodGet, "/v2/alpine/manifests/" + huge + "!", http.StatusBadRequest},
		{"digest", http.MethodGet, "/v2/alpine/manifests/sha256:" + huge, http.StatusBadRequest},
		{"blob digest", http.MethodGet, "/v2/alpine/blobs/" + huge, http.StatusBadRequest},
		{"referrers digest", http.MethodGet, "/v2/alpine/referrers/" + huge, http.StatusBadRequest},
		{"ns", http.MethodGet, "/v2/alpine/manifests/1?ns=" + huge, http.StatusNotFound},
		{"prefix contradicting ns", http.MethodGet, "/v2/docker.io/x/manifests/1?ns=" + huge, http.StatusNotFound},
		{"tag list n", http.MethodGet, "/v2/alpine/tags/list?n=" + huge, http.StatusBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(c.method, c.path, nil)
			if r.status != c.status {
				t.Errorf("status %d, want %d", r.status, c.status)
			}
			_, msg := registryError(t, r)
			if len(r.body) > 1024 || strings.Count(msg, "a") > maxEcho+64 {
				t.Errorf("%d-byte body echoes the request: %.300q", len(r.body), msg)
			}
		})
	}
}
