package tuftest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// notFoundBody is notary-server's 404 body (server/errors/errors.go).
const notFoundBody = `{"errors":[{"code":"METADATA_NOT_FOUND","message":"You have requested metadata that does not exist.","detail":{}}]}`

// Response overrides what the server answers for one file.
type Response struct {
	// Status is the HTTP status (default 200).
	Status int
	// Body is the response body. With Endless, it is repeated forever.
	Body    []byte
	Endless bool
	// ContentLength, if non-zero, is sent as the Content-Length header regardless of the body
	// (the connection is closed when the two disagree).
	ContentLength int64
	// Delay is waited (or until the client goes away) before answering.
	Delay time.Duration
	// Handler, if set, answers instead of everything above.
	Handler http.HandlerFunc
}

// Server is an httptest.Server that answers like notary-server's read API for any number of
// GUNs: GET /v2/<GUN>/_trust/tuf/<role>.json, <role>.<sha256 hex>.json and <N>.<role>.json.
// Files are swappable at runtime (re-signing, rollback), and every file remembers all
// versions it ever had so checksum URLs keep working for old bytes, as on the real server.
// Unlike the real server, a checksum URL whose hash matches no stored bytes is answered with
// the role's current file (see Strict), so tests can tamper with a file in place.
type Server struct {
	*httptest.Server

	mu        sync.Mutex
	files     map[string]map[string][]byte // gun → name → bytes
	byHash    map[string]map[string][]byte // gun → "<role>.<sha256 hex>" → bytes
	overrides map[string]Response          // "<gun>/<name>" → response
	requests  []string                     // "<gun>/<name>" in arrival order
	strict    bool
}

// NewServer starts a server on loopback that is closed when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		files:     map[string]map[string][]byte{},
		byHash:    map[string]map[string][]byte{},
		overrides: map[string]Response{},
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// Serve starts a server holding files for gun (as returned by Repo.Publish).
func Serve(t testing.TB, gun string, files map[string][]byte) *Server {
	t.Helper()
	s := NewServer(t)
	s.Set(gun, files)
	return s
}

// Set replaces every file of gun. Earlier bytes stay reachable by checksum URL.
func (s *Server) Set(gun string, files map[string][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[gun] = map[string][]byte{}
	for name, b := range files {
		s.setLocked(gun, name, b)
	}
}

// Files returns a copy of gun's current files, e.g. to replay them later.
func (s *Server) Files(gun string) map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]byte, len(s.files[gun]))
	for k, v := range s.files[gun] {
		out[k] = v
	}
	return out
}

// SHA256Hex is the hex sha256 of b, as used in checksum URLs ("snapshot.<hex>.json").
func SHA256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// SetFile replaces (nil: removes) one file of gun, e.g. "timestamp.json".
func (s *Server) SetFile(gun, name string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.files[gun] == nil {
		s.files[gun] = map[string][]byte{}
	}
	if b == nil {
		delete(s.files[gun], name)
		return
	}
	s.setLocked(gun, name, b)
}

func (s *Server) setLocked(gun, name string, b []byte) {
	s.files[gun][name] = b
	role := strings.TrimSuffix(name, ".json")
	if v, rest, ok := strings.Cut(role, "."); ok {
		if _, err := strconv.Atoi(v); err == nil {
			role = rest // "<N>.root.json" is also reachable as root.<hash>, as on the server
		}
	}
	if s.byHash[gun] == nil {
		s.byHash[gun] = map[string][]byte{}
	}
	sum := sha256.Sum256(b)
	s.byHash[gun][role+"."+hex.EncodeToString(sum[:])] = b
}

// Override makes the server answer resp for name (e.g. "timestamp.json", or a checksum name
// "snapshot.<hex>.json") of gun, until ClearOverride.
func (s *Server) Override(gun, name string, resp Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.overrides[gun+"/"+name] = resp
}

// ClearOverride removes an override.
func (s *Server) ClearOverride(gun, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.overrides, gun+"/"+name)
}

// Requests returns "<gun>/<name>" for every metadata request so far, in order.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// Count returns how many requests named exactly name ("<gun>/<name>").
func (s *Server) Count(name string) int {
	n := 0
	for _, r := range s.Requests() {
		if r == name {
			n++
		}
	}
	return n
}

// ResetRequests forgets the request log.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// checksumName matches "<role>.<hex>": the route accepts 64, 96 or 128 hex digits, but the
// server indexes sha256 only.
var checksumName = regexp.MustCompile(`^(.+)\.([0-9a-f]{64}|[0-9a-f]{96}|[0-9a-f]{128})$`)

func (s *Server) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method == http.MethodGet && req.URL.Path == "/v2/" {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		fmt.Fprint(w, "{}")
		return
	}
	gun, name, ok := strings.Cut(strings.TrimPrefix(req.URL.Path, "/v2/"), "/_trust/tuf/")
	if req.Method != http.MethodGet || !strings.HasPrefix(req.URL.Path, "/v2/") || !ok || !strings.HasSuffix(name, ".json") {
		notFound(w)
		return
	}
	s.mu.Lock()
	s.requests = append(s.requests, gun+"/"+name)
	resp, overridden := s.overrides[gun+"/"+name]
	body, found := s.lookupLocked(gun, name)
	s.mu.Unlock()

	if overridden {
		respond(w, req, resp)
		return
	}
	if !found {
		notFound(w)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

func (s *Server) lookupLocked(gun, name string) ([]byte, bool) {
	base := strings.TrimSuffix(name, ".json")
	if m := checksumName.FindStringSubmatch(base); m != nil {
		if b, ok := s.byHash[gun][base]; ok || s.strict {
			return b, ok
		}
		// Like a man in the middle (or a corrupted store), answer a checksum URL with the
		// current file of that role even if its hash differs: the client must notice.
		b, ok := s.files[gun][m[1]+".json"]
		return b, ok && len(m[2]) == 64
	}
	b, ok := s.files[gun][name]
	return b, ok
}

// Strict makes checksum URLs answer only bytes whose sha256 matches, as the real
// notary-server does, instead of the current (possibly tampered) file of the role.
func (s *Server) Strict() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.strict = true
}

func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusNotFound)
	fmt.Fprint(w, notFoundBody)
}

func respond(w http.ResponseWriter, req *http.Request, r Response) {
	if r.Delay > 0 {
		select {
		case <-time.After(r.Delay):
		case <-req.Context().Done():
			return
		}
	}
	if r.Handler != nil {
		r.Handler(w, req)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if r.ContentLength != 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(r.ContentLength, 10))
	} else if !r.Endless {
		w.Header().Set("Content-Length", strconv.Itoa(len(r.Body)))
	}
	status := r.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	if !r.Endless {
		_, _ = w.Write(r.Body)
		return
	}
	chunk := r.Body
	if len(chunk) == 0 {
		chunk = []byte(strings.Repeat(" ", 32<<10))
	}
	for req.Context().Err() == nil {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
}
