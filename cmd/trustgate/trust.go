package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/distribution/reference"
	"github.com/spf13/pflag"

	"github.com/trustgate/trustgate/frozen"
	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/resolver"
)

const trustUsage = `usage: trustgate trust <command> [flags]

commands:
  freeze --config FILE --expires TIME [--out FILE] [--from server|trust-dir] PATTERN...
         export the verified Docker Content Trust bindings of the repositories matching
         PATTERN (policy pattern syntax) into a frozen trust file
  show   [--config FILE] [--file FILE]
         list what a frozen trust file holds and whether it matches the configuration's pin
  accept --config FILE REPOSITORY:TAG DIGEST
         let a cosign/Notation tag move back to an older signed digest (trust_accept.go)
`

// runTrust runs the trust state subcommands.
func runTrust(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, trustUsage)
		return exitError(2)
	}
	switch args[0] {
	case "freeze":
		return runFreeze(ctx, args[1:], stdout, stderr)
	case "show":
		return runShow(args[1:], stdout, stderr)
	case "accept":
		return runTrustAccept(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, trustUsage)
		return nil
	default:
		fmt.Fprintf(stderr, "trustgate trust: unknown command %q\n%s", args[0], trustUsage)
		return exitError(2)
	}
}

// Freeze sources, as --from spells them.
const (
	fromServer   = "server"
	fromTrustDir = "trust-dir"
)

// runFreeze writes the frozen trust file. Every matching repository is verified as serve
// verifies it (same configuration, pins, roles and trust_dir) or, with --from trust-dir, from
// trust_dir's cached metadata alone as of its last valid instant. Any repository that does not
// verify fails the whole freeze: no file is written.
func runFreeze(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("trust freeze", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "configuration file (YAML)")
	out := fs.String("out", "frozen-trust.json", "frozen trust file to write")
	expiresFlag := fs.String("expires", "", "when the frozen trust stops being served, RFC 3339 (required), e.g. 2027-06-30T00:00:00Z")
	from := fs.String("from", fromServer, "server: verify now against the notary server (as serve does); trust-dir: verify trust_dir's cached metadata only, as of its last valid instant")
	fs.String("trust-dir", "", "directory for verified trust state (overrides trust_dir)")
	if err := fs.Parse(args); err != nil || fs.NArg() == 0 {
		fmt.Fprint(stderr, trustUsage)
		return exitError(2)
	}
	now := time.Now().UTC().Truncate(time.Second)
	expires, err := time.Parse(time.RFC3339, *expiresFlag)
	switch {
	case *expiresFlag == "":
		return errors.New("trust freeze: --expires is required: frozen trust is served until then and never after")
	case err != nil:
		return fmt.Errorf("trust freeze: --expires: %w", err)
	case !expires.After(now):
		return fmt.Errorf("trust freeze: --expires %s is not in the future", expires.Format(time.RFC3339))
	case *from != fromServer && *from != fromTrustDir:
		return fmt.Errorf("trust freeze: --from %q is not %s or %s", *from, fromServer, fromTrustDir)
	}
	var pats []policy.Pattern
	for _, a := range fs.Args() {
		p, err := policy.CompilePattern(a)
		if err != nil {
			return fmt.Errorf("trust freeze: %w", err)
		}
		pats = append(pats, p)
	}
	cfg, err := loadConfig(*file, changedFlags(fs))
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	pol, err := newPolicy(cfg)
	if err != nil {
		return err
	}
	if *from == fromTrustDir && cfg.TrustDir == memoryTrustDir {
		return fmt.Errorf("trust freeze: --from %s needs a trust_dir, not %s", fromTrustDir, memoryTrustDir)
	}
	if err := openTrustDir(cfg, log); err != nil {
		return err
	}
	lim, err := newLimiter(cfg)
	if err != nil {
		return err
	}
	targets, err := freezeTargets(cfg, pats)
	if err != nil {
		return err
	}
	if len(targets) == 0 {
		return fmt.Errorf("trust freeze: no repository matches %s: a wildcard matches the repositories whose trust data is in trust_dir %s (those trustgate has verified); name a repository to freeze one it has not",
			strings.Join(fs.Args(), " "), cfg.TrustDir)
	}

	ff := &frozen.File{Version: frozen.FormatVersion, FrozenAt: now, Expires: expires, Patterns: fs.Args()}
	var failed []string
	for _, tg := range targets {
		repo, notes, err := freezeRepo(ctx, cfg, tg, pol, lim, log, *from, now)
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", tg.gun, err))
			continue
		}
		fmt.Fprintf(stdout, "%s: %d tags\n", repo.GUN, len(repo.Tags))
		for _, n := range notes {
			fmt.Fprintf(stdout, "  %s\n", n)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		for _, t := range repo.Tags {
			fmt.Fprintf(tw, "    %s\t%s\t%d bytes\t%s (version %d)\n", t.Tag, t.Digest, t.Size, t.Role, t.RoleVersion)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		ff.Repositories = append(ff.Repositories, repo)
	}
	if len(failed) > 0 {
		for _, f := range failed {
			fmt.Fprintf(stderr, "trustgate: trust freeze: %s\n", f)
		}
		return fmt.Errorf("trust freeze: %d of %d repositories did not verify; nothing was written", len(failed), len(targets))
	}
	path, err := filepath.Abs(*out)
	if err != nil {
		return err
	}
	sum, err := frozen.WriteFile(path, ff)
	if err != nil {
		return fmt.Errorf("trust freeze: %w", err)
	}
	tags := 0
	for _, r := range ff.Repositories {
		tags += len(r.Tags)
	}
	fmt.Fprintf(stdout, "\nfroze %d repositories, %d tags, into %s\n", len(ff.Repositories), tags, path)
	fmt.Fprintf(stdout, "expires %s: past it, these repositories are refused (503) until re-frozen\n", expires.Format(time.RFC3339))
	fmt.Fprintf(stdout, "sha256 %s\n\nPin it in the policy rules that cover these repositories:\n\n", sum)
	fmt.Fprintf(stdout, "    frozen: {file: %q, sha256: %s}\n", path, sum)
	return nil
}

// freezeTarget is one repository to freeze and the upstream whose trust server holds it.
type freezeTarget struct {
	gun string
	up  UpstreamConfig
}

// freezeTargets resolves the patterns to repositories: a pattern without a wildcard names its
// repository; one with a wildcard matches the repositories whose trust data trust_dir holds.
func freezeTargets(cfg *Config, pats []policy.Pattern) ([]freezeTarget, error) {
	found := map[string]UpstreamConfig{}
	for _, u := range cfg.Upstreams {
		under := func(gun string) bool { return strings.HasPrefix(gun, u.GUNPrefix+"/") }
		var cached []string
		if dir := upstreamDir(cfg, u.Name); dir != "" {
			var err error
			if cached, err = resolver.CachedGUNs(dir); err != nil {
				return nil, fmt.Errorf("trust freeze: reading trust_dir: %w", err)
			}
		}
		for _, p := range pats {
			if p.Literal() {
				if under(p.String()) {
					found[p.String()] = u
				}
				continue
			}
			for _, gun := range cached {
				if under(gun) && p.Match(gun) {
					found[gun] = u
				}
			}
		}
	}
	for _, p := range pats {
		if p.Literal() {
			if _, ok := found[p.String()]; !ok {
				return nil, fmt.Errorf("trust freeze: %s is under no upstream's gun_prefix", p)
			}
		}
	}
	var out []freezeTarget
	for gun, u := range found {
		out = append(out, freezeTarget{gun: gun, up: u})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].gun < out[j].gun })
	return out, nil
}

