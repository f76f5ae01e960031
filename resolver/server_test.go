package resolver

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// notaryServer serves fixture directories the way notary-server v0.7.0 does:
// /v2/<gun>/_trust/tuf/<role>.json (current), <role>.<sha256>.json, <N>.<role>.json, and a
// METADATA_NOT_FOUND JSON 404 for anything else. It records every request path.
type notaryServer struct {
	*httptest.Server
	mu       sync.Mutex
	files    map[string]map[string][]byte // gun → name (without .json) → bytes
	requests []string
	// override lets a test replace the response for a name (e.g. "timestamp").
	override map[string]http.HandlerFunc
}

func newNotaryServer(t *testing.T, dirs map[string]string) *notaryServer {
	t.Helper()
	s := &notaryServer{files: map[string]map[string][]byte{}, override: map[string]http.HandlerFunc{}}
	for gun, dir := range dirs {
		m := map[string][]byte{}
		err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() || !strings.HasSuffix(p, ".json") {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			name := strings.TrimSuffix(filepath.ToSlash(rel), ".json")
			m[name] = b
			if !strings.Contains(name, ".") { // current file: also by checksum
				sum := sha256.Sum256(b)
				m[name+"."+hex.EncodeToString(sum[:])] = b
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		s.files[gun] = m
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *notaryServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.URL.Path)
	s.mu.Unlock()
	for gun, m := range s.files {
		prefix := "/v2/" + gun + "/_trust/tuf/"
		name, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok || !strings.HasSuffix(name, ".json") {
			continue
		}
		name = strings.TrimSuffix(name, ".json")
		s.mu.Lock()
		h := s.override[name]
		b, found := m[name]
		s.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		if found {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write(b)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"errors":[{"code":"METADATA_NOT_FOUND","message":"You have requested metadata that does not exist.","detail":{}}]}`))
}

func (s *notaryServer) setOverride(name string, h http.HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.override[name] = h
}

// take returns and clears the recorded request paths.
func (s *notaryServer) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.requests
	s.requests = nil
	return r
}
