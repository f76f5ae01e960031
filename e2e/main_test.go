// Package e2e runs the trustgate binary between real clients (crane, skopeo, dockerd) and real
// peers (distribution registry, notary-server signed with the notary CLI), as users run it.
package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/trustgate/trustgate/internal/peers"
)

// trustgateBin is the binary built once by TestMain and shared read-only by every test.
var trustgateBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "trustgate-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	trustgateBin, err = peers.BuildTrustgate(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: cannot build trustgate:", err)
		return 1
	}
	return m.Run()
}
