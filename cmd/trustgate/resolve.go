package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/distribution/reference"
	"github.com/spf13/pflag"

	"github.com/trustgate/trustgate/policy"
)

// runResolve prints what `docker trust inspect` would: the signed digest of one tag. It uses the
// same configuration, trust pins and trust_dir as serve, so it shows exactly what serve decides.
func runResolve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("resolve", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "configuration file (YAML)")
	asJSON := fs.Bool("json", false, "print JSON")
	fs.String("trust-dir", "", "directory for verified trust state, or :memory: (overrides trust_dir; default ./trust)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: trustgate resolve --config FILE [--json] IMAGE:TAG")
		return exitError(2)
	}
	cfg, err := loadConfig(*file, changedFlags(fs))
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)

	up, gun, tag, err := pickUpstream(cfg, fs.Arg(0))
	if err != nil {
		return err
	}
	pol, err := newPolicy(cfg)
	if err != nil {
		return err
	}
	roles := policy.DefaultRoles()
	if d := pol.Decide(gun); d.Notary != nil {
		roles = d.Notary.Roles
	}
	if done, err := resolveFrozen(pol.Decide(gun), gun, tag, roles, *asJSON, stdout, stderr); done {
		return err // a frozen trust file holds the repository: serve answers from it, not Notary
	}
	if err := openTrustDir(cfg, log); err != nil {
		return err
	}
	lim, err := newLimiter(cfg)
	if err != nil {
		return err
	}
	rc, err := newResolver(cfg, up, lim, log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := rc.Update(ctx, gun)
	if err != nil {
		fmt.Fprintf(stderr, "trustgate: %s:%s: %v\n", gun, tag, err)
		return exitError(1)
	}
	t, err := st.Lookup(tag, roles)
	if err != nil {
		fmt.Fprintf(stderr, "trustgate: %s:%s: %v\n", gun, tag, err)
		return exitError(1)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{
			"gun": t.GUN, "tag": t.Tag, "digest": t.Digest.String(), "size": t.Size,
			"role": t.Role, "signers": t.Signers, "expires": t.Expires.UTC().Format(time.RFC3339),
			"root_keys": st.RootKeyIDs(),
		})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "GUN\t%s\n", t.GUN)
	fmt.Fprintf(tw, "Tag\t%s\n", t.Tag)
	fmt.Fprintf(tw, "Digest\t%s\n", t.Digest)
	fmt.Fprintf(tw, "Size\t%d\n", t.Size)
	fmt.Fprintf(tw, "Role\t%s\n", t.Role)
	fmt.Fprintf(tw, "Signers\t%s\n", strings.Join(t.Signers, ", "))
	fmt.Fprintf(tw, "Expires\t%s\n", t.Expires.UTC().Format(time.RFC3339))
	fmt.Fprintf(tw, "Root keys\t%s\n", strings.Join(st.RootKeyIDs(), ", "))
	return tw.Flush()
}

// pickUpstream maps an image reference to the upstream whose trust server holds it: the
// reference's registry host must equal an upstream's gun_prefix host (or its name). A reference
// without a tag means "latest", as docker does.
func pickUpstream(cfg *Config, ref string) (UpstreamConfig, string, string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return UpstreamConfig{}, "", "", fmt.Errorf("%q: %w", ref, err)
	}
	if _, ok := named.(reference.Digested); ok {
		return UpstreamConfig{}, "", "", fmt.Errorf("%q: a digest reference is already pinned; give a tag", ref)
	}
	tag := "latest"
	if t, ok := named.(reference.Tagged); ok {
		tag = t.Tag()
	}
	gun := named.Name()
	domain := reference.Domain(named)
	for _, u := range cfg.Upstreams {
		if domain == u.GUNPrefix || strings.HasPrefix(gun, u.GUNPrefix+"/") || domain == u.Name {
			if domain == u.Name && u.GUNPrefix != domain {
				gun = u.GUNPrefix + "/" + reference.Path(named)
			}
			return u, gun, tag, nil
		}
	}
	var names []string
	for _, u := range cfg.Upstreams {
		names = append(names, u.GUNPrefix)
	}
	return UpstreamConfig{}, "", "", fmt.Errorf("%q: registry %s is not a configured upstream (have %s)", ref, domain, strings.Join(names, ", "))
}
