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
	"github.com/trustgate/trustgate/proxy"
	"github.com/trustgate/trustgate/resolver"
)

// runResolve prints what `docker trust inspect` would: the signed digest of one tag. It uses the
// same configuration, trust pins and trust_dir as serve, so it shows exactly what serve decides.
func runResolve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := pflag.NewFlagSet("resolve", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "configuration file (YAML)")
	asJSON := fs.Bool("json", false, "print JSON")
	fs.String("trust-dir", "", fmt.Sprintf("directory for verified trust state, or %s (overrides trust_dir; default %s)", memoryTrustDir, defaultTrustDir))
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: trustgate resolve --config FILE [--json] IMAGE:TAG")
		return exitError(2)
	}
	cfg, err := loadConfig(*file, changedFlags(fs))
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	b, err := build(cfg, log, nil)
	if err != nil {
		return err
	}
	defer b.close()
	up, gun, tag, err := b.locate(fs.Arg(0))
	if err != nil {
		return err
	}
	roles := policy.DefaultRoles()
	if d := b.pol.Decide(gun); d.Notary != nil {
		roles = d.Notary.Roles
	}
	if done, err := resolveFrozen(b.pol.Decide(gun), gun, tag, roles, *asJSON, stdout, stderr); done {
		return err // a frozen trust file holds the repository: serve answers from it, not Notary
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ts, err := up.Trust.State(ctx, gun)
	if err != nil {
		fmt.Fprintf(stderr, "trustgate: %s:%s: %v\n", gun, tag, err)
		return exitError(1)
	}
	st, ok := ts.(*resolver.State)
	if !ok {
		return fmt.Errorf("upstreams[%s]: trust state %T is not Notary's", up.Name, ts)
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

// locate maps an image reference to the upstream whose trust server holds it and its GUN, as
// serve maps a request for it: the reference's registry host names an upstream (as containerd's
// ns= does), or matches an upstream's gun_prefix. A reference without a tag means "latest", as
// docker does.
func (b *built) locate(ref string) (*proxy.Upstream, string, string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, "", "", fmt.Errorf("%q: %w", ref, err)
	}
	if _, ok := named.(reference.Digested); ok {
		return nil, "", "", fmt.Errorf("%q: a digest reference is already pinned; give a tag", ref)
	}
	tag := "latest"
	if t, ok := named.(reference.Tagged); ok {
		tag = t.Tag()
	}
	full, domain, path := named.Name(), reference.Domain(named), reference.Path(named)
	var names []string
	for _, u := range b.ups {
		names = append(names, u.Name)
		name := ""
		switch {
		case domain == u.Name:
			name = path
		case strings.HasPrefix(full, u.GUNPrefix+"/"):
			name = strings.TrimPrefix(full, u.GUNPrefix+"/")
		default:
			continue
		}
		_, _, gun, err := b.srv.Locate(u.Name, name)
		if err != nil {
			return nil, "", "", fmt.Errorf("%q: %w", ref, err)
		}
		return u, gun, tag, nil
	}
	return nil, "", "", fmt.Errorf("%q: registry %s is not a configured upstream (have %s)", ref, domain, strings.Join(names, ", "))
}
