package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/spf13/pflag"

	"github.com/trustgate/trustgate/sigverify/binding"
)

// runTrustAccept records an operator's acceptance of a cosign or Notation tag binding that the
// binding rule refuses (a move to an older signed digest): the tag may then be served at that
// digest, which still has to verify. Run it against the trust_dir the server uses; the server
// reads bindings from disk on every tag resolution, so no restart is needed.
func runTrustAccept(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("trust accept", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "configuration file (YAML)")
	fs.String("trust-dir", "", "directory for verified trust state (overrides trust_dir; default ./trust)")
	const use = "usage: trustgate trust accept --config FILE REPOSITORY:TAG DIGEST"
	if err := fs.Parse(args); err != nil || fs.NArg() != 2 {
		fmt.Fprintln(stderr, use)
		return exitError(2)
	}
	repo, tag, ok := splitRepoTag(fs.Arg(0))
	if !ok {
		fmt.Fprintf(stderr, "trustgate: %q is not REPOSITORY:TAG (the full repository name, as in the decision log)\n%s\n", fs.Arg(0), use)
		return exitError(2)
	}
	d, err := digest.Parse(fs.Arg(1))
	if err != nil {
		fmt.Fprintf(stderr, "trustgate: %q is not a digest: %v\n%s\n", fs.Arg(1), err, use)
		return exitError(2)
	}
	cfg, err := loadConfig(*file, changedFlags(fs))
	if err != nil {
		return err
	}
	if cfg.TrustDir == memoryTrustDir {
		return fmt.Errorf("trust accept: trust_dir is %s: there are no stored bindings to change", memoryTrustDir)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := openTrustDir(cfg, log); err != nil {
		return err
	}
	store, err := newBindings(cfg, log)
	if err != nil {
		return err
	}
	b := binding.NewBinder(store, nil)
	prev, had, err := b.Get(ctx, repo, tag)
	if err != nil {
		return err
	}
	if _, err := b.Accept(ctx, repo, tag, d); err != nil {
		return err
	}
	if had {
		fmt.Fprintf(stdout, "%s:%s accepted at %s (was %s, %s %s)\n", repo, tag, d, prev.Digest, prev.TimeSource, prev.SignedAt.UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintf(stdout, "%s:%s accepted at %s (no binding before)\n", repo, tag, d)
	}
	return nil
}

// splitRepoTag splits a full repository name and tag ("host:port/path:tag").
func splitRepoTag(s string) (repo, tag string, ok bool) {
	i := strings.LastIndex(s, ":")
	if i < 0 || strings.Contains(s[i:], "/") {
		return "", "", false
	}
	repo, tag = s[:i], s[i+1:]
	if tag == "" || reference.TagRegexp.FindString(tag) != tag || repo == "" || reference.NameRegexp.FindString(repo) != repo {
		return "", "", false
	}
	return repo, tag, true
}