// freezeRepo verifies one repository and returns its bindings under the roles its policy rule
// accepts, and notes saying where they came from.
func freezeRepo(ctx context.Context, cfg *Config, tg freezeTarget, pol *policy.Policy, lim *resolver.Limiter,
	log *slog.Logger, from string, now time.Time) (frozen.Repository, []string, error) {
	roles := policy.DefaultRoles()
	if d := pol.Decide(tg.gun); d.Notary != nil {
		roles = d.Notary.Roles
	}
	rcfg, err := resolverConfig(cfg, tg.up, lim, log)
	if err != nil {
		return frozen.Repository{}, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeouts.Trust)
	defer cancel()
	repo := frozen.Repository{GUN: tg.gun, Server: tg.up.Notary.URL, Roles: roles}
	var st *resolver.State
	var notes []string
	if from == fromTrustDir {
		var at time.Time
		st, at, err = resolver.VerifyCached(ctx, rcfg, tg.gun)
		if err != nil {
			return frozen.Repository{}, nil, err
		}
		repo.Source, repo.VerifiedAt = frozen.SourceTrustDir, at
		if at.Before(now) {
			notes = append(notes, fmt.Sprintf("from trust_dir's cached metadata, verified as of %s, when it expired; the frozen expiry replaces its own",
				at.UTC().Format(time.RFC3339)))
		} else {
			notes = append(notes, "from trust_dir's cached metadata, verified now (still valid); the notary server was not contacted")
		}
	} else {
		rec := &contactRecorder{inner: rcfg.Transport, ok: map[string]bool{}}
		rcfg.Transport = rec
		c, err := resolver.NewClient(rcfg)
		if err != nil {
			return frozen.Repository{}, nil, err
		}
		if st, err = c.Update(ctx, tg.gun); err != nil {
			if errors.Is(err, resolver.ErrUnavailable) || errors.Is(err, resolver.ErrExpired) {
				err = fmt.Errorf("%w (if the notary server is gone for good, --from %s verifies trust_dir's cached metadata instead)", err, fromTrustDir)
			}
			return frozen.Repository{}, nil, err
		}
		repo.Source, repo.VerifiedAt = frozen.SourceNotary, now
		if rec.reached(tg.gun) {
			notes = append(notes, "verified now against the notary server "+tg.up.Notary.URL)
		} else {
			notes = append(notes, "verified now from trust_dir's cached timestamp, still valid: the notary server "+tg.up.Notary.URL+" did not answer")
		}
	}
	repo.TrustExpires = st.Expires()
	repo.RootKeys = st.RootKeyIDs()
	repo.Versions = st.Versions()
	notes = append(notes, fmt.Sprintf("roles %s; its Notary trust data expires %s", strings.Join(roles, ", "), st.Expires().UTC().Format(time.RFC3339)))
	for _, name := range st.Tags(roles) {
		if len(name) > 128 || reference.TagRegexp.FindString(name) != name {
			notes = append(notes, fmt.Sprintf("target %q skipped: not a tag a client can pull", name))
			continue
		}
		t, err := st.Lookup(name, roles)
		if err != nil {
			return frozen.Repository{}, nil, fmt.Errorf("tag %s: %w", name, err)
		}
		repo.Tags = append(repo.Tags, frozen.Tag{Tag: name, Digest: t.Digest, Size: t.Size, Role: t.Role,
			RoleVersion: repo.Versions[t.Role], Signers: t.Signers})
	}
	return repo, notes, nil
}

