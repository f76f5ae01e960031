package notaryserve

import (
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// notFoundBody is notary-server's 404 body (server/errors/errors.go ErrMetadataNotFound).
const notFoundBody = `{"errors":[{"code":"METADATA_NOT_FOUND","message":"You have requested metadata that does not exist.","detail":{}}]}`

// Server answers notary-server's read API for the GUNs published to it:
//
//	GET /v2/                                   200 {}
//	GET /v2/<gun>/_trust/tuf/<role>.json       the current file
//	GET /v2/<gun>/_trust/tuf/<role>.<sha256>.json
//	                                           any file ever published with that hash
//	GET /v2/<gun>/_trust/tuf/<N>.root.json     root version N
//
// Everything else, unknown GUNs included, is notary-server's 404 METADATA_NOT_FOUND. It needs no
// authentication. A Server is an http.Handler and safe for concurrent use.
type Server struct {
	mu    sync.RWMutex
	files map[string]map[string][]byte // gun → name without ".json" → bytes
}

// NewServer returns a Server with nothing published.
func NewServer() *Server { return &Server{files: map[string]map[string][]byte{}} }

// Publish makes files (as Repo.Publish returns them) the current trust data of gun. Files
// published earlier stay reachable by checksum, as on notary-server, so a client that read an
// older snapshot can still fetch what it lists.
func (s *Server) Publish(gun string, files map[string][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.files[gun]
	if m == nil {
		m = map[string][]byte{}
		s.files[gun] = m
	}
	for name, b := range maps.Clone(files) {
		base := strings.TrimSuffix(name, ".json")
		m[base] = b
		role := base
		if v, rest, ok := strings.Cut(base, "."); ok {
			if _, err := strconv.Atoi(v); err == nil {
				role = rest // "<N>.root" is also root.<sha256>
			}
		}
		m[checksumName(role, b)] = b
	}
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/v2/" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		fmt.Fprint(w, "{}")
		return
	}
	gun, name, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/"), "/_trust/tuf/")
	base, isJSON := strings.CutSuffix(name, ".json")
	if !ok || !isJSON || !strings.HasPrefix(r.URL.Path, "/v2/") {
		notFound(w)
		return
	}
	s.mu.RLock()
	b, found := s.files[gun][base]
	s.mu.RUnlock()
	if !found {
		notFound(w)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if r.Method == http.MethodGet {
		_, _ = w.Write(b)
	}
}

func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	fmt.Fprint(w, notFoundBody)
}
