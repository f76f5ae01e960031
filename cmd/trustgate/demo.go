package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/trustgate/trustgate/demo"
	"github.com/trustgate/trustgate/policy"
)

// runDemo is `trustgate demo`: trustgate in front of an embedded registry and trust server with
// signed and unsigned sample images (package demo), all in this process and offline. It runs
// the self-check, prints commands to try and serves until ctx ends; with --check it exits after
// the self-check with its status. The mirror is started by serve, from a Config, exactly as
// `trustgate serve` starts it. Everything the demo makes lives in memory or in one temporary
// directory, removed on exit.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("demo", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", configDefaults()["listen"].(string), "address trustgate serves on, host:port (port 0: any free port)")
	checkOnly := fs.Bool("check", false, "run the self-check, then exit with its status (for tests and CI)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "trustgate demo: unexpected arguments %q\n", fs.Args())
		return exitError(2)
	}
	began := time.Now()
	dir, err := os.MkdirTemp("", "trustgate-demo-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer os.RemoveAll(dir)

	env, err := demo.Start(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // Ctrl-C while starting
		}
		return fmt.Errorf("demo: %w", err)
	}
	defer env.Close()
	cfg, err := demoConfig(env, *listen, filepath.Join(dir, "trust"), *logLevel)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	interrupted := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		started  bool
		checkErr error
		checked  = make(chan struct{})
	)
	ready := func(addr net.Addr) {
		started = true
		gate := clientAddr(addr)
		go func() {
			defer close(checked)
			fmt.Fprintf(stdout, "trustgate demo: ready in %s. trustgate on %s, trust state in %s (removed on exit).\n\n",
				time.Since(began).Round(time.Millisecond), gate, cfg.TrustDir)
			fmt.Fprintf(stdout, "Self-check, pulling through trustgate:\n")
			if checkErr = env.Check(ctx, gate, stdout); checkErr != nil {
				cancel()
				return
			}
			fmt.Fprintln(stdout, "\nSelf-check passed.")
			if *checkOnly {
				cancel()
				return
			}
			fmt.Fprintln(stdout)
			env.WriteCommands(stdout, gate, filepath.Join(dir, "notary-cli"))
			fmt.Fprintln(stdout, "Ctrl-C stops the demo.")
		}()
	}
	err = serve(ctx, cfg, stderr, serveOptions{ready: ready, source: "trustgate demo"})
	cancel()
	if started {
		<-checked
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("demo: %w (choose another address with --listen, e.g. --listen 127.0.0.1:0 for any free port)", err)
	}
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	switch {
	case checkErr == nil:
	case interrupted.Err() != nil && !*checkOnly:
		// Ctrl-C before the self-check finished: the user stopped the demo, nothing failed.
	default:
		return fmt.Errorf("demo: %w", checkErr)
	}
	return nil
}

// demoConfig is the configuration the demo's trustgate runs with: one upstream, docker.io,
// served by the embedded registry and trust server, each demo repository's root pinned to the
// key the demo generated (no trust on first use), and the default policy enforcing. It goes
// through parseConfig, so every other key has the default `serve` has, and TRUSTGATE_*
// environment variables apply except to the keys the demo sets.
func demoConfig(env *demo.Env, listen, trustDir, logLevel string) (*Config, error) {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	var pins []string
	for gun, id := range env.RootKeyIDs {
		pins = append(pins, fmt.Sprintf("%s: [%s]", q(gun), q(id)))
	}
	sort.Strings(pins)
	var b strings.Builder
	fmt.Fprintf(&b, "log: {level: %s, format: text}\n", q(logLevel))
	fmt.Fprintf(&b, "upstreams:\n  - name: %s\n    url: %s\n    gun_prefix: %s\n    docker_hub: true\n",
		q(demo.GUNPrefix), q(env.RegistryURL), q(demo.GUNPrefix))
	fmt.Fprintf(&b, "    notary:\n      url: %s\n      trust_pinning: {certs: {%s}, disable_tofu: true}\n",
		q(env.NotaryURL), strings.Join(pins, ", "))
	cfg, err := parseConfig([]byte(b.String()), nil)
	if err != nil {
		return nil, err
	}
	cfg.Listen = listen
	cfg.TrustDir = trustDir
	cfg.DefaultUpstream = demo.GUNPrefix
	cfg.Policy = policy.Config{Default: policy.RuleConfig{Mode: policy.Enforce}}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// clientAddr is the host:port a client on this machine dials for addr: the loopback address
// when addr is a wildcard (0.0.0.0, ::).
func clientAddr(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
