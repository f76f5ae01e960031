package oracle_test

import (
	"io"
	"os"
	"testing"

	"github.com/sirupsen/logrus"
)

// TestMain silences notary's global logrus logger: it warns on every load (e.g. roles near
// expiry), which floods test output and, under -fuzz, fills the worker's output pipe until the
// worker blocks.
func TestMain(m *testing.M) {
	logrus.SetOutput(io.Discard)
	os.Exit(m.Run())
}
