package main

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
)

// scope adapts the driver to the testing.TB the peer helpers take (internal/peers is written for
// tests and benchmarks). Fatal unwinds with a panic that main recovers, after which every cleanup
// registered so far runs, so no peer outlives the report. Methods the helpers don't use fall
// through to the embedded nil TB and would panic, which is the loud failure we want.
type scope struct {
	testing.TB // nil; only satisfies the interface's unexported method

	name   string
	log    *slog.Logger
	parent *scope

	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

// fatal is the panic value Fatal unwinds with.
type fatal struct{ msg string }

func newScope(name string, log *slog.Logger) *scope { return &scope{name: name, log: log} }

// sub returns a scope whose cleanups run at its own close, not at the end of the program: each
// scenario stops its peers before the next one starts, so they don't share the two cores.
func (s *scope) sub(name string) *scope {
	return &scope{name: s.name + "/" + name, log: s.log, parent: s}
}

func (s *scope) Helper()      {}
func (s *scope) Name() string { return s.name }
func (s *scope) Failed() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.failed }

func (s *scope) Log(args ...any) { s.log.Info(fmt.Sprint(args...), "scope", s.name) }
func (s *scope) Logf(format string, args ...any) {
	s.log.Info(fmt.Sprintf(format, args...), "scope", s.name)
}

func (s *scope) Error(args ...any) { s.markFailed(); s.log.Error(fmt.Sprint(args...), "scope", s.name) }
func (s *scope) Errorf(format string, args ...any) {
	s.markFailed()
	s.log.Error(fmt.Sprintf(format, args...), "scope", s.name)
}
func (s *scope) Fatal(args ...any) { s.markFailed(); panic(fatal{fmt.Sprint(args...)}) }
func (s *scope) Fatalf(format string, args ...any) {
	s.markFailed()
	panic(fatal{fmt.Sprintf(format, args...)})
}
func (s *scope) FailNow() { s.markFailed(); panic(fatal{"FailNow"}) }
func (s *scope) Fail()    { s.markFailed() }

func (s *scope) markFailed() {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
	if s.parent != nil {
		s.parent.markFailed()
	}
}

func (s *scope) Cleanup(f func()) {
	s.mu.Lock()
	s.cleanups = append(s.cleanups, f)
	s.mu.Unlock()
}

// TempDir makes a directory removed when the scope closes.
func (s *scope) TempDir() string {
	dir, err := os.MkdirTemp("", "trustgate-bench-")
	if err != nil {
		s.Fatalf("TempDir: %v", err)
	}
	s.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// close runs the cleanups in reverse order of registration, as testing does.
func (s *scope) close() {
	s.mu.Lock()
	cs := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(cs) - 1; i >= 0; i-- {
		cs[i]()
	}
}
