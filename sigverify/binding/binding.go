// Package binding gives tags of digest-signing systems (cosign, Notation) the property Docker
// Content Trust has built in: a tag moves only forward. The first verified digest of a tag is
// recorded with its signature's time; the tag may move only to a digest whose signature is newer,
// and a move to an older (or equally old) one is refused as a rollback until an operator accepts
// it (Accept). State lives in a Store; FileStore keeps it under trust_dir.
//
// Signature time, in order of preference: a transparency log's integrated time or an RFC 3161
// timestamp that verified against the trusted root ("tlog", "tsa"); the signing time a Notation
// envelope carries in its signed attributes ("signer": signed, but chosen by whoever holds the
// key); otherwise the time this trustgate first verified a signature of the digest
// ("first-seen"). Unsigned times (manifest annotations, registry upload dates) are never used:
// whoever controls the registry chooses them. The limit of first-seen: an old signed digest this
// trustgate never saw counts as new the first time it appears, so the binding stops rollbacks to
// digests served before, not to digests it never saw.
package binding

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/trustgate/trustgate/internal/atomicfile"
)

// ErrRollback: a tag moved to a digest whose signature is not newer than the one it was bound to.
var ErrRollback = errors.New("tag moved to an older signed digest")

// Time sources besides those a sigverify.Result names.
const (
	FirstSeen = "first-seen"
	Accepted  = "accepted"
)

// Binding is what a key maps to: a tag's bound digest, or a digest's first-seen time.
type Binding struct {
	Key        string        `json:"key"`
	Digest     digest.Digest `json:"digest"`
	SignedAt   time.Time     `json:"signed_at"`
	TimeSource string        `json:"time_source"`
	Recorded   time.Time     `json:"recorded"`
	// Accepted marks an operator's acceptance: the tag may be served at Digest whatever its
	// time, and the next verification records Digest's time.
	Accepted bool `json:"accepted,omitempty"`
}

// Store persists bindings by key. Implementations must be safe for concurrent use; a Put is
// durable and atomic (a reader sees the old or the new binding, never a mix).
type Store interface {
	Get(ctx context.Context, key string) (Binding, bool, error)
	Put(ctx context.Context, b Binding) error
}

// TagKey and SeenKey are the keys of a tag's binding and a digest's first-seen time.
func TagKey(repo, tag string) string              { return "tag\x00" + repo + "\x00" + tag }
func SeenKey(repo string, d digest.Digest) string { return "seen\x00" + repo + "\x00" + d.String() }

// FileStore keeps one JSON file per key (named by the key's SHA-256) in a directory.
type FileStore struct{ dir string }

// maxFile bounds a binding file read back.
const maxFile = 64 << 10

// NewFileStore creates dir if needed.
func NewFileStore(dir string) (*FileStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("bindings: %w", err)
	}
	return &FileStore{dir: dir}, nil
}

func (s *FileStore) path(key string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(s.dir, hex.EncodeToString(sum[:])+".json")
}

// Get implements Store.
func (s *FileStore) Get(_ context.Context, key string) (Binding, bool, error) {
	b, err := os.ReadFile(s.path(key))
	if errors.Is(err, os.ErrNotExist) {
		return Binding{}, false, nil
	}
	if err != nil {
		return Binding{}, false, fmt.Errorf("bindings: %w", err)
	}
	bd, err := Parse(b)
	if err != nil {
		return Binding{}, false, fmt.Errorf("bindings: %s: %w", s.path(key), err)
	}
	if bd.Key != key {
		return Binding{}, false, fmt.Errorf("bindings: %s holds key %q, not %q", s.path(key), bd.Key, key)
	}
	return bd, true, nil
}

// Put implements Store: write to a temporary file, fsync, rename, fsync the directory.
func (s *FileStore) Put(_ context.Context, b Binding) error {
	buf, err := json.Marshal(b)
	if err != nil {
		return err
	}
	if err := atomicfile.Replace(s.dir, filepath.Base(s.path(b.Key)), ".tmp-binding-*", buf, 0); err != nil {
		return fmt.Errorf("bindings: %w", err)
	}
	_ = atomicfile.SyncDir(s.dir) // best effort: the binding itself is already in place
	return nil
}

