package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestEdgeStoreFollowsTrustDir: the manifest graph is kept next to each upstream's trust state, and
// ":memory:" keeps it (like the trust state) off disk — no directory named ":memory:" appears.
func TestEdgeStoreFollowsTrustDir(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Chdir(t.TempDir())
	for _, tc := range []struct{ trustDir, graph string }{
		{filepath.Join(t.TempDir(), "trust"), "docker.io/graph"},
		{memoryTrustDir, ""},
	} {
		cfg, err := parseConfig([]byte(minimalConfig+"trust_dir: \""+tc.trustDir+"\"\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		ups, cs, err := newUpstreams(cfg, log, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cs.close() })
		if tc.graph == "" {
			if ups[0].Edges != nil {
				t.Errorf("%s: an edge store on disk", tc.trustDir)
			}
			if entries, _ := os.ReadDir("."); len(entries) != 0 {
				t.Errorf("%s: created %v in the working directory", tc.trustDir, entries)
			}
			continue
		}
		if fi, err := os.Stat(filepath.Join(tc.trustDir, tc.graph)); err != nil || !fi.IsDir() || ups[0].Edges == nil {
			t.Errorf("%s: no graph directory: %v", tc.trustDir, err)
		}
	}
}
