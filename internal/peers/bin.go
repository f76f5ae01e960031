package peers

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// InstallHint is what a test prints when a peer binary is missing.
const InstallHint = "bash scripts/install-deps.sh"

// Binary returns the path of the named peer program. Go-installed peers are looked up in
// $(go env GOPATH)/bin first because that is where install-deps.sh puts them and it is often not on
// PATH; everything else comes from PATH. A missing binary fails the test: a skipped peer test would
// report success without exercising anything.
func Binary(tb testing.TB, name string) string {
	tb.Helper()
	p, err := lookBinary(name)
	if err != nil {
		tb.Fatalf("peers: %s not found (%v); install the test peers with: %s", name, err, InstallHint)
	}
	return p
}

func lookBinary(name string) (string, error) {
	dirs := goBinDirs()
	if p, ok := findIn(dirs, name); ok {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	// Last resort: GOPATH as the go tool sees it (go env may differ from the environment).
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		var more []string
		for _, p := range filepath.SplitList(strings.TrimSpace(string(out))) {
			more = append(more, filepath.Join(p, "bin"))
		}
		if p, ok := findIn(more, name); ok {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

func findIn(dirs []string, name string) (string, bool) {
	for _, dir := range dirs {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// goBinDirs lists where `go install` puts binaries, from the environment alone.
func goBinDirs() []string {
	var dirs []string
	if b := os.Getenv("GOBIN"); b != "" {
		dirs = append(dirs, b)
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	for _, p := range filepath.SplitList(gopath) {
		if p != "" {
			dirs = append(dirs, filepath.Join(p, "bin"))
		}
	}
	return dirs
}
