package proxy

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/trustgate/trustgate/internal/peers"
)

// TestRestartDerivesFromStoredEdges: a second process on the same edge store serves a signed
// image's layer by digest, before anything else, without fetching a manifest upstream; with the
// edges lost, it fetches the signed manifest by digest and still serves it.
func TestRestartDerivesFromStoredEdges(t *testing.T) {
	reg := peers.StartRegistry(t)
	img := peers.PushImage(t, reg, "library/alpine", "1")
	dir := t.TempDir()
	open := func() EdgeStore {
		s, err := OpenFileEdges(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := newEnv(t, reg, envConfig{edges: open()})
	first.trust.sign("docker.io/library/alpine", "1", img, "targets")
	if r := first.get("/v2/alpine/manifests/1"); r.status != http.StatusOK {
		t.Fatalf("first process, tag: %d", r.status)
	}

	second := newEnv(t, reg, envConfig{edges: open()})
	second.trust.sign("docker.io/library/alpine", "1", img, "targets")
	mark := reg.Log.Len()
	if r := second.get("/v2/alpine/blobs/" + img.Layers[1].Digest); r.status != http.StatusOK || sha(r.body) != img.Layers[1].Digest {
		t.Fatalf("second process, layer by digest: %d %s", r.status, r.body)
	}
	if reqs := manifestRequests(reg, mark); len(reqs) != 0 {
		t.Errorf("stored edges not used, manifests fetched: %+v", reqs)
	}

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	third := newEnv(t, reg, envConfig{edges: open()})
	third.trust.sign("docker.io/library/alpine", "1", img, "targets")
	mark = reg.Log.Len()
	if r := third.get("/v2/alpine/blobs/" + img.Layers[0].Digest); r.status != http.StatusOK {
		t.Fatalf("third process, no edges: %d %s", r.status, r.body)
	}
	if reqs := manifestRequests(reg, mark); len(reqs) != 1 || !strings.HasSuffix(reqs[0].Path, img.Digest) {
		t.Errorf("want one manifest fetch by the signed digest, got %+v", reqs)
	}
}

// TestFileEdges: records round-trip; a torn or foreign record is removed and reported missing;
// the byte bound is kept; temporary files of a crash are cleaned up.
func TestFileEdges(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := OpenFileEdges(dir, 1024)
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("index")
	e := Edges{Manifests: []digest.Digest{digest.FromString("a"), digest.FromString("b")}, Blobs: []digest.Digest{digest.FromString("c")}}
	if _, ok, err := s.Edges(ctx, d); ok || err != nil {
		t.Fatalf("empty store: %v %v", ok, err)
	}
	if err := s.Record(ctx, d, e); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Edges(ctx, d)
	if !ok || err != nil || !slices.Equal(got.Manifests, e.Manifests) || !slices.Equal(got.Blobs, e.Blobs) {
		t.Fatalf("round trip: %+v %v %v", got, ok, err)
	}
	path := filepath.Join(dir, "sha256", d.Encoded()[:2], d.Encoded()+".json")

	// A record for another digest under d's name (or a torn one) is never used.
	for name, content := range map[string][]byte{"torn": []byte(`{"v":1,"dig`), "foreign": mustEncode(t, digest.FromString("x"), e), "empty": nil} {
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := s.Edges(ctx, d); ok || err == nil {
			t.Errorf("%s record: ok=%v err=%v", name, ok, err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%s record not removed: %v", name, err)
		}
	}

	// Bounded: records beyond 1024 bytes are refused.
	var full error
	for i := 0; full == nil && i < 100; i++ {
		full = s.Record(ctx, digest.FromString(strings.Repeat("x", i)), e)
	}
	if full == nil {
		t.Fatal("no bound")
	}
	if n := dirBytes(t, dir); n > 1024 {
		t.Errorf("store holds %d bytes, bound 1024", n)
	}

	// Crash leftovers go on reopen (a young temporary file may be another process's write in
	// progress, and stays), and the bound counts what is there.
	stale, young := filepath.Join(dir, "sha256", ".tmp-123"), filepath.Join(dir, "sha256", ".tmp-456")
	for _, p := range []string{stale, young} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenFileEdges(dir, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Error("stale temporary file left")
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("young temporary file removed: %v", err)
	}
	if err := s2.Record(ctx, digest.FromString("new"), e); err == nil {
		t.Error("reopened store forgot its bound")
	}
}

func mustEncode(t *testing.T, d digest.Digest, e Edges) []byte {
	t.Helper()
	b, err := EncodeEdges(d, e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dirBytes(t *testing.T, dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// FuzzDecodeEdges: no input crashes the record parser or yields edges with an invalid digest, and
// what it accepts re-encodes to a record it accepts again with the same edges.
func FuzzDecodeEdges(f *testing.F) {
	d := digest.FromString("m")
	good, _ := EncodeEdges(d, Edges{Manifests: []digest.Digest{digest.FromString("a")}, Blobs: []digest.Digest{digest.FromString("b")}})
	f.Add(d.String(), good)
	f.Add(d.String(), []byte(`{"v":1,"digest":"`+d.String()+`"}`))
	f.Add(d.String(), []byte(`{"v":2,"digest":"`+d.String()+`"}`))
	f.Add(d.String(), []byte(`{"v":1,"digest":"`+d.String()+`","blobs":["sha256:zz"]}`))
	f.Add(d.String(), []byte(`{"v":1,"digest":"`+d.String()+`","extra":1}`))
	f.Add("sha256:00", []byte(`{"v":1,"digest":"sha256:00"} {}`))
	f.Fuzz(func(t *testing.T, want string, b []byte) {
		e, err := DecodeEdges(digest.Digest(want), b)
		if err != nil {
			return
		}
		for _, c := range append(slices.Clone(e.Manifests), e.Blobs...) {
			if c.Validate() != nil {
				t.Fatalf("accepted invalid child %q", c)
			}
		}
		again, err := EncodeEdges(digest.Digest(want), e)
		if err != nil {
			t.Fatalf("accepted record does not re-encode: %v", err)
		}
		e2, err := DecodeEdges(digest.Digest(want), again)
		if err != nil || !slices.Equal(e2.Manifests, e.Manifests) || !slices.Equal(e2.Blobs, e.Blobs) {
			t.Fatalf("round trip changed edges: %v", err)
		}
		for i := range e.Blobs {
			n, ok := e.size(i)
			n2, ok2 := e2.size(i)
			if n != n2 || ok != ok2 || (ok && n < 0) {
				t.Fatalf("round trip changed size %d: %d %v, then %d %v", i, n, ok, n2, ok2)
			}
		}
	})
}

// TestEdgeRecordVersion1: records stored before sizes were recorded still load (their blobs'
// sizes unknown) and still derive reachability after an upgrade; new records carry the sizes.
func TestEdgeRecordVersion1(t *testing.T) {
	reg := peers.StartRegistry(t)
	img := peers.PushImage(t, reg, "library/alpine", "1")
	dir := t.TempDir()
	store, err := OpenFileEdges(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	// What the previous version wrote for the image manifest.
	d := digest.Digest(img.Digest)
	v1 := `{"v":1,"digest":"` + img.Digest + `","blobs":["` + img.Layers[0].Digest + `","` + img.Layers[1].Digest + `"]}`
	p := filepath.Join(dir, "sha256", d.Encoded()[:2], d.Encoded()+".json")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(v1), 0o600); err != nil {
		t.Fatal(err)
	}
	e, ok, err := store.Edges(context.Background(), d)
	if !ok || err != nil || len(e.Blobs) != 2 || e.Sizes != nil {
		t.Fatalf("version 1 record: %+v %v %v", e, ok, err)
	}

	env := newEnv(t, reg, envConfig{edges: store})
	env.trust.sign("docker.io/library/alpine", "1", img, "targets")
	mark := reg.Log.Len()
	if r := env.get("/v2/alpine/blobs/" + img.Layers[1].Digest); r.status != http.StatusOK || sha(r.body) != img.Layers[1].Digest {
		t.Fatalf("layer by digest over a version 1 record: %d", r.status)
	}
	if reqs := manifestRequests(reg, mark); len(reqs) != 0 {
		t.Errorf("version 1 record not used, manifests fetched: %+v", reqs)
	}

	// A manifest learned now records its blobs' sizes.
	other := peers.PushImage(t, reg, "library/alpine", "2")
	env.trust.sign("docker.io/library/alpine", "2", other, "targets")
	if r := env.get("/v2/alpine/manifests/2"); r.status != http.StatusOK {
		t.Fatalf("tag 2: %d", r.status)
	}
	e, ok, err = store.Edges(context.Background(), digest.Digest(other.Digest))
	if !ok || err != nil || len(e.Sizes) != len(e.Blobs) {
		t.Fatalf("new record: %+v %v %v", e, ok, err)
	}
	for i, b := range e.Blobs {
		for _, l := range other.Layers {
			if string(b) == l.Digest && e.Sizes[i] != l.Size {
				t.Errorf("layer %s recorded with size %d, want %d", b, e.Sizes[i], l.Size)
			}
		}
	}
}
