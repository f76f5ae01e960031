// Command report runs trustgate's benchmark scenarios against real peers on loopback — the
// upstream registry (distribution v3), notary-server and the notary CLI for signing, crane, and
// distribution's own proxy mode as the comparison — and writes bench/results/latest.{md,json,svg}.
//
// It is started by `make bench` (bench/run.sh), which also runs the packages' Go micro-benchmarks
// and hands their output in with -micro. Nothing here asserts a speed: the report states what was
// measured next to the targets of issue #4.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

type config struct {
	out          string
	bigSize      int64
	layerSize    int64
	layers       int
	tagDuration  time.Duration
	rounds       int
	coldRuns     int
	herd         int
	pullRepeats  int
	micro        string
	microCPU     string
	scale        string
	only         string
	render       string
	gateYAML     string
	linkRates    string
	linkRounds   int
	ttlDuration  time.Duration
	ttlRounds    int
	ttlTags      int
	ttl          time.Duration
	ttlRepublish time.Duration
	// ttlNotaryDelay delays the trust server's timestamp answers in the ttl scenario (a
	// diagnostic: a request that waits for a refresh then takes at least this long).
	ttlNotaryDelay time.Duration
	ttlRoles       string
}

func main() {
	var cfg config
	flag.StringVar(&cfg.out, "out", "bench/results", "directory for latest.md, latest.json, latest.svg and perf data")
	flag.Int64Var(&cfg.bigSize, "blob-size", 1<<30, "size of the scenario-1 blob's file (the layer is a tar around it)")
	flag.Int64Var(&cfg.layerSize, "layer-size", 20<<20, "size of each layer of the scenario-5 image")
	flag.IntVar(&cfg.layers, "layers", 5, "layers of the scenario-5 image")
	flag.DurationVar(&cfg.tagDuration, "tag-duration", 2*time.Second, "duration of one round of a 32-client row of scenario 2 (1-client rows: half)")
	flag.IntVar(&cfg.rounds, "rounds", 5, "interleaved rounds of scenario 2 and of scenario 1's 1-client rows (the median is reported)")
	flag.DurationVar(&cfg.ttlDuration, "ttl-duration", 6*time.Second, "duration of one round of a 32-client row of the ttl scenario (1-client rows: half)")
	flag.IntVar(&cfg.ttlRounds, "ttl-rounds", 5, "interleaved rounds of the ttl scenario (the median is reported)")
	flag.IntVar(&cfg.ttlTags, "ttl-tags", 10_000, "signed tags in the repository of the ttl scenario")
	flag.DurationVar(&cfg.ttl, "ttl", time.Second, "trust_ttl of the ttl scenario's expiring variants (B, B')")
	flag.DurationVar(&cfg.ttlRepublish, "ttl-republish", 2*time.Second, "how often variant B' of the ttl scenario publishes new trust data")
	flag.DurationVar(&cfg.ttlNotaryDelay, "ttl-notary-delay", 0, "diagnostic: the ttl scenario's trust server answers timestamp.json after this delay, and each row counts the requests at least as slow")
	flag.StringVar(&cfg.ttlRoles, "ttl-roles", "", "comma-separated Notary roles of a policy rule for the ttl scenario's repository (empty: the default, targets/releases,targets)")
	flag.IntVar(&cfg.coldRuns, "cold-runs", 5, "fresh processes per system in scenario 3")
	flag.IntVar(&cfg.herd, "herd", 100, "concurrent first pulls in scenario 4")
	flag.IntVar(&cfg.pullRepeats, "pull-repeats", 2, "pulls after the first in scenario 5")
	flag.StringVar(&cfg.micro, "micro", "", "file with `go test -bench` output to include")
	flag.StringVar(&cfg.scale, "scale", "", "file with the scale section (bench/cmd/scale output) to include")
	flag.StringVar(&cfg.microCPU, "micro-cpu", "", "comma-separated files with pprof -top output to include")
	flag.StringVar(&cfg.only, "only", "", "comma-separated scenarios to run (blob,link,tag,ttl,cold,herd,pull,store); empty = all")
	flag.StringVar(&cfg.linkRates, "link-rates", "1e9,10e9", "comma-separated rates (bit/s) of the rate-limited links of the link scenario")
	flag.IntVar(&cfg.linkRounds, "link-rounds", 3, "interleaved rounds per link of the link scenario (the median is reported)")
	flag.StringVar(&cfg.gateYAML, "gate-yaml", "", "extra top-level YAML appended to trustgate's configuration, e.g. 'blob_spool_bytes: 0'")
	flag.StringVar(&cfg.render, "render", "", "re-render latest.md and latest.svg from this latest.json (no measuring)")
	flag.Parse()
	if cfg.render != "" {
		os.Exit(rerender(cfg.render, cfg.out))
	}
	os.Exit(run(cfg))
}

