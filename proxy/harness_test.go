package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/trustgate/trustgate/frozen"
	"github.com/trustgate/trustgate/internal/peers"
	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/proxy/blobstore"
	"github.com/trustgate/trustgate/resolver"
)

// fakeTrust is a TrustSource with fixed answers: the proxy's own interface, so faking it tests the
// proxy and nothing else (the resolver has its own tests against real trust data).
type fakeTrust struct {
	mu      sync.Mutex
	targets map[string]resolver.Target // gun:tag
	errs    map[string]error           // gun:tag or gun (for Tags)
	calls   int
}

func newFakeTrust() *fakeTrust {
	return &fakeTrust{targets: map[string]resolver.Target{}, errs: map[string]error{}}
}

func (f *fakeTrust) sign(gun, tag string, p peers.Pushed, role string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.targets[gun+":"+tag] = resolver.Target{GUN: gun, Tag: tag, Digest: digest.Digest(p.Digest), Size: p.Size, Role: role}
}

func (f *fakeTrust) fail(key string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[key] = err
}

// State returns a snapshot of the fake's current answers, as cache.Cache returns the current
// verified state.
func (f *fakeTrust) State(_ context.Context, gun string) (TrustState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if err := f.errs[gun]; err != nil {
		return nil, err
	}
	st := &fakeState{gun: gun, targets: map[string]resolver.Target{}, errs: map[string]error{}}
	for k, t := range f.targets {
		if g, tag, _ := strings.Cut(k, ":"); g == gun {
			st.targets[tag] = t
		}
	}
	for k, err := range f.errs {
		if g, tag, ok := strings.Cut(k, ":"); ok && g == gun && err != nil {
			st.errs[tag] = err
		}
	}
	return st, nil
}

type fakeState struct {
	gun     string
	targets map[string]resolver.Target
	errs    map[string]error
}

func (s *fakeState) Lookup(tag string, roles []string) (resolver.Target, error) {
	if len(roles) == 0 {
		panic("no roles passed")
	}
	if err := s.errs[tag]; err != nil {
		return resolver.Target{}, err
	}
	t, ok := s.targets[tag]
	if !ok {
		return resolver.Target{}, fmt.Errorf("%w: %s:%s", resolver.ErrTagNotSigned, s.gun, tag)
	}
	return t, nil
}

func (s *fakeState) Tags([]string) []string {
	var tags []string
	for tag := range s.targets {
		tags = append(tags, tag)
	}
	slices.Sort(tags)
	return tags
}

// env is a trustgate proxy in front of a real distribution registry.
type env struct {
	t     *testing.T
	reg   *peers.Registry
	trust *fakeTrust
	srv   *Server
	http  *httptest.Server
	logs  *bytes.Buffer
	logMu *sync.Mutex
}

type envConfig struct {
	upstreamURL string // default: the real registry
	rules       []policy.RuleConfig
	def         policy.Mode
	extra       []*Upstream
	noDefault   bool
	metrics     prometheus.Registerer
	spoolBytes  int64
	edges       EdgeStore
	frozen      map[policy.FrozenRule]*frozen.File
	now         func() time.Time
	store       *blobstore.Store
}

func newEnv(t *testing.T, reg *peers.Registry, cfg envConfig) *env {
	t.Helper()
	if cfg.upstreamURL == "" {
		cfg.upstreamURL = reg.URL
	}
	if cfg.def == "" {
		cfg.def = policy.Enforce
	}
	pol, err := policy.New(policy.Config{Default: policy.RuleConfig{Mode: cfg.def}, Rules: cfg.rules})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(cfg.upstreamURL)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, reg: reg, trust: newFakeTrust(), logs: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	ups := append([]*Upstream{{Name: "docker.io", URL: u, GUNPrefix: "docker.io", DockerHub: true, Trust: e.trust, Edges: cfg.edges}}, cfg.extra...)
	def := "docker.io"
	if cfg.noDefault {
		def = ""
	}
	e.srv, err = New(Options{
		Upstreams: ups, Default: def, Policy: pol, TempDir: t.TempDir(), Metrics: cfg.metrics, BlobSpoolBytes: cfg.spoolBytes,
		Frozen: cfg.frozen, Now: cfg.now, BlobStore: cfg.store,
		Logger: slog.New(slog.NewJSONHandler(lockedWriter{e.logMu, e.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.http = httptest.NewServer(e.srv)
	t.Cleanup(func() {
		e.http.Close()
		e.srv.Close()
	})
	return e
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// decisions returns the "decision" log records so far.
func (e *env) decisions() []map[string]any {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(e.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "decision" {
			out = append(out, m)
		}
	}
	return out
}

// decisionsSince returns the decision records after the first before of them. A handler logs
// its record once its response is out (a blob's body may complete by sendfile before the
// handler returns), so this waits for one to arrive, then a moment more for any second one a
// request would wrongly log. The bounds guard against a hang; they assert no speed.
func (e *env) decisionsSince(before int) []map[string]any {
	e.t.Helper()
	give := time.Now().Add(10 * time.Second)
	for len(e.decisions()) <= before && time.Now().Before(give) {
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	return e.decisions()[before:]
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (e *env) do(method, path string, hdr http.Header) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.http.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

func (e *env) get(path string) response { e.t.Helper(); return e.do(http.MethodGet, path, nil) }

// registryError decodes a registry error body and returns its first code and message.
func registryError(t *testing.T, r response) (string, string) {
	t.Helper()
	var errs errcode.Errors
	if err := json.Unmarshal(r.body, &errs); err != nil || len(errs) == 0 {
		t.Fatalf("status %d: body is not a registry error: %q (%v)", r.status, r.body, err)
	}
	switch e := errs[0].(type) {
	case errcode.Error:
		return e.Code.String(), e.Message
	default:
		t.Fatalf("unexpected error type %T", e)
	}
	return "", ""
}

// expectError asserts status, code and that the message contains every want string.
func expectError(t *testing.T, r response, status int, code string, want ...string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type = %q", ct)
	}
	gotCode, msg := registryError(t, r)
	if gotCode != code {
		t.Errorf("code = %s, want %s (message %q)", gotCode, code, msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q does not contain %q", msg, w)
		}
	}
}

// manifestRequests counts upstream manifest requests (by any reference) seen since mark.
func manifestRequests(reg *peers.Registry, mark int) []peers.AccessEntry {
	var out []peers.AccessEntry
	for _, e := range reg.RequestsSince(mark) {
		if strings.Contains(e.Path, "/manifests/") && (e.Method == http.MethodGet || e.Method == http.MethodHead) {
			out = append(out, e)
		}
	}
	return out
}

// unsign removes gun:tag from the trust data, as `notary remove` + publish does.
func (f *fakeTrust) unsign(gun, tag string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.targets, gun+":"+tag)
}

// logText is everything logged so far.
func (e *env) logText() string {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	return e.logs.String()
}
