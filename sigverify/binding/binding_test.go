package binding

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

var (
	d1 = digest.FromString("one")
	d2 = digest.FromString("two")
	d3 = digest.FromString("three")
	t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
)

func TestCheck(t *testing.T) {
	ctx := context.Background()
	type step struct {
		d      digest.Digest
		at     time.Time
		accept bool // an operator's trust accept of d instead of a verification
		err    bool // ErrRollback expected
	}
	for _, c := range []struct {
		name  string
		steps []step
	}{
		{"first verified digest is bound", []step{{d: d1, at: t0}}},
		{"same digest again", []step{{d: d1, at: t0}, {d: d1, at: t0}}},
		{"forward to a newer signature", []step{{d: d1, at: t0}, {d: d2, at: t0.Add(time.Hour)}}},
		{"back to an older signature", []step{{d: d1, at: t0}, {d: d2, at: t0.Add(time.Hour)}, {d: d1, at: t0, err: true}}},
		{"to an older signature never seen", []step{{d: d2, at: t0.Add(time.Hour)}, {d: d1, at: t0, err: true}}},
		{"to an equally old one", []step{{d: d1, at: t0}, {d: d2, at: t0, err: true}}},
		{"refused, accepted, served", []step{{d: d1, at: t0}, {d: d2, at: t0.Add(time.Hour)}, {d: d1, at: t0, err: true},
			{d: d1, accept: true}, {d: d1, at: t0}}},
		{"after acceptance the next move must be newer than the accepted digest", []step{{d: d2, at: t0.Add(time.Hour)},
			{d: d1, accept: true}, {d: d1, at: t0}, {d: d3, at: t0.Add(-time.Hour), err: true}, {d: d3, at: t0.Add(time.Minute)}}},
		{"accepted but never verified: another digest is refused", []step{{d: d1, accept: true}, {d: d2, at: t0.Add(time.Hour), err: true}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := NewBinder(&MemStore{}, func() time.Time { return t0 })
			for i, s := range c.steps {
				if s.accept {
					if _, err := b.Accept(ctx, "r", "tag", s.d); err != nil {
						t.Fatal(err)
					}
					continue
				}
				bd, err := b.Check(ctx, "r", "tag", s.d, s.at, "signer")
				if s.err {
					if !errors.Is(err, ErrRollback) || !strings.Contains(err.Error(), "trust accept r:tag "+s.d.String()) {
						t.Fatalf("step %d: err = %v, want a rollback naming the accept command", i, err)
					}
					continue
				}
				if err != nil || bd.Digest != s.d {
					t.Fatalf("step %d: Check = %+v, %v", i, bd, err)
				}
			}
		})
	}
}

func TestTimeOf(t *testing.T) {
	ctx := context.Background()
	now := t0
	b := NewBinder(&MemStore{}, func() time.Time { return now })
	if at, src, _ := b.TimeOf(ctx, "r", d1, t0.Add(-time.Hour), "tlog"); !at.Equal(t0.Add(-time.Hour)) || src != "tlog" {
		t.Errorf("signed time not used: %v %s", at, src)
	}
	at, src, err := b.TimeOf(ctx, "r", d1, time.Time{}, "")
	if err != nil || !at.Equal(t0) || src != FirstSeen {
		t.Fatalf("first seen = %v %s %v", at, src, err)
	}
	now = t0.Add(time.Hour)
	if at, _, _ := b.TimeOf(ctx, "r", d1, time.Time{}, ""); !at.Equal(t0) {
		t.Errorf("first-seen time moved to %v", at)
	}
	if at, _, _ := b.TimeOf(ctx, "other", d1, time.Time{}, ""); !at.Equal(now) {
		t.Errorf("first-seen is per repository; got %v", at)
	}
}

// TestFileStore: bindings survive a new process (a new store on the same directory), and a file
// that is not a binding is an error, not a missing binding (which would be a silent new TOFU).
func TestFileStore(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "bindings")
	s, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := NewBinder(s, func() time.Time { return t0 })
	if _, err := b.Check(ctx, "docker.io/team/app", "v1", d2, t0.Add(time.Hour), "tsa"); err != nil {
		t.Fatal(err)
	}
	s2, _ := NewFileStore(dir)
	b2 := NewBinder(s2, nil)
	if _, err := b2.Check(ctx, "docker.io/team/app", "v1", d1, t0, "tsa"); !errors.Is(err, ErrRollback) {
		t.Fatalf("after reopening, rollback not refused: %v", err)
	}
	if err := os.WriteFile(s.path(TagKey("docker.io/team/app", "v1")), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s2.Get(ctx, TagKey("docker.io/team/app", "v1")); err == nil {
		t.Fatal("a corrupt binding read as none")
	}
	other, _ := json.Marshal(Binding{Key: "someone else", Digest: d1})
	_ = os.WriteFile(s.path(TagKey("docker.io/team/app", "v1")), other, 0o600)
	if _, _, err := s2.Get(ctx, TagKey("docker.io/team/app", "v1")); err == nil {
		t.Fatal("a binding under another key's file accepted")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

func FuzzParse(f *testing.F) {
	b, _ := json.Marshal(Binding{Key: TagKey("docker.io/a/b", "v1"), Digest: d1, SignedAt: t0, TimeSource: "tlog", Recorded: t0})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		bd, err := Parse(b)
		if err != nil {
			return
		}
		if bd.Key == "" || (bd.Digest != "" && bd.Digest.Validate() != nil) {
			t.Fatalf("accepted %+v", bd)
		}
	})
}