// contactRecorder notes which repositories' timestamp.json the notary server answered, so a
// freeze can say whether it verified against the server or a cached timestamp stood in.
type contactRecorder struct {
	inner http.RoundTripper
	mu    sync.Mutex
	ok    map[string]bool // request paths answered 200
}

func (c *contactRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.inner.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusOK {
		c.mu.Lock()
		c.ok[req.URL.Path] = true
		c.mu.Unlock()
	}
	return resp, err
}

func (c *contactRecorder) reached(gun string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range c.ok {
		if strings.HasSuffix(p, "/v2/"+gun+"/_trust/tuf/timestamp.json") {
			return true
		}
	}
	return false
}

// runShow lists the frozen trust files the configuration names (or --file) and what they hold.
// It exits 1 if a file would be refused by serve: unreadable, invalid, or not matching its pin.
func runShow(args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("trust show", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "configuration file (YAML); its policy names the frozen trust files and their sha256")
	only := fs.String("file", "", "show this frozen trust file (default: every one the configuration names)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || (*file == "" && *only == "") {
		fmt.Fprint(stderr, trustUsage)
		return exitError(2)
	}
	pins := map[string][]string{} // file → pinned sums
	var files []string
	if *file != "" {
		cfg, err := loadConfig(*file, nil)
		if err != nil {
			return err
		}
		pol, err := newPolicy(cfg)
		if err != nil {
			return err
		}
		for _, r := range pol.Frozen() {
			if !slices.Contains(files, r.File) {
				files = append(files, r.File)
			}
			pins[r.File] = append(pins[r.File], r.SHA256)
		}
	}
	if *only != "" {
		files = []string{*only}
	}
	if len(files) == 0 {
		fmt.Fprintln(stdout, "the configuration names no frozen trust")
		return nil
	}
	now := time.Now()
	refused := 0
	for i, path := range files {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		ok := showFile(stdout, path, pins[path], *file != "", now)
		if !ok {
			refused++
		}
	}
	if refused > 0 {
		return exitError(1)
	}
	return nil
}