func run(cfg config) (code int) {
	// The driver shares two cores with what it measures; fewer collections of its own heap (which
	// holds the upstream registry's access log) mean fewer stalls in the load generator.
	debug.SetGCPercent(400)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	root := newScope("bench", log)
	start := time.Now()
	defer func() {
		if v := recover(); v != nil {
			if f, ok := v.(fatal); ok {
				log.Error("benchmark aborted", "error", f.msg)
			} else {
				log.Error("benchmark panicked", "panic", v, "stack", string(debug.Stack()))
			}
			code = 1
		}
		root.close()
	}()
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		log.Error("output directory", "error", err)
		return 1
	}

	rep := &Report{Machine: describeMachine(root), Config: map[string]string{
		"blob":           fmt.Sprintf("%d MiB", cfg.bigSize>>20),
		"layer":          fmt.Sprintf("%d MiB", cfg.layerSize>>20),
		"image":          fmt.Sprintf("%d × %d MiB", cfg.layers, cfg.layerSize>>20),
		"tagDuration":    cfg.tagDuration.String(),
		"rounds":         fmt.Sprint(cfg.rounds),
		"coldRuns":       fmt.Sprint(cfg.coldRuns),
		"herd":           fmt.Sprint(cfg.herd),
		"pullRepeats":    fmt.Sprint(cfg.pullRepeats),
		"linkRounds":     fmt.Sprint(cfg.linkRounds),
		"ttlDuration":    cfg.ttlDuration.String(),
		"ttlRounds":      fmt.Sprint(cfg.ttlRounds),
		"ttlTags":        fmt.Sprint(cfg.ttlTags),
		"ttl":            cfg.ttl.String(),
		"ttlRepublish":   cfg.ttlRepublish.String(),
		"ttlNotaryDelay": cfg.ttlNotaryDelay.String(),
		"ttlRoles":       cfg.ttlRoles,
	}}
	w := newWorld(root, cfg)
	log.Info("world ready", "elapsed", time.Since(start).Round(time.Second))

	want := func(s string) bool { return cfg.only == "" || strings.Contains(","+cfg.only+",", ","+s+",") }
	// Each scenario runs in its own scope: a failing one is reported and the others still run.
	try := func(name string, f func(sc *scope)) {
		if !want(name) {
			return
		}
		sc := root.sub(name)
		defer sc.close()
		defer func() {
			if v := recover(); v != nil {
				msg := fmt.Sprint(v)
				if f, ok := v.(fatal); ok {
					msg = f.msg
				}
				log.Error("scenario failed", "scenario", name, "error", msg)
				rep.Failures = append(rep.Failures, name+": "+msg)
			}
		}()
		t0 := time.Now()
		f(sc)
		log.Info("scenario done", "scenario", name, "elapsed", time.Since(t0).Round(time.Second))
	}
	try("tag", func(sc *scope) { rep.Tag = tagScenario(sc, w, cfg, cfg.out, &rep.Profiles) })
	try("ttl", func(sc *scope) {
		if cfg.ttlTags < 1 || cfg.ttlRounds < 1 || cfg.ttlDuration <= 0 || cfg.ttl <= 0 || cfg.ttlRepublish <= 0 {
			sc.Fatalf("-ttl-tags, -ttl-rounds, -ttl-duration, -ttl and -ttl-republish must be positive")
		}
		rep.TTL = ttlScenario(sc, w, cfg)
	})
	try("cold", func(sc *scope) { rep.Cold = coldScenario(sc, w, cfg.coldRuns) })
	try("herd", func(sc *scope) { rep.Herd = herdScenario(sc, w, cfg.herd) })
	try("pull", func(sc *scope) { rep.Pull = pullScenario(sc, w, cfg.pullRepeats) })
	try("blob", func(sc *scope) { rep.Blob = blobScenario(sc, w, cfg.rounds, cfg.out, &rep.Profiles, &rep.SHA256Rounds) })
	try("link", func(sc *scope) {
		var rates []float64
		for _, f := range strings.Split(cfg.linkRates, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || v <= 0 {
				sc.Fatalf("-link-rates: %q is not a rate in bit/s", f)
			}
			rates = append(rates, v)
		}
		rep.Link = linkScenario(sc, w, cfg.linkRounds, rates, &rep.SHA256Rounds)
	})
	try("store", func(sc *scope) { rep.Store = storeScenario(sc, w, cfg.pullRepeats) })

	rep.Checks = checkTargets(rep)
	if cfg.micro != "" {
		if b, err := os.ReadFile(cfg.micro); err == nil {
			rep.Micro = string(b)
		} else {
			rep.Failures = append(rep.Failures, "micro-benchmarks: "+err.Error())
		}
	}
	if cfg.scale != "" {
		if b, err := os.ReadFile(cfg.scale); err == nil {
			rep.Scale = string(b)
		} else {
			rep.Failures = append(rep.Failures, "scale section: "+err.Error())
		}
	}
	for _, f := range strings.Split(cfg.microCPU, ",") {
		if f == "" {
			continue
		}
		if b, err := os.ReadFile(f); err == nil {
			rep.MicroCPU = append(rep.MicroCPU, string(b))
		}
	}
	rep.Machine.LoadAfter = loadAvg()
	rep.Elapsed = time.Since(start).Round(time.Second).String()
	if err := writeReport(rep, cfg.out); err != nil {
		log.Error("writing report", "error", err)
		return 1
	}
	log.Info("report written", "dir", cfg.out, "elapsed", rep.Elapsed)
	if len(rep.Failures) > 0 {
		return 1
	}
	return 0
}

func writeReport(rep *Report, dir string) error {
	var md strings.Builder
	rep.markdown(&md)
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	for name, b := range map[string][]byte{
		"latest.md":   []byte(md.String()),
		"latest.json": append(js, '\n'),
		"latest.svg":  rep.chart().SVG(),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	fmt.Print(md.String())
	return nil
}

// rerender rebuilds the markdown and the chart from a saved report, so the presentation can change
// without measuring again. The figures and the machine stay those of the saved run.
func rerender(file, dir string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		return 1
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		fmt.Fprintln(os.Stderr, "report:", file, err)
		return 1
	}
	rep.Checks = checkTargets(&rep)
	if err := writeReport(&rep, dir); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		return 1
	}
	return 0
}
