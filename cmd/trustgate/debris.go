package main

import (
	"log/slog"
	"path/filepath"
	"time"

	"github.com/trustgate/trustgate/internal/debris"
)

// sweepDebris removes what a killed trustgate left behind (see package debris): blob spools not
// yet unlinked and directories of spilled trust states no running process holds, directly in
// temp_dir, and half-written trust state under each upstream's tuf/ in trust_dir. Each upstream's
// graph/ is swept by proxy.OpenFileEdges, which walks it anyway. Failing to remove debris is
// logged, not fatal: it costs disk, not correctness.
func sweepDebris(cfg *Config, log *slog.Logger) {
	now := time.Now()
	report := func(dir, what, unit string, removed []string, err error) {
		if len(removed) > 0 {
			log.Info("removed "+what+" left by a crash", "dir", dir, unit, len(removed))
		}
		if err != nil {
			log.Warn("removing "+what+" left by a crash", "dir", dir, "err", err)
		}
	}
	sweep := func(dir string, recursive bool, match func(string) bool) {
		removed, err := debris.Sweep(dir, recursive, match, now)
		report(dir, "temporary files", "files", removed, err)
	}
	tmp := tempDir(cfg)
	sweep(tmp, false, debris.Spool)
	removed, err := debris.SweepDirs(tmp, debris.SpillDir, now)
	report(tmp, "spilled trust states", "directories", removed, err)
	for _, u := range cfg.Upstreams {
		if dir := upstreamDir(cfg, u.Name); dir != "" {
			sweep(filepath.Join(dir, "tuf"), true, debris.Temp)
		}
	}
	if cfg.TrustDir != memoryTrustDir {
		sweep(bindingsDir(cfg), false, debris.Temp) // binding.FileStore's interrupted writes
	}
}
