package resolver_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/resolver"
)

// encodeRepo publishes a repository with tags in targets and in a chain of delegations with
// restricted paths, and returns its verified State.
func encodeRepo(t testing.TB) *resolver.State {
	r := tuftest.NewRepo(t, advGUN)
	r.AddTarget("targets", "v1", []byte("manifest v1"))
	r.AddTarget("targets", "shared", []byte("targets' shared"))
	r.AddDelegation("targets/releases", []*tuftest.Key{tuftest.NewKey(t, tuftest.ECDSA)}, nil, 1)
	r.AddTarget("targets/releases", "v2", []byte("manifest v2"))
	r.AddTarget("targets/releases", "shared", []byte("releases' shared"))
	r.AddDelegation("targets/team", []*tuftest.Key{tuftest.NewKey(t, tuftest.ECDSA)}, []string{"team-"}, 1)
	r.AddTarget("targets/team", "team-a", []byte("team a"))
	r.AddTarget("targets/team", "outside", []byte("not within the paths"))
	r.AddDelegation("targets/team/sub", []*tuftest.Key{tuftest.NewKey(t, tuftest.ECDSA)}, []string{"team-s", "x"}, 1)
	r.AddTarget("targets/team/sub", "team-sub", []byte("team sub"))
	r.AddTarget("targets/team/sub", "x1", []byte("outside the parent's paths"))
	srv := tuftest.Serve(t, advGUN, r.Publish())
	c, err := resolver.NewClient(resolver.Config{ServerURL: srv.URL, TrustDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Update(context.Background(), advGUN)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestStateBinaryRoundTrip: a State decoded from its binary form answers every question as the
// State it was encoded from.
func TestStateBinaryRoundTrip(t *testing.T) {
	st := encodeRepo(t)
	b, err := st.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got resolver.State
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		T   resolver.Target
		Err string
	}
	ask := func(s *resolver.State, tag string, roles []string) answer {
		tgt, err := s.Lookup(tag, roles)
		a := answer{T: tgt}
		if err != nil {
			a.Err = err.Error()
		}
		return a
	}
	roleSets := [][]string{nil, {"targets"}, {"targets/releases"}, {"targets/team"}, {"targets/team/sub", "targets"}, {"targets/team", "targets/releases", "targets"}}
	for _, roles := range roleSets {
		for _, tag := range []string{"v1", "v2", "shared", "team-a", "outside", "team-sub", "x1", "missing"} {
			if w, g := ask(st, tag, roles), ask(&got, tag, roles); !reflect.DeepEqual(w, g) {
				t.Errorf("Lookup(%s, %v) = %+v, want %+v", tag, roles, g, w)
			}
		}
		if w, g := st.Tags(roles), got.Tags(roles); !reflect.DeepEqual(w, g) {
			t.Errorf("Tags(%v) = %v, want %v", roles, g, w)
		}
	}
	for _, c := range []struct {
		name      string
		want, got any
	}{
		{"GUN", st.GUN(), got.GUN()},
		{"RootKeyIDs", st.RootKeyIDs(), got.RootKeyIDs()},
		{"Versions", st.Versions(), got.Versions()},
		{"Size", st.Size(), got.Size()},
		{"Expires", st.Expires().UnixNano(), got.Expires().UnixNano()},
		{"Checked", st.Checked(), got.Checked()},
	} {
		if !reflect.DeepEqual(c.want, c.got) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if len(st.Tags(nil)) == 0 {
		t.Fatal("the fixture signs no tags")
	}
}

// TestStateBinaryMalformed: every truncation and every single-byte change of a State's
// encoding either decodes or is refused with an error; none panics.
func TestStateBinaryMalformed(t *testing.T) {
	b, err := encodeRepo(t).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(b) {
		var s resolver.State
		if err := s.UnmarshalBinary(b[:i]); err == nil {
			t.Errorf("truncated to %d of %d bytes: decoded", i, len(b))
		}
		c := append([]byte(nil), b...)
		c[i] ^= 0xff
		_ = s.UnmarshalBinary(c)
	}
	var s resolver.State
	if err := s.UnmarshalBinary(append(b, 0)); err == nil {
		t.Error("a trailing byte: decoded")
	}
}

// FuzzStateUnmarshal: the decoder is bounded for any input (lengths are checked against the
// bytes left) and what it accepts answers without panicking.
func FuzzStateUnmarshal(f *testing.F) {
	if os.Getenv("WRITE_STATE_CORPUS") != "" {
		b, err := encodeRepo(f).MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		dir := filepath.Join("testdata", "fuzz", "FuzzStateUnmarshal")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			f.Fatal(err)
		}
		for name, v := range map[string][]byte{"state": b, "truncated": b[:len(b)/2], "version-only": {1}} {
			if err := os.WriteFile(filepath.Join(dir, name), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", v), 0o644); err != nil {
				f.Fatal(err)
			}
		}
	}
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var s resolver.State
		if s.UnmarshalBinary(b) != nil {
			return
		}
		for _, roles := range [][]string{nil, {"targets/x", "targets"}} {
			_ = s.Tags(roles)
			_, _ = s.Lookup("v1", roles)
		}
		again, err := s.MarshalBinary()
		if err != nil {
			return
		}
		var s2 resolver.State
		if err := s2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoding of a decoded state does not decode: %v", err)
		}
	})
}
