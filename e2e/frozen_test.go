package e2e

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
	"github.com/trustgate/trustgate/internal/tuftest"
)

// trustCmd runs `trustgate trust <args>` and returns its output; a failure is returned, not fatal.
func trustCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(trustgateBin, append([]string{"trust"}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TRUSTGATE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

var frozenSum = regexp.MustCompile(`(?m)^sha256 ([0-9a-f]{64})$`)

// freezeCmd runs trust freeze and returns its output and the file's sha256.
func freezeCmd(t *testing.T, args ...string) (string, string) {
	t.Helper()
	out, err := trustCmd(t, append([]string{"freeze"}, args...)...)
	if err != nil {
		t.Fatalf("trustgate trust freeze %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	m := frozenSum.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("trust freeze printed no sha256:\n%s", out)
	}
	t.Logf("trust freeze %s:\n%s", strings.Join(args, " "), out)
	return out, m[1]
}

func writeConfig(t *testing.T, cfg peers.GateConfig) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "trustgate.yaml")
	if err := os.WriteFile(path, []byte(cfg.YAML()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFrozenTrust is issue #9's "a freeze survives the Notary server being stopped and its
// timestamps expiring". Images signed with the notary CLI on a real notary-server are frozen with
// `trustgate trust freeze`; the server is stopped; trustgate serves from the frozen file: the signed
// tag at the frozen digest (crane pulls it, layers by digest), unsigned → 404, a repository the file
// does not hold → 503 (its Notary server is gone). Trust data whose timestamp has expired since
// trustgate verified it is frozen from trust_dir (--from trust-dir) and served too. Past the frozen
// file's own expiry: 503 "frozen trust expired".
func TestFrozenTrust(t *testing.T) {
	w := newWorld(t)
	signed := w.pushSigned(t, "myorg/app", "v1")
	unsigned := w.push(t, "myorg/app", "v2")
	w.pushSigned(t, "myorg/other", "v1")

	// The expired-metadata case: a repository whose timestamp expires seconds after trustgate
	// verifies it, on a notary-like server (stock notary-server's timestamps last 14 days).
	oldImg := w.push(t, "myorg/old", "v1")
	old := tuftest.NewRepo(t, gun("myorg/old"))
	old.AddTargetDigest("targets", "v1", oldImg.Digest, oldImg.Size)
	tsExpiry := time.Now().Add(3 * time.Second)
	old.SetExpiry("timestamp", tsExpiry)
	oldNotary := tuftest.Serve(t, gun("myorg/old"), old.Publish())

	dir := t.TempDir()
	trustDir := filepath.Join(dir, "trust")
	base := peers.GateConfig{RegistryURL: w.reg.URL, NotaryURL: w.notary.URL, TrustDir: trustDir, TrustTTL: time.Second}
	cfg := writeConfig(t, base)
	oldBase := base
	oldBase.NotaryURL = oldNotary.URL
	oldCfg := writeConfig(t, oldBase)
	expires := time.Now().AddDate(0, 6, 0).UTC().Format(time.RFC3339)

	// 1. Freeze the DCT repository while its notary-server runs.
	appFile := filepath.Join(dir, "app.json")
	out, appSum := freezeCmd(t, "--config", cfg, "--out", appFile, "--expires", expires, "docker.io/myorg/app")
	for _, want := range []string{"docker.io/myorg/app: 1 tags", "verified now against the notary server", "v1", signed.Digest} {
		if !strings.Contains(out, want) {
			t.Errorf("freeze output lacks %q", want)
		}
	}

	// 2. Verify myorg/old while valid (resolve fills trust_dir), let its timestamp expire, retire
	// its server, and freeze it from trust_dir.
	if out, err := exec.Command(trustgateBin, "resolve", "--config", oldCfg, gun("myorg/old")+":v1").CombinedOutput(); err != nil ||
		!strings.Contains(string(out), oldImg.Digest) {
		t.Fatalf("trustgate resolve myorg/old:v1: %v\n%s", err, out)
	}
	time.Sleep(time.Until(tsExpiry) + time.Second)
	oldNotary.Close()
	if out, err := trustCmd(t, "freeze", "--config", oldCfg, "--out", filepath.Join(dir, "no.json"), "--expires", expires, "docker.io/myorg/old"); err == nil ||
		!strings.Contains(out, "--from trust-dir") {
		t.Errorf("freeze of expired trust data from a gone server succeeded or gave no hint: %v\n%s", err, out)
	}
	oldFile := filepath.Join(dir, "old.json")
	out, oldSum := freezeCmd(t, "--config", oldCfg, "--out", oldFile, "--expires", expires, "--from", "trust-dir", "docker.io/myorg/**")
	// The wildcard matches both repositories trust_dir holds: myorg/old as of its expiry, myorg/app
	// (still valid) as of now.
	for _, want := range []string{
		"docker.io/myorg/old: 1 tags\n  from trust_dir's cached metadata, verified as of " + tsExpiry.UTC().Format("2006-01-02T15:04:05"),
		"docker.io/myorg/app: 1 tags\n  from trust_dir's cached metadata, verified now (still valid)",
		oldImg.Digest, signed.Digest,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("freeze --from trust-dir output lacks %q", want)
		}
	}

	// 3. Retire the real notary-server too, and move the upstream tag: neither matters now.
	if err := w.notary.Stop(); err != nil {
		t.Fatal(err)
	}
	peers.PushImage(t, w.reg, "myorg/app", "v1") // the upstream tag v1 now names other bytes

	base.Rules = []peers.GateRule{
		{Match: "docker.io/myorg/app", Mode: "enforce", FrozenFile: appFile, FrozenSHA256: appSum},
		{Match: "docker.io/myorg/old", Mode: "enforce", FrozenFile: oldFile, FrozenSHA256: oldSum},
	}
	g := w.gate(t, base)
	ref := func(s string) string { return g.Host + "/" + s }

	for _, c := range []struct {
		repo   string
		img    peers.Pushed
		file   string
		layers bool
	}{{"myorg/app", signed, appFile, true}, {"myorg/old", oldImg, oldFile, true}} {
		r := peers.Crane(t, "digest", ref(c.repo+":v1"))
		if r.Err != nil || strings.TrimSpace(r.Stdout) != c.img.Digest {
			t.Errorf("crane digest %s:v1 = %q, %v; want the frozen %s", c.repo, r.Stdout, r.Err, c.img.Digest)
		}
		if r := peers.Crane(t, "pull", ref(c.repo+":v1"), filepath.Join(t.TempDir(), "img.tar")); r.Err != nil {
			t.Errorf("crane pull %s:v1: %v", c.repo, r.Err)
		}
		m := getManifest(t, g, c.repo, "v1")
		if m.code != http.StatusOK || m.header.Get("X-Trustgate-Verifier") != "frozen" || m.header.Get("X-Trustgate-Expires") != expires {
			t.Errorf("GET %s:v1 = %d, verifier %q, expires %q", c.repo, m.code, m.header.Get("X-Trustgate-Verifier"), m.header.Get("X-Trustgate-Expires"))
		}
		for _, l := range c.img.Layers {
			if b := get(t, http.MethodGet, g.URL+"/v2/"+c.repo+"/blobs/"+l.Digest); b.code != http.StatusOK || b.digest() != l.Digest {
				t.Errorf("GET %s layer %s = %d", c.repo, l.Digest, b.code)
			}
		}
		ds := findDecision(g, gun(c.repo), "v1")
		if len(ds) == 0 || ds[len(ds)-1].Decision != "allow" || !strings.Contains(ds[len(ds)-1].Reason, "frozen: "+c.file+" (frozen at ") {
			t.Errorf("decision log for %s:v1 does not name the frozen file:\n%s", c.repo, decisionsString(ds))
		}
	}

	if m := getManifest(t, g, "myorg/app", "v2"); m.code != http.StatusNotFound || m.digest() == unsigned.Digest {
		t.Errorf("GET myorg/app:v2 (unsigned) = %d %s, want 404", m.code, m.body)
	}
	if b := get(t, http.MethodGet, g.URL+"/v2/myorg/app/blobs/"+unsigned.Layers[0].Digest); b.code != http.StatusNotFound {
		t.Errorf("GET a layer of the unsigned image = %d, want 404", b.code)
	}
	if ds := findDecision(g, gun("myorg/app"), "v2"); len(ds) == 0 || ds[len(ds)-1].Decision != "refuse" || !strings.Contains(ds[len(ds)-1].Reason, "frozen: "+appFile) {
		t.Errorf("decision log for myorg/app:v2:\n%s", decisionsString(ds))
	}
	// Not in any frozen file: Notary's, and its server is gone.
	if m := getManifest(t, g, "myorg/other", "v1"); m.code != http.StatusServiceUnavailable {
		t.Errorf("GET myorg/other:v1 (signed in the retired notary, not frozen) = %d %s, want 503", m.code, m.body)
	}

	out, err := trustCmd(t, "show", "--config", g.ConfigPath)
	if err != nil || !strings.Contains(out, "sha256 "+appSum+": matches the configuration") ||
		!regexp.MustCompile(`docker.io/myorg/old\s+v1\s+`+oldImg.Digest+`\s+targets\s+trust_dir`).MatchString(out) {
		t.Errorf("trust show: %v\n%s", err, out)
	}

	// 4. Past the frozen file's own expiry: 503, whatever the signatures said.
	briefFile := filepath.Join(dir, "brief.json")
	briefExpiry := time.Now().Add(3 * time.Second).UTC().Truncate(time.Second).Add(time.Second)
	_, briefSum := freezeCmd(t, "--config", oldCfg, "--out", briefFile, "--expires", briefExpiry.Format(time.RFC3339), "--from", "trust-dir", "docker.io/myorg/old")
	time.Sleep(time.Until(briefExpiry))
	base.Rules = []peers.GateRule{{Match: "docker.io/myorg/old", Mode: "enforce", FrozenFile: briefFile, FrozenSHA256: briefSum}}
	base.TrustDir = filepath.Join(dir, "trust2")
	g2 := w.gate(t, base)
	m := getManifest(t, g2, "myorg/old", "v1")
	if m.code != http.StatusServiceUnavailable || !bytes.Contains(m.body, []byte("frozen trust expired")) {
		t.Errorf("GET myorg/old:v1 past the frozen expiry = %d %s, want 503 frozen trust expired", m.code, m.body)
	}
	if ds := findDecision(g2, gun("myorg/old"), "v1"); len(ds) == 0 || ds[len(ds)-1].Decision != "error" ||
		!strings.Contains(ds[len(ds)-1].Reason, "frozen trust expired: frozen: "+briefFile) {
		t.Errorf("decision log past the frozen expiry:\n%s", decisionsString(ds))
	}
}
