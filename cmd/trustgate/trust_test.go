package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/frozen"
	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/resolver"
)

// freezeEnv is a configuration whose one upstream's trust server is a tuftest server.
type freezeEnv struct {
	t        *testing.T
	dir      string
	config   string
	trustDir string
	srv      *tuftest.Server
}

func newFreezeEnv(t *testing.T, extra string) *freezeEnv {
	t.Helper()
	e := &freezeEnv{t: t, dir: t.TempDir(), srv: tuftest.NewServer(t)}
	e.trustDir = filepath.Join(e.dir, "trust")
	e.writeConfig(extra)
	return e
}

func (e *freezeEnv) writeConfig(extra string) {
	e.config = filepath.Join(e.dir, "trustgate.yaml")
	yaml := fmt.Sprintf(`log: {level: error}
trust_dir: %q
upstreams:
  - name: docker.io
    url: http://127.0.0.1:1
    gun_prefix: docker.io
    notary: {url: %q}
%s`, e.trustDir, e.srv.URL, extra)
	if err := os.WriteFile(e.config, []byte(yaml), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// run runs trustgate with args and returns stdout, stderr and the error.
func (e *freezeEnv) run(args ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

var sumLine = regexp.MustCompile(`(?m)^sha256 ([0-9a-f]{64})$`)

func (e *freezeEnv) freeze(out string, args ...string) (string, string) {
	e.t.Helper()
	stdout, stderr, err := e.run(append([]string{"trust", "freeze", "--config", e.config, "--out", out,
		"--expires", time.Now().AddDate(0, 6, 0).UTC().Format(time.RFC3339)}, args...)...)
	if err != nil {
		e.t.Fatalf("trust freeze %s: %v\n%s%s", strings.Join(args, " "), err, stdout, stderr)
	}
	m := sumLine.FindStringSubmatch(stdout)
	if m == nil {
		e.t.Fatalf("trust freeze printed no sha256:\n%s", stdout)
	}
	return stdout, m[1]
}

// TestTrustFreeze: freeze exports exactly the verified bindings of the repositories the patterns
// match (a wildcard matches what trust_dir holds), under the roles the policy accepts, into a file
// that loads with the sha256 it prints and is refused once changed.
func TestTrustFreeze(t *testing.T) {
	e := newFreezeEnv(t, "")
	app := tuftest.NewRepo(t, "docker.io/myorg/app")
	rel := tuftest.NewKey(t, tuftest.ECDSA)
	app.AddDelegation("targets/releases", []*tuftest.Key{rel}, nil, 1)
	v1 := app.AddTarget("targets", "v1", []byte("app v1"))
	v2 := app.AddTarget("targets/releases", "v2", []byte("app v2"))
	app.AddTarget("targets", "v2", []byte("app v2, but releases wins"))
	app.AddTarget("targets", "not/a/tag", []byte("x"))
	e.srv.Set("docker.io/myorg/app", app.Publish())
	web := tuftest.NewRepo(t, "docker.io/myorg/web")
	web.AddTarget("targets", "latest", []byte("web"))
	e.srv.Set("docker.io/myorg/web", web.Publish())
	other := tuftest.NewRepo(t, "docker.io/other/x")
	other.AddTarget("targets", "v1", []byte("other"))
	e.srv.Set("docker.io/other/x", other.Publish())

	first := filepath.Join(e.dir, "first.json")
	out, sum := e.freeze(first, "docker.io/myorg/app", "docker.io/myorg/web", "docker.io/other/x")
	for _, want := range []string{"docker.io/myorg/app: 2 tags", "    v1", v1, "    v2", v2, "targets/releases (version 1)",
		`target "not/a/tag" skipped`, "verified now against the notary server " + e.srv.URL,
		"froze 3 repositories, 4 tags", `frozen: {file: "` + first + `", sha256: ` + sum + "}"} {
		if !strings.Contains(out, want) {
			t.Errorf("freeze output lacks %q:\n%s", want, out)
		}
	}

	// A wildcard matches the repositories trust_dir holds, and only those the pattern matches.
	second := filepath.Join(e.dir, "second.json")
	out, sum = e.freeze(second, "docker.io/myorg/**")
	f, err := frozen.Load(second, sum)
	if err != nil {
		t.Fatal(err)
	}
	var guns []string
	for _, r := range f.Repositories {
		guns = append(guns, r.GUN)
	}
	if strings.Join(guns, " ") != "docker.io/myorg/app docker.io/myorg/web" {
		t.Fatalf("froze %v, want docker.io/myorg/app and docker.io/myorg/web\n%s", guns, out)
	}
	r, _ := f.Repository("docker.io/myorg/app")
	if r.Source != frozen.SourceNotary || len(r.Tags) != 2 || r.Versions["targets"] != app.Version("targets") ||
		r.Versions["timestamp"] != app.Version("timestamp") || len(r.RootKeys) != 1 || r.RootKeys[0] != app.RootKeyIDs()[0] {
		t.Errorf("app = %+v", r)
	}
	for tag, want := range map[string]struct{ digest, role string }{"v1": {v1, "targets"}, "v2": {v2, "targets/releases"}} {
		got, ok := r.Lookup(tag)
		if !ok || string(got.Digest) != want.digest || got.Role != want.role || len(got.Signers) != 1 {
			t.Errorf("%s = %+v, want %s in %s", tag, got, want.digest, want.role)
		}
	}

	// A changed file is refused: by Load, by serve's loader, and by trust show.
	data, err := os.ReadFile(second)
	if err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(string(data), v1, v2, 1)
	if err := os.WriteFile(second, []byte(forged), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := frozen.Load(second, sum); !errors.Is(err, frozen.ErrChecksum) {
		t.Errorf("Load of a changed file: %v, want ErrChecksum", err)
	}
	e.writeConfig(fmt.Sprintf("policy:\n  default: {mode: enforce, frozen: {file: %q, sha256: %s}}\n", second, sum))
	cfg, err := loadConfig(e.config, nil)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.New(cfg.Policy)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadFrozen(pol, slog.New(slog.DiscardHandler)); !errors.Is(err, frozen.ErrChecksum) {
		t.Errorf("serve's loader took a changed file: %v", err)
	}
	stdout, _, err := e.run("trust", "show", "--config", e.config)
	if err == nil || !strings.Contains(stdout, "REFUSED: sha256") {
		t.Errorf("trust show of a changed file: %v\n%s", err, stdout)
	}
	if err := os.WriteFile(second, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadFrozen(pol, slog.New(slog.DiscardHandler)); err != nil {
		t.Errorf("serve's loader: %v", err)
	}
	stdout, _, err = e.run("trust", "show", "--config", e.config)
	if err != nil || !strings.Contains(stdout, "matches the configuration") || !regexp.MustCompile(`docker.io/myorg/app\s+v2\s+`+v2+`\s+targets/releases\s+notary`).MatchString(stdout) {
		t.Errorf("trust show: %v\n%s", err, stdout)
	}

	// Nothing is written when a repository does not verify.
	e.srv.Override("docker.io/myorg/web", "timestamp.json", tuftest.Response{Body: []byte("{}")})
	third := filepath.Join(e.dir, "third.json")
	stdout, stderr, err := e.run("trust", "freeze", "--config", e.config, "--out", third, "--expires", "2099-01-01T00:00:00Z", "docker.io/myorg/**")
	if err == nil || !strings.Contains(stderr, "docker.io/myorg/web") {
		t.Errorf("freeze with a repository that does not verify: %v\n%s%s", err, stdout, stderr)
	}
	if _, err := os.Stat(third); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed freeze wrote %s (%v)", third, err)
	}

	for _, args := range [][]string{
		{"docker.io/myorg/app"},                                // no --expires
		{"--expires", "2020-01-01T00:00:00Z", "docker.io/a/b"}, // past
		{"--expires", "2099-01-01T00:00:00Z", "quay.io/a/b"},   // no upstream
		{"--expires", "2099-01-01T00:00:00Z", "docker.io/none/**"},
	} {
		if _, _, err := e.run(append([]string{"trust", "freeze", "--config", e.config, "--out", third}, args...)...); err == nil {
			t.Errorf("trust freeze %v succeeded", args)
		}
	}
}

// TestTrustFreezeFromTrustDir: after the trust server is gone and the cached metadata has expired,
// freeze refuses to call it verified now, and --from trust-dir verifies the cached metadata as of
// its last valid instant and says so.
func TestTrustFreezeFromTrustDir(t *testing.T) {
	e := newFreezeEnv(t, "")
	const gun = "docker.io/myorg/old"
	t0 := time.Now().AddDate(0, -1, 0).UTC().Truncate(time.Second)
	repo := tuftest.NewRepo(t, gun, tuftest.WithNow(func() time.Time { return t0 }))
	digest := repo.AddTarget("targets", "v1", []byte("old v1"))
	e.srv.Set(gun, repo.Publish())
	// trustgate verified it a month ago, while it was valid.
	c, err := resolver.NewClient(resolver.Config{ServerURL: e.srv.URL, TrustDir: filepath.Join(e.trustDir, "docker.io"),
		Now: func() time.Time { return t0.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Update(context.Background(), gun); err != nil {
		t.Fatal(err)
	}
	e.srv.Close()

	out := filepath.Join(e.dir, "old.json")
	stdout, stderr, err := e.run("trust", "freeze", "--config", e.config, "--out", out, "--expires", "2099-01-01T00:00:00Z", gun)
	if err == nil || !strings.Contains(stderr, "--from trust-dir") {
		t.Fatalf("freeze from a gone server with expired cached data: %v\n%s%s", err, stdout, stderr)
	}
	stdout, sum := e.freeze(out, "--from", "trust-dir", "docker.io/myorg/**")
	expired := t0.AddDate(0, 0, 14) // tuftest's timestamp lifetime
	if !strings.Contains(stdout, "from trust_dir's cached metadata, verified as of "+expired.Format(time.RFC3339)+", when it expired") {
		t.Errorf("freeze does not say it read expired cached metadata:\n%s", stdout)
	}
	f, err := frozen.Load(out, sum)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := f.Repository(gun)
	if !ok || r.Source != frozen.SourceTrustDir || !r.VerifiedAt.Equal(expired) || !r.TrustExpires.Equal(expired) {
		t.Fatalf("repository = %+v", r)
	}
	if tg, ok := r.Lookup("v1"); !ok || string(tg.Digest) != digest {
		t.Errorf("v1 = %+v, want %s", tg, digest)
	}
	stdout, _, err = e.run("trust", "show", "--file", out)
	if err != nil || !strings.Contains(stdout, "(no configuration given to compare with)") || !strings.Contains(stdout, digest) {
		t.Errorf("trust show --file: %v\n%s", err, stdout)
	}

	// resolve answers as serve would: from the frozen file, with the trust server gone.
	e.writeConfig(fmt.Sprintf("policy:\n  rules:\n    - {match: %q, mode: enforce, frozen: {file: %q, sha256: %s}}\n", gun, out, sum))
	stdout, stderr, err = e.run("resolve", "--config", e.config, gun+":v1")
	if err != nil || !regexp.MustCompile(`Digest\s+`+digest).MatchString(stdout) || !strings.Contains(stdout, "frozen: "+out) {
		t.Errorf("resolve %s:v1 with frozen trust: %v\n%s%s", gun, err, stdout, stderr)
	}
	if _, stderr, err := e.run("resolve", "--config", e.config, gun+":v2"); err == nil || !strings.Contains(stderr, "not in the frozen trust") {
		t.Errorf("resolve of a tag not frozen: %v\n%s", err, stderr)
	}
}