// Parse reads one stored binding.
func Parse(b []byte) (Binding, error) {
	if len(b) > maxFile {
		return Binding{}, fmt.Errorf("binding of %d bytes", len(b))
	}
	var bd Binding
	if err := json.Unmarshal(b, &bd); err != nil {
		return Binding{}, err
	}
	if bd.Key == "" {
		return Binding{}, errors.New("binding without a key")
	}
	if bd.Digest != "" && bd.Digest.Validate() != nil {
		return Binding{}, fmt.Errorf("binding digest %q", bd.Digest)
	}
	return bd, nil
}

// MemStore is a Store in memory (trust_dir ":memory:", tests).
type MemStore struct {
	mu sync.Mutex
	m  map[string]Binding
}

// Get implements Store.
func (s *MemStore) Get(_ context.Context, key string) (Binding, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[key]
	return b, ok, nil
}

// Put implements Store.
func (s *MemStore) Put(_ context.Context, b Binding) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]Binding{}
	}
	s.m[b.Key] = b
	return nil
}

// Binder applies the binding rule over a Store.
type Binder struct {
	store Store
	now   func() time.Time
	mu    sync.Mutex // serialises read-modify-write of bindings in this process
}

// NewBinder returns a Binder; now nil means time.Now.
func NewBinder(s Store, now func() time.Time) *Binder {
	if now == nil {
		now = time.Now
	}
	return &Binder{store: s, now: now}
}

// TimeOf returns the time that counts for a verified signature of d in repo: signedAt if a signed
// time came with it, else d's first-seen time (recorded now if this is the first).
func (b *Binder) TimeOf(ctx context.Context, repo string, d digest.Digest, signedAt time.Time, source string) (time.Time, string, error) {
	if !signedAt.IsZero() && source != "" {
		return signedAt, source, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.seen(ctx, repo, d)
}

func (b *Binder) seen(ctx context.Context, repo string, d digest.Digest) (time.Time, string, error) {
	key := SeenKey(repo, d)
	cur, ok, err := b.store.Get(ctx, key)
	if err != nil {
		return time.Time{}, "", err
	}
	if ok {
		return cur.SignedAt, FirstSeen, nil
	}
	now := b.now().UTC()
	if err := b.store.Put(ctx, Binding{Key: key, Digest: d, SignedAt: now, TimeSource: FirstSeen, Recorded: now}); err != nil {
		return time.Time{}, "", err
	}
	return now, FirstSeen, nil
}

// Check binds repo:tag to d, whose signature's time is t (from TimeOf), or refuses with
// ErrRollback. It returns the binding in force.
func (b *Binder) Check(ctx context.Context, repo, tag string, d digest.Digest, t time.Time, source string) (Binding, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	key := TagKey(repo, tag)
	cur, ok, err := b.store.Get(ctx, key)
	if err != nil {
		return Binding{}, err
	}
	next := Binding{Key: key, Digest: d, SignedAt: t, TimeSource: source, Recorded: b.now().UTC()}
	switch {
	case !ok:
	case cur.Digest == d && !cur.Accepted:
		return cur, nil
	case cur.Digest == d: // accepted by an operator: from now on, d's own time counts
	case t.After(cur.SignedAt) && !(cur.Accepted && cur.SignedAt.IsZero()):
	default:
		return cur, fmt.Errorf("%w: %s:%s is bound to %s (signed %s, %s); upstream now names %s (signed %s, %s); accept it with `trustgate trust accept %s:%s %s`",
			ErrRollback, repo, tag, cur.Digest, stamp(cur.SignedAt), cur.TimeSource, d, stamp(t), source, repo, tag, d)
	}
	if err := b.store.Put(ctx, next); err != nil {
		return Binding{}, err
	}
	return next, nil
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "at an unknown time"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// Accept records an operator's decision that repo:tag may be served at d (a rollback the binding
// would refuse). d's first-seen time, if known, becomes the time later moves must beat until d is
// verified again.
func (b *Binder) Accept(ctx context.Context, repo, tag string, d digest.Digest) (Binding, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	next := Binding{Key: TagKey(repo, tag), Digest: d, TimeSource: Accepted, Recorded: b.now().UTC(), Accepted: true}
	if seen, ok, err := b.store.Get(ctx, SeenKey(repo, d)); err != nil {
		return Binding{}, err
	} else if ok {
		next.SignedAt = seen.SignedAt
	}
	return next, b.store.Put(ctx, next)
}

// Get returns repo:tag's binding.
func (b *Binder) Get(ctx context.Context, repo, tag string) (Binding, bool, error) {
	return b.store.Get(ctx, TagKey(repo, tag))
}