// showFile prints one file; it reports whether serve would accept it.
func showFile(w io.Writer, path string, pins []string, haveConfig bool, now time.Time) bool {
	fmt.Fprintf(w, "%s\n", path)
	data, err := os.ReadFile(path)
	if err == nil && len(data) > frozen.MaxFileSize {
		err = fmt.Errorf("larger than %d bytes", frozen.MaxFileSize)
	}
	if err != nil {
		fmt.Fprintf(w, "  REFUSED: %v\n", err)
		return false
	}
	sum := frozen.Sum(data)
	accepted := true
	switch {
	case !haveConfig:
		fmt.Fprintf(w, "  sha256 %s (no configuration given to compare with)\n", sum)
	case len(pins) == 0:
		fmt.Fprintf(w, "  sha256 %s: not named by the configuration's policy\n", sum)
	default:
		for _, p := range pins {
			if p == sum {
				fmt.Fprintf(w, "  sha256 %s: matches the configuration\n", sum)
			} else {
				fmt.Fprintf(w, "  REFUSED: sha256 %s does not match the configuration's pin %s; serve will not start with it\n", sum, p)
				accepted = false
			}
		}
	}
	f, err := frozen.Parse(data)
	if err != nil {
		fmt.Fprintf(w, "  REFUSED: %v\n", err)
		return false
	}
	state := "valid for " + f.Expires.Sub(now).Round(time.Minute).String()
	if !now.Before(f.Expires) {
		state = "EXPIRED: its repositories are refused (503)"
	}
	fmt.Fprintf(w, "  frozen at %s, expires %s (%s)\n", f.FrozenAt.Format(time.RFC3339), f.Expires.Format(time.RFC3339), state)
	fmt.Fprintf(w, "  patterns %s\n\n", strings.Join(f.Patterns, " "))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  REPOSITORY\tTAG\tDIGEST\tROLE\tSOURCE\tVERIFIED AT")
	for _, r := range f.Repositories {
		if len(r.Tags) == 0 {
			fmt.Fprintf(tw, "  %s\t(none)\t\t\t%s\t%s\n", r.GUN, r.Source, r.VerifiedAt.Format(time.RFC3339))
		}
		for _, t := range r.Tags {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", r.GUN, t.Tag, t.Digest, t.Role, r.Source, r.VerifiedAt.Format(time.RFC3339))
		}
	}
	_ = tw.Flush()
	return accepted
}

// loadFrozen loads every frozen trust file the policy names, each checked against its pinned
// sha256: serve does not start with a file that is missing, changed or invalid.
func loadFrozen(pol *policy.Policy, log *slog.Logger) (map[policy.FrozenRule]*frozen.File, error) {
	out := map[policy.FrozenRule]*frozen.File{}
	for _, r := range pol.Frozen() {
		f, err := frozen.Load(r.File, r.SHA256)
		if err != nil {
			return nil, fmt.Errorf("policy: frozen trust: %w", err)
		}
		out[r] = f
		tags := 0
		for _, repo := range f.Repositories {
			tags += len(repo.Tags)
		}
		attrs := []any{"file", r.File, "repositories", len(f.Repositories), "tags", tags,
			"frozen_at", f.FrozenAt.Format(time.RFC3339), "expires", f.Expires.Format(time.RFC3339)}
		if time.Now().Before(f.Expires) {
			log.Info("frozen trust loaded", attrs...)
		} else {
			log.Warn("frozen trust loaded, but it has expired: its repositories are refused (503)", attrs...)
		}
	}
	return out, nil
}

// resolveFrozen answers `trustgate resolve` for a repository a frozen trust file holds, as serve
// would: from the file, never from Notary. done is false when no frozen trust covers gun.
func resolveFrozen(dec policy.Decision, gun, tag string, roles []string, asJSON bool, stdout, stderr io.Writer) (done bool, err error) {
	if dec.Frozen == nil {
		return false, nil
	}
	f, err := frozen.Load(dec.Frozen.File, dec.Frozen.SHA256)
	if err != nil {
		return true, fmt.Errorf("policy: frozen trust: %w", err)
	}
	repo, ok := f.Repository(gun)
	if !ok {
		return false, nil
	}
	source := f.Describe(dec.Frozen.File)
	t, ok := repo.Lookup(tag)
	switch {
	case !time.Now().Before(f.Expires):
		fmt.Fprintf(stderr, "trustgate: %s:%s: %v: %s\n", gun, tag, frozen.ErrExpired, source)
		return true, exitError(1)
	case !ok || !slices.Contains(roles, t.Role):
		fmt.Fprintf(stderr, "trustgate: %s:%s: %v: not in the frozen trust; %s\n", gun, tag, resolver.ErrTagNotSigned, source)
		return true, exitError(1)
	}
	expires := f.Expires.UTC().Format(time.RFC3339)
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return true, enc.Encode(map[string]any{
			"gun": gun, "tag": t.Tag, "digest": t.Digest.String(), "size": t.Size,
			"role": t.Role, "signers": t.Signers, "expires": expires,
			"root_keys": repo.RootKeys, "verifier": "frozen", "source": source,
		})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "GUN\t%s\n", gun)
	fmt.Fprintf(tw, "Tag\t%s\n", t.Tag)
	fmt.Fprintf(tw, "Digest\t%s\n", t.Digest)
	fmt.Fprintf(tw, "Size\t%d\n", t.Size)
	fmt.Fprintf(tw, "Role\t%s\n", t.Role)
	fmt.Fprintf(tw, "Signers\t%s\n", strings.Join(t.Signers, ", "))
	fmt.Fprintf(tw, "Expires\t%s\n", expires)
	fmt.Fprintf(tw, "Root keys\t%s\n", strings.Join(repo.RootKeys, ", "))
	fmt.Fprintf(tw, "Source\t%s\n", source)
	return true, tw.Flush()
}
