package peers

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// ToolResult is the outcome of running a client tool. Err is non-nil on a non-zero exit or timeout;
// Stderr holds the tool's explanation.
type ToolResult struct {
	Stdout, Stderr string
	Err            error
}

// Crane runs crane v0.22.1 with --insecure (the peers speak plain HTTP on loopback).
func Crane(tb testing.TB, args ...string) ToolResult {
	tb.Helper()
	return runTool(tb, Binary(tb, "crane"), append(args, "--insecure")...)
}

// Skopeo runs skopeo. Callers pass --tls-verify=false per subcommand, since skopeo takes it there.
func Skopeo(tb testing.TB, args ...string) ToolResult {
	tb.Helper()
	return runTool(tb, Binary(tb, "skopeo"), args...)
}

func runTool(tb testing.TB, bin string, args ...string) ToolResult {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = tb.TempDir()
	// No credentials from the developer's docker config may reach the proxy.
	cmd.Env = append(cleanEnv("DOCKER_CONFIG=", "REGISTRY_AUTH_FILE="), "DOCKER_CONFIG="+cmd.Dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return ToolResult{Stdout: stdout.String(), Stderr: stderr.String(), Err: err}
}
