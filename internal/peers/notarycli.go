package peers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// NotaryCLI drives the real `notary` v0.7.0 client — the same code docker's DCT push used — with
// its own trust_dir and client config, so tests sign exactly as a publisher would.
type NotaryCLI struct {
	TrustDir string
	tb       testing.TB
	bin      string
	config   string
}

// TestPassphrase is the passphrase of every key the CLI creates in tests.
const TestPassphrase = "trustgate-test-passphrase"

// NewNotaryCLI writes a client config pointing at serverURL with a fresh trust_dir.
func NewNotaryCLI(tb testing.TB, serverURL string) *NotaryCLI {
	tb.Helper()
	dir := tb.TempDir()
	c := &NotaryCLI{tb: tb, bin: Binary(tb, "notary"), TrustDir: filepath.Join(dir, "trust"),
		config: filepath.Join(dir, "client-config.json")}
	cfg, _ := json.Marshal(map[string]any{
		"trust_dir":     c.TrustDir,
		"remote_server": map[string]any{"url": serverURL},
	})
	if err := os.WriteFile(c.config, cfg, 0o644); err != nil {
		tb.Fatal(err)
	}
	return c
}

// Run executes `notary -c <config> args...` with stdin and returns stdout; a non-zero exit fails
// the test with the command's output.
func (c *NotaryCLI) Run(stdin string, args ...string) string {
	c.tb.Helper()
	out, err := c.run(stdin, args...)
	if err != nil {
		c.tb.Fatalf("peers: %v", err)
	}
	return out
}

func (c *NotaryCLI) run(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, append([]string{"-c", c.config}, args...)...)
	env := cleanEnv("NOTARY_")
	for _, role := range []string{"ROOT", "TARGETS", "SNAPSHOT", "DELEGATION"} {
		env = append(env, "NOTARY_"+role+"_PASSPHRASE="+TestPassphrase)
	}
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("notary %s: %w\nstdout: %s\nstderr: %s",
			strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// Init creates the GUN locally and on the server (new root and targets keys).
func (c *NotaryCLI) Init(gun string) {
	c.tb.Helper()
	c.Run("", "init", gun)
}

// RotateSnapshotToServer hands the snapshot key to the server, as `docker trust` does.
func (c *NotaryCLI) RotateSnapshotToServer(gun string) {
	c.tb.Helper()
	c.Run("", "key", "rotate", gun, "snapshot", "-r")
}

// AddHash stages tag → (size, sha256) in role (default: targets).
func (c *NotaryCLI) AddHash(gun, tag string, size int64, sha256Hex string, role ...string) {
	c.tb.Helper()
	args := []string{"addhash", gun, tag, strconv.FormatInt(size, 10), "--sha256", sha256Hex}
	if len(role) > 0 && role[0] != "" {
		args = append(args, "-r", role[0])
	}
	c.Run("", args...)
}

// Remove stages removal of tag.
func (c *NotaryCLI) Remove(gun, tag string) {
	c.tb.Helper()
	c.Run("", "remove", gun, tag)
}

// Publish pushes staged changes.
func (c *NotaryCLI) Publish(gun string) {
	c.tb.Helper()
	c.Run("", "publish", gun)
}

// RotateRoot creates a new root key signed by the old one (a new root.json version).
func (c *NotaryCLI) RotateRoot(gun string) {
	c.tb.Helper()
	c.Run("yes\n", "key", "rotate", gun, "root")
}

// InitRepo is Init + RotateSnapshotToServer + an empty Publish: a GUN the way docker creates one.
func (c *NotaryCLI) InitRepo(gun string) {
	c.tb.Helper()
	c.Init(gun)
	c.RotateSnapshotToServer(gun)
	c.Publish(gun)
}

// ListedTarget is one row of `notary list`.
type ListedTarget struct {
	Name, SHA256, Role string
	Size               int64
}

// List returns the targets the CLI sees for gun (after its own verification).
func (c *NotaryCLI) List(gun string) []ListedTarget {
	c.tb.Helper()
	out := c.Run("", "list", gun)
	var ts []ListedTarget
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || len(f[1]) != 64 {
			continue // header, separator, "No targets present" message
		}
		size, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			continue
		}
		ts = append(ts, ListedTarget{Name: f[0], SHA256: f[1], Size: size, Role: f[3]})
	}
	return ts
}
