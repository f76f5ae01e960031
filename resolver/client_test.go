package resolver

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	gunApp    = "localhost:5000/test/app"
	gunAlpine = "docker.io/library/alpine"
	dirApp    = "testdata/notary-v1/delegations-and-rotations"
	dirAlpine = "testdata/notary-v1/rsa-root"
)

// fixtureNow is inside every fixture's validity (timestamps expire 2026-12-07).
var fixtureNow = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)

func fixedNow(t time.Time) func() time.Time { return func() time.Time { return t } }

func fixtureServer(t *testing.T) *notaryServer {
	return newNotaryServer(t, map[string]string{gunApp: dirApp, gunAlpine: dirAlpine})
}

func newTestClient(t *testing.T, srv *notaryServer, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{ServerURL: srv.URL, Now: fixedNow(fixtureNow)}
	if mod != nil {
		mod(&cfg)
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fixtureTarget reads the expected digest and size of tag straight from a fixture file.
func fixtureTarget(t *testing.T, file, tag string) (string, int64) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Signed struct {
			Targets map[string]struct {
				Length int64             `json:"length"`
				Hashes map[string]string `json:"hashes"`
			} `json:"targets"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	tg, ok := env.Signed.Targets[tag]
	if !ok {
		t.Fatalf("%s has no tag %s", file, tag)
	}
	raw, err := base64.StdEncoding.DecodeString(tg.Hashes["sha256"])
	if err != nil {
		t.Fatal(err)
	}
	return "sha256:" + hex.EncodeToString(raw), tg.Length
}

func TestLookupFixtures(t *testing.T) {
	srv := fixtureServer(t)
	c := newTestClient(t, srv, nil)
	tests := []struct {
		gun, tag string
		roles    []string
		file     string // fixture file that must have signed the answer
		role     string
		err      error
	}{
		{gun: gunApp, tag: "v1", file: dirApp + "/targets.json", role: "targets"},
		{gun: gunApp, tag: "v2", file: dirApp + "/targets.json", role: "targets"},
		{gun: gunApp, tag: "v3", file: dirApp + "/targets/releases.json", role: "targets/releases"},
		{gun: gunApp, tag: "v4", err: ErrTagNotSigned},
		{gun: gunApp, tag: "nope", err: ErrTagNotSigned},
		{gun: gunApp, tag: "v3", roles: []string{"targets"}, file: "", err: ErrTagNotSigned},
		{gun: gunApp, tag: "v4", roles: []string{"targets/alice"}, file: dirApp + "/targets/alice.json", role: "targets/alice"},
		{gun: gunAlpine, tag: "latest", file: dirAlpine + "/targets.json", role: "targets"},
	}
	for _, tc := range tests {
		t.Run(tc.gun+":"+tc.tag+":"+strings.Join(tc.roles, ","), func(t *testing.T) {
			st, err := c.Update(context.Background(), tc.gun)
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			got, err := st.Lookup(tc.tag, tc.roles)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !IsNotSigned(err) {
					t.Fatalf("Lookup err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Lookup: %v", err)
			}
			dg, size := fixtureTarget(t, tc.file, tc.tag)
			if got.Digest.String() != dg || got.Size != size || got.Role != tc.role || got.GUN != tc.gun || got.Tag != tc.tag {
				t.Fatalf("got %+v, want digest %s size %d role %s", got, dg, size, tc.role)
			}
			if len(got.Signers) == 0 {
				t.Fatal("no signers")
			}
			// The timestamp expires first, so every answer expires with it.
			if !got.Expires.Equal(st.Expires()) {
				t.Fatalf("bad expiry %v (state %v)", got.Expires, st.Expires())
			}
		})
	}
	// v3 must not resolve to alice's digest.
	st, _ := c.Update(context.Background(), gunApp)
	v3, _ := st.Lookup("v3", nil)
	alice, _ := fixtureTarget(t, dirApp+"/targets/alice.json", "v3")
	if v3.Digest.String() == alice {
		t.Fatal("v3 resolved to alice's digest")
	}
	if got, want := st.Tags(nil), []string{"v1", "v2", "v3"}; !slices.Equal(got, want) {
		t.Fatalf("Tags = %v, want %v", got, want)
	}
	// Timestamp expires first: every answer must expire no later than it.
	if want := time.Date(2026, 12, 7, 6, 43, 30, 806146647, time.UTC); !st.Expires().Equal(want) {
		t.Fatalf("Expires = %v, want %v", st.Expires(), want)
	}
}

func TestSignersAreRoleKeys(t *testing.T) {
	srv := fixtureServer(t)
	c := newTestClient(t, srv, nil)
	st, err := c.Update(context.Background(), gunApp)
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := st.Lookup("v1", nil)
	v3, _ := st.Lookup("v3", nil)
	if !slices.Equal(v1.Signers, []string{"93b901439571887c347ebb95e86fed6d2dda06d385cc295906e3591cea228b5e"}) {
		t.Fatalf("v1 signers %v", v1.Signers)
	}
	if !slices.Equal(v3.Signers, []string{"7b5c6b98371f44de28eadf53d4db94274dfcfd126a8b3ecc54b08837a9c28233"}) {
		t.Fatalf("v3 signers %v", v3.Signers)
	}
}

// RootKeyIDs are what an operator pins: the current root role's certificate IDs that signed the
// root, not the old key that also signed the rotation.
func TestRootKeyIDs(t *testing.T) {
	srv := fixtureServer(t)
	st, err := newTestClient(t, srv, nil).Update(context.Background(), gunApp)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"e53dff30e127019aa38cd29c60dd9cb2c336a29dde7b0316dd679d8e120be1a8"}
	if got := st.RootKeyIDs(); !slices.Equal(got, want) {
		t.Fatalf("RootKeyIDs() = %v, want %v", got, want)
	}
	pinned := newTestClient(t, srv, func(c *Config) {
		c.Pinning = TrustPinning{Certs: map[string][]string{gunApp: want}, DisableTOFU: true}
	})
	if _, err := pinned.Update(context.Background(), gunApp); err != nil {
		t.Fatalf("pinning the IDs RootKeyIDs reports must work: %v", err)
	}
}

func TestNoTrustData(t *testing.T) {
	srv := fixtureServer(t)
	c := newTestClient(t, srv, nil)
	_, err := c.Update(context.Background(), "localhost:5000/not/there")
	if !errors.Is(err, ErrNoTrustData) || !IsNotSigned(err) {
		t.Fatalf("err = %v, want ErrNoTrustData", err)
	}
	// Names without trust data leave nothing behind (clients choose the names).
	c.mu.Lock()
	n := len(c.guns)
	c.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d GUN states kept after a failed bootstrap", n)
	}
}

func TestExpiredFixture(t *testing.T) {
	srv := fixtureServer(t)
	c := newTestClient(t, srv, func(cfg *Config) { cfg.Now = fixedNow(time.Date(2026, 12, 9, 0, 0, 0, 0, time.UTC)) })
	for _, gun := range []string{gunApp, gunAlpine} {
		_, err := c.Update(context.Background(), gun)
		if !errors.Is(err, ErrExpired) || IsNotSigned(err) {
			t.Fatalf("%s: err = %v, want ErrExpired", gun, err)
		}
	}
}

func TestInvalidGUN(t *testing.T) {
	srv := fixtureServer(t)
	c := newTestClient(t, srv, nil)
	for _, gun := range []string{"", "../etc", "a//b", "a/./b", "a/b/", "a b", "a?b", "a%2Fb", "x/*"} {
		if _, err := c.Update(context.Background(), gun); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: err = %v, want ErrInvalid", gun, err)
		}
	}
	if got := srv.take(); len(got) != 0 {
		t.Fatalf("invalid GUNs caused requests: %v", got)
	}
}

func TestWarmUpdateIsOneRequest(t *testing.T) {
	srv := fixtureServer(t)
	c := newTestClient(t, srv, nil)
	ctx := context.Background()
	if _, err := c.Update(ctx, gunApp); err != nil {
		t.Fatal(err)
	}
	cold := srv.take()
	want := []string{"root", "timestamp", "snapshot.", "targets.", "targets/releases.", "targets/alice."}
	if len(cold) != len(want) {
		t.Fatalf("cold requests %v", cold)
	}
	for i, p := range cold {
		if !strings.HasPrefix(strings.TrimPrefix(p, "/v2/"+gunApp+"/_trust/tuf/"), want[i]) {
			t.Fatalf("cold request %d = %s, want %s…", i, p, want[i])
		}
	}
	for range 3 {
		st, err := c.Update(ctx, gunApp)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Lookup("v3", nil); err != nil {
			t.Fatal(err)
		}
		if got := srv.take(); len(got) != 1 || !strings.HasSuffix(got[0], "/timestamp.json") {
			t.Fatalf("warm requests %v", got)
		}
	}
}

func TestPersistAndRestart(t *testing.T) {
	srv := fixtureServer(t)
	dir := t.TempDir()
	ctx := context.Background()
	c1 := newTestClient(t, srv, func(cfg *Config) { cfg.TrustDir = dir })
	if _, err := c1.Update(ctx, gunApp); err != nil {
		t.Fatal(err)
	}
	srv.take()
	for _, f := range []string{"root.json", "timestamp.json", "snapshot.json", "targets.json", "targets%2Freleases.json", "targets%2Falice.json"} {
		if _, err := os.Stat(filepath.Join(dir, "tuf", "localhost%3A5000%2Ftest%2Fapp", "metadata", f)); err != nil {
			t.Fatal(err)
		}
	}
	// A restarted client with TOFU disabled still trusts the persisted root: no new TOFU,
	// no root.json, and the unchanged snapshot/targets come from disk.
	c2 := newTestClient(t, srv, func(cfg *Config) { cfg.TrustDir = dir; cfg.Pinning.DisableTOFU = true })
	st, err := c2.Update(ctx, gunApp)
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.take(); len(got) != 1 || !strings.HasSuffix(got[0], "/timestamp.json") {
		t.Fatalf("restart requests %v", got)
	}
	if _, err := st.Lookup("v3", nil); err != nil {
		t.Fatal(err)
	}
}

func TestRollbackRefused(t *testing.T) {
	srv := fixtureServer(t)
	dir := t.TempDir()
	// A previous run verified timestamp version 8; the server now serves version 7.
	if err := (store{dir: dir}).saveVersions(gunApp, map[string]int{"timestamp": 8}); err != nil {
		t.Fatal(err)
	}
	c := newTestClient(t, srv, func(cfg *Config) { cfg.TrustDir = dir })
	_, err := c.Update(context.Background(), gunApp)
	if !errors.Is(err, ErrRollback) {
		t.Fatalf("err = %v, want ErrRollback", err)
	}
	// Same for a delegation.
	dir2 := t.TempDir()
	if err := (store{dir: dir2}).saveVersions(gunApp, map[string]int{"targets/alice": 2}); err != nil {
		t.Fatal(err)
	}
	c = newTestClient(t, srv, func(cfg *Config) { cfg.TrustDir = dir2 })
	if _, err := c.Update(context.Background(), gunApp); !errors.Is(err, ErrRollback) {
		t.Fatalf("delegation: err = %v, want ErrRollback", err)
	}
}

func TestRootRotationWalk(t *testing.T) {
	srv := fixtureServer(t)
	dir := t.TempDir()
	old, err := os.ReadFile(dirApp + "/2.root.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := (store{dir: dir}).saveFile(gunApp, "root", old); err != nil {
		t.Fatal(err)
	}
	c := newTestClient(t, srv, func(cfg *Config) { cfg.TrustDir = dir })
	st, err := c.Update(context.Background(), gunApp)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if _, err := st.Lookup("v3", nil); err != nil {
		t.Fatal(err)
	}
	reqs := strings.Join(srv.take(), " ")
	for _, want := range []string{"/root.", "/3.root.json", "/4.root.json"} {
		if !strings.Contains(reqs, want) {
			t.Fatalf("requests %s lack %s", reqs, want)
		}
	}
	if strings.Contains(reqs, "/tuf/root.json") {
		t.Fatalf("cached root re-fetched by name: %s", reqs)
	}
	newest, _ := os.ReadFile(dirApp + "/root.json")
	files, versions, err := (store{dir: dir}).load(gunApp)
	if err != nil {
		t.Fatal(err)
	}
	if string(files["root"]) != string(newest) || versions["root"] != 5 {
		t.Fatalf("persisted root v%d, want v5", versions["root"])
	}
}

func TestRootRotationWalkBroken(t *testing.T) {
	// Without 3.root.json the chain from v2 cannot be followed: refuse, don't trust v5.
	srv := fixtureServer(t)
	srv.setOverride("3.root", nil)
	delete(srv.files[gunApp], "3.root")
	dir := t.TempDir()
	old, _ := os.ReadFile(dirApp + "/2.root.json")
	if err := (store{dir: dir}).saveFile(gunApp, "root", old); err != nil {
		t.Fatal(err)
	}
	c := newTestClient(t, srv, func(cfg *Config) { cfg.TrustDir = dir })
	if _, err := c.Update(context.Background(), gunApp); err == nil || IsNotSigned(err) {
		t.Fatalf("err = %v, want a trust failure", err)
	}
}
