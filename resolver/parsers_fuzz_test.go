package resolver

import (
	"bytes"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/internal/tuftest"
)

// FuzzParseChallenge: a trust server's WWW-Authenticate header is attacker-controlled input.
// It must never panic, and a parameter written as a plain quoted string must come back intact.
func FuzzParseChallenge(f *testing.F) {
	for _, s := range []string{
		`Bearer realm="https://auth.example.com/token",service="notary",scope="repository:docker.io/library/alpine:pull"`,
		`Basic realm="notary"`,
		`Bearer realm="a\"b", ,,service=x`,
		`Bearer`,
		`Bearer realm="unterminated`,
	} {
		f.Add(s, "value")
	}
	f.Fuzz(func(t *testing.T, header, value string) {
		_, _ = parseChallenge(header)
		if strings.ContainsAny(value, "\"\\") {
			return
		}
		scheme, params := parseChallenge(`Bearer realm="` + value + `",service=x`)
		if scheme != "bearer" || params["realm"] != value || params["service"] != "x" {
			t.Fatalf("realm %q: got scheme %q params %q", value, scheme, params)
		}
	})
}

// FuzzEscapeName: whatever the GUN or role name, its trust-dir path element must be one safe
// directory entry (no separator, no dot names, bounded length), and, unless hashed, reversible.
func FuzzEscapeName(f *testing.F) {
	for _, s := range []string{"localhost:5000/test/app", "targets/releases", "..", ".", "", strings.Repeat("a/", 200), "docker.io/library/alpine"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		e := escapeName(name)
		if e == "" && name != "" || e == "." || e == ".." || strings.ContainsAny(e, "/\\\x00") || len(e) > maxName {
			t.Fatalf("escapeName(%q) = %q is not a safe path element", name, e)
		}
		if strings.HasPrefix(e, "sha256-") {
			if looksHashed(e) && escapeName(e) == e {
				t.Fatalf("escapeName(%q) = %q, and %q escapes to itself: two names share an entry", name, e, e)
			}
			return
		}
		if back, ok := unescapeName(e); !ok || back != name {
			t.Fatalf("unescapeName(escapeName(%q)) = %q, %v", name, back, ok)
		}
	})
}

// FuzzValidateGUN: a GUN that passes validation can be used in a URL path and in the trust dir
// without escaping its repository.
func FuzzValidateGUN(f *testing.F) {
	for _, s := range []string{"docker.io/library/alpine", "localhost:5000/a/b", "a//b", "../x", "a/./b", "x y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, gun string) {
		if validateGUN(gun) != nil {
			return
		}
		for _, seg := range strings.Split(gun, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("validateGUN accepted %q with segment %q", gun, seg)
			}
		}
		if strings.ContainsAny(gun, "?#% \\") {
			t.Fatalf("validateGUN accepted %q with URL-significant characters", gun)
		}
	})
}

// FuzzStoreLoad: the trust_dir is read back on start (versions.json and each cached metadata
// file). Whatever is on disk, load must not panic, and a role's floor is never below the version
// its cached file states.
func FuzzStoreLoad(f *testing.F) {
	f.Add([]byte(`{"root":1,"timestamp":2}`), []byte(`{"signed":{"_type":"Timestamp","version":3},"signatures":[]}`))
	f.Add([]byte(`{"timestamp":-5}`), []byte(`{"signed":{"version":"7"}}`))
	f.Add([]byte(`[]`), []byte(`{"signed":{"version":1e99}}`))
	f.Add([]byte(``), []byte(`not json`))
	f.Fuzz(func(t *testing.T, versions, timestamp []byte) {
		s := store{dir: t.TempDir()}
		if err := s.writeAtomic(s.gunDir("g"), "versions.json", versions); err != nil {
			t.Fatal(err)
		}
		if err := s.saveFile("g", roleTimestamp, timestamp); err != nil {
			t.Fatal(err)
		}
		files, floors, err := s.load("g")
		if err != nil {
			return
		}
		if files == nil || floors == nil {
			t.Fatalf("load returned a nil map without an error")
		}
		if !bytes.Equal(files[roleTimestamp], timestamp) {
			t.Fatalf("cached timestamp not read back")
		}
		if v, ok := fileVersion(timestamp); ok && floors[roleTimestamp] < v {
			t.Fatalf("floor %d below the cached file's version %d", floors[roleTimestamp], v)
		}
	})
}

// FuzzStaleFloors: staleFloors reads the cached root, targets and delegation files to decide
// which floors no longer hold. Whatever they contain it must not panic, never drop the root, and
// never drop a role it was not given; a cached file that does not parse drops nothing of its
// own.
func FuzzStaleFloors(f *testing.F) {
	r := tuftest.NewRepo(f, "example.com/team/app")
	r.AddTarget("targets", "v1", []byte("one"))
	r.AddDelegation("targets/releases", []*tuftest.Key{tuftest.NewKey(f, tuftest.ECDSA)}, nil, 1)
	r.AddTarget("targets/releases", "v2", []byte("two"))
	files := r.Publish()
	f.Add(files["root.json"], files["timestamp.json"], files["targets.json"], files["targets/releases.json"])
	f.Add(files["root.json"], files["snapshot.json"], []byte(`{"signed":{"_type":"Targets","version":1,"delegations":{"roles":[]}},"signatures":[]}`), files["targets/releases.json"])
	f.Add([]byte(`{"signed":null}`), []byte(`{}`), []byte(`not json`), []byte(`{"signatures":[{"keyid":"x"}]}`))
	f.Fuzz(func(t *testing.T, root, timestamp, targets, releases []byte) {
		in := map[string][]byte{roleRoot: root, roleTimestamp: timestamp, roleTargets: targets, "targets/releases": releases, "targets/releases/rc": releases}
		versions := map[string]int{"targets/orphan/x": 2}
		gone := staleFloors(in, versions)
		for _, role := range gone {
			if role == roleRoot {
				t.Fatal("staleFloors dropped the root")
			}
			if _, ok := in[role]; !ok && versions[role] == 0 {
				t.Fatalf("staleFloors dropped %q, which it was not given", role)
			}
			if _, err := parseEnvelope(in[role]); err != nil && !isDelegation(role) {
				t.Fatalf("staleFloors dropped %s, whose cached file does not parse", role)
			}
		}
	})
}
