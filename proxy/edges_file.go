package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/trustgate/trustgate/internal/debris"
)

// DefaultEdgeBytes bounds a FileEdges directory when no bound is given: at a few hundred bytes
// per image manifest, room for the edges of about a million manifests.
const DefaultEdgeBytes = 256 << 20

// FileEdges is an EdgeStore in a directory, normally <trust_dir>/<upstream>/graph:
//
//	<dir>/<algorithm>/<first two hex digits>/<hex>.json    one EncodeEdges record
//
// Records are written to a temporary file and renamed into place, so a reader sees a whole
// record or none. They are not fsynced: a record lost or torn by a crash fails to decode, is
// removed, and the manifest is fetched again. The directory is bounded by bytes; once full, new
// edges are kept in memory only.
type FileEdges struct {
	dir string
	max int64

	mu   sync.Mutex
	used int64
}

// OpenFileEdges opens (creating) dir. maxBytes <= 0 means DefaultEdgeBytes. Temporary files left
// by a crash are removed (see package debris: only those untouched for debris.Age, as another
// process may be writing a young one).
func OpenFileEdges(dir string, maxBytes int64) (*FileEdges, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultEdgeBytes
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("edge store: %w", err)
	}
	s := &FileEdges{dir: dir, max: maxBytes}
	now := time.Now()
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if debris.Temp(e.Name()) {
			_, err := debris.Remove(path, debris.Temp, now)
			return err
		}
		if info, err := e.Info(); err == nil {
			s.used += info.Size()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("edge store: %w", err)
	}
	return s, nil
}

func (s *FileEdges) path(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", err
	}
	hex := d.Encoded()
	return filepath.Join(s.dir, string(d.Algorithm()), hex[:2], hex+".json"), nil
}

// Edges implements EdgeStore. A record that does not decode is removed and reported missing.
func (s *FileEdges) Edges(_ context.Context, d digest.Digest) (Edges, bool, error) {
	p, err := s.path(d)
	if err != nil {
		return Edges{}, false, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Edges{}, false, nil
	}
	if err != nil {
		return Edges{}, false, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxEdgeRecordBytes+1))
	f.Close()
	if err != nil {
		return Edges{}, false, err
	}
	e, err := DecodeEdges(d, b)
	if err != nil {
		s.remove(p, int64(len(b)))
		return Edges{}, false, fmt.Errorf("%s: %w (removed)", d, err)
	}
	return e, true, nil
}

func (s *FileEdges) remove(p string, n int64) {
	if os.Remove(p) == nil {
		s.mu.Lock()
		s.used -= n
		s.mu.Unlock()
	}
}

// errEdgeStoreFull: the directory reached its byte bound.
var errEdgeStoreFull = errors.New("edge store full")

// Record implements EdgeStore. A digest already recorded is left alone: its edges cannot differ.
func (s *FileEdges) Record(_ context.Context, d digest.Digest, e Edges) error {
	p, err := s.path(d)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	b, err := EncodeEdges(d, e)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.used+int64(len(b)) > s.max {
		s.mu.Unlock()
		return fmt.Errorf("%w (%d bytes)", errEdgeStoreFull, s.max)
	}
	s.used += int64(len(b))
	s.mu.Unlock()
	if err := s.write(p, b); err != nil {
		s.mu.Lock()
		s.used -= int64(len(b))
		s.mu.Unlock()
		return err
	}
	return nil
}

func (s *FileEdges) write(p string, b []byte) error {
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
