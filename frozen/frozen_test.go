package frozen

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func sample() *File {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	return &File{
		Version:  FormatVersion,
		FrozenAt: t0,
		Expires:  time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC),
		Patterns: []string{"docker.io/myorg/**"},
		Repositories: []Repository{
			{GUN: "docker.io/myorg/web", Source: SourceTrustDir, Server: "https://notary.example", VerifiedAt: t0.Add(-time.Hour),
				TrustExpires: t0.Add(-time.Hour), Roles: []string{"targets"}, Versions: map[string]int{"targets": 2}},
			{GUN: "docker.io/myorg/app", Source: SourceNotary, Server: "https://notary.example", VerifiedAt: t0,
				TrustExpires: t0.AddDate(0, 0, 14), Roles: []string{"targets/releases", "targets"}, RootKeys: []string{"abc"},
				Versions: map[string]int{"root": 1, "targets": 3, "snapshot": 3, "timestamp": 5},
				Tags: []Tag{
					{Tag: "v2", Digest: digest.FromString("v2"), Size: 528, Role: "targets/releases", RoleVersion: 1, Signers: []string{"k2"}},
					{Tag: "v1", Digest: digest.FromString("v1"), Size: 527, Role: "targets", RoleVersion: 3, Signers: []string{"k1"}},
				}},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	f := sample()
	b, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(Marshal()): %v\n%s", err, b)
	}
	b2, err := g.Marshal()
	if err != nil || string(b2) != string(b) {
		t.Fatalf("Marshal is not canonical: %v\n%s\n---\n%s", err, b, b2)
	}
	r, ok := g.Repository("docker.io/myorg/app")
	if !ok {
		t.Fatal("docker.io/myorg/app not found")
	}
	if tg, ok := r.Lookup("v1"); !ok || tg.Digest != digest.FromString("v1") || tg.Size != 527 {
		t.Errorf("v1 = %+v, %v", tg, ok)
	}
	if _, ok := r.Lookup("v3"); ok {
		t.Error("v3 found")
	}
	if _, ok := g.Repository("docker.io/myorg/none"); ok {
		t.Error("docker.io/myorg/none found")
	}
	if !strings.Contains(g.Describe("/f.json"), "frozen: /f.json (frozen at 2026-12-03T10:00:00Z, expires 2027-06-30T00:00:00Z)") {
		t.Errorf("Describe = %q", g.Describe("/f.json"))
	}
}

func TestParseRefuses(t *testing.T) {
	good, err := sample().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	repl := func(old, new string) string {
		if !strings.Contains(string(good), old) {
			t.Fatalf("sample has no %q", old)
		}
		return strings.Replace(string(good), old, new, 1)
	}
	for _, tc := range []struct{ name, data string }{
		{"empty", ""},
		{"not an object", "[]"},
		{"no version", `{"expires":"2027-01-01T00:00:00Z"}`},
		{"version 2", repl(`"version": 1`, `"version": 2`)},
		{"unknown field", repl(`"version": 1,`, `"version": 1, "extra": true,`)},
		{"trailing data", string(good) + "{}"},
		{"no expiry", repl(`"expires": "2027-06-30T00:00:00Z"`, `"expires": "0001-01-01T00:00:00Z"`)},
		{"expires before frozen", repl(`"expires": "2027-06-30T00:00:00Z"`, `"expires": "2026-01-01T00:00:00Z"`)},
		{"bad digest", repl(string(digest.FromString("v1")), "sha256:1234")},
		{"sha512 digest", repl(`"`+string(digest.FromString("v1"))+`"`, `"sha512:`+strings.Repeat("ab", 64)+`"`)},
		{"bad tag", repl(`"tag": "v1"`, `"tag": "-v1"`)},
		{"unsorted tags", repl(`"tag": "v1"`, `"tag": "v3"`)},
		{"duplicate tag", repl(`"tag": "v1"`, `"tag": "v2"`)},
		{"bad gun", repl(`"gun": "docker.io/myorg/app"`, `"gun": "myorg/app"`)},
		{"unsorted repositories", repl(`"gun": "docker.io/myorg/app"`, `"gun": "docker.io/myorg/zzz"`)},
		{"bad source", repl(`"source": "notary"`, `"source": "guess"`)},
		{"role not listed", repl(`"role": "targets/releases"`, `"role": "targets/alice"`)},
		{"negative size", repl(`"size": 527`, `"size": -1`)},
	} {
		if _, err := Parse([]byte(tc.data)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", tc.name, err)
		}
	}
}

// TestLoadPinned: Load refuses a file whose SHA-256 is not the pinned one, so a file changed after
// freezing (one byte is enough) is refused before it is parsed.
func TestLoadPinned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "frozen.json")
	sum, err := WriteFile(path, sample())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil || Sum(data) != sum {
		t.Fatalf("WriteFile's sum %s is not the file's (%v)", sum, err)
	}
	if _, err := Load(path, sum); err != nil {
		t.Fatal(err)
	}
	tampered := strings.Replace(string(data), string(digest.FromString("v1")), string(digest.FromString("evil")), 1)
	if err := os.WriteFile(path, []byte(tampered), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, sum); !errors.Is(err, ErrChecksum) {
		t.Fatalf("tampered file: err = %v, want ErrChecksum", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.json"), sum); err == nil {
		t.Fatal("missing file loaded")
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("WriteFile left %d files behind", len(entries))
	}
}

// FuzzParse: no frozen trust file, however malformed, crashes trustgate; whatever Parse accepts
// marshals to a canonical form that parses to the same bindings.
func FuzzParse(f *testing.F) {
	good, err := sample().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		b, err := file.Marshal()
		if err != nil {
			t.Fatalf("accepted file does not marshal: %v", err)
		}
		again, err := Parse(b)
		if err != nil {
			t.Fatalf("canonical form does not parse: %v\n%s", err, b)
		}
		if len(again.Repositories) != len(file.Repositories) {
			t.Fatalf("repositories %d != %d", len(again.Repositories), len(file.Repositories))
		}
	})
}
