// Package oracle answers "would docker (DOCKER_CONTENT_TRUST=1) accept <GUN>:<tag>, and at
// which digest?" by running the real notary v0.7.0 client library exactly as docker CLI v28
// does. It lives in its own module so that notary and its 2017-era dependencies never enter
// trustgate's build; tests use it as a differential oracle for trustgate's resolver.
package oracle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"

	"github.com/theupdateframework/notary/client"
	"github.com/theupdateframework/notary/storage"
	"github.com/theupdateframework/notary/trustpinning"
	"github.com/theupdateframework/notary/tuf/data"
)

// Pinning mirrors notary's trust_pinning configuration.
type Pinning struct {
	// Certs maps a GUN (or "prefix*") to allowed root certificate key IDs.
	Certs map[string][]string
	// CA maps a GUN prefix to a PEM bundle (contents, not a path) the root leaf must chain to.
	CA          map[string]string
	DisableTOFU bool
}

// Result is the oracle's verdict.
type Result struct {
	Accepted bool
	Digest   string // "sha256:<hex>" when accepted
	Size     int64
	Role     string
	// NotSigned: trust data loaded fine but no accepted role signs the tag (docker: "No valid
	// trust data for <tag>" / "No trust data for <tag>"). Err then says which.
	NotSigned bool
	// NoTrustData: the repository has no trust data (root.json 404).
	NoTrustData bool
	// Panicked: the notary library crashed on the input (a refusal, as for docker).
	Panicked bool
	Err      error
}

// Client keeps notary's metadata cache across Resolve calls, so rollback and rotation behave
// as for a docker client that pulled before.
type Client struct {
	cache     *storage.MemoryStore
	transport http.RoundTripper
	pinning   Pinning
}

// New returns a client with an empty cache. transport nil = http.DefaultTransport.
func New(transport http.RoundTripper, pinning Pinning) *Client {
	if transport == nil {
		transport = http.DefaultTransport
	}
	return &Client{cache: storage.NewMemoryStore(nil), transport: transport, pinning: pinning}
}

// Resolve is a one-shot lookup with a fresh cache and TOFU.
func Resolve(ctx context.Context, serverURL, gun, tag string) Result {
	return New(nil, Pinning{}).Resolve(ctx, serverURL, gun, tag)
}

// Resolve loads the trust data of gun from serverURL (notary checks expiry against the real
// clock) and looks tag up with docker's rule. ctx bounds nothing inside notary (it has no
// context support); it is checked before starting.
func (c *Client) Resolve(ctx context.Context, serverURL, gun, tag string) (res Result) {
	// notary v0.7.0 dereferences nil on some malformed metadata (e.g. a timestamp of
	// {"signatures":[{}]} with no "signed"); docker would crash, i.e. the pull fails.
	defer func() {
		if p := recover(); p != nil {
			res = Result{Panicked: true, Err: fmt.Errorf("notary panicked: %v", p)}
		}
	}()
	if err := ctx.Err(); err != nil {
		return Result{Err: err}
	}
	remote, err := storage.NewNotaryServerStore(serverURL, data.GUN(gun), c.transport)
	if err != nil {
		return Result{Err: fmt.Errorf("remote store: %w", err)}
	}
	pin, cleanup, err := c.trustPin()
	if err != nil {
		return Result{Err: err}
	}
	defer cleanup()
	repo, _, err := client.LoadTUFRepo(client.TUFLoadOptions{
		GUN:          data.GUN(gun),
		TrustPinning: pin,
		Cache:        c.cache,
		RemoteStore:  remote,
	})
	if err != nil {
		var notExist client.ErrRepositoryNotExist
		return Result{NoTrustData: errors.As(err, &notExist), Err: fmt.Errorf("load trust data: %w", err)}
	}
	// docker's rule: targets/releases first, then targets, and only those two may sign.
	roles := []data.RoleName{"targets/releases", data.CanonicalTargetsRole}
	t, err := client.NewReadOnly(repo).GetTargetByName(tag, roles...)
	if err != nil {
		return Result{NotSigned: true, Err: err}
	}
	// docker/cli cli/command/image/trust.go: only these roles count.
	if t.Role != roles[0] && t.Role != roles[1] {
		return Result{NotSigned: true, Role: t.Role.String(), Err: fmt.Errorf("no trust data for %s (docker accepts only targets/releases and targets)", tag)}
	}
	sum, ok := t.Hashes["sha256"]
	if !ok {
		return Result{Role: t.Role.String(), Err: errors.New("no valid hash, expecting sha256")}
	}
	// docker then pulls name@sha256:<hex>; reference.WithDigest refuses a digest of the wrong
	// length, so the pull fails rather than resolving.
	if len(sum) != sha256.Size {
		return Result{Role: t.Role.String(), Err: errors.New("invalid checksum digest length")}
	}
	return Result{Accepted: true, Digest: "sha256:" + hex.EncodeToString(sum), Size: t.Length, Role: t.Role.String()}
}

// trustPin turns CA bundle contents into the file paths notary wants.
func (c *Client) trustPin() (trustpinning.TrustPinConfig, func(), error) {
	pin := trustpinning.TrustPinConfig{Certs: c.pinning.Certs, DisableTOFU: c.pinning.DisableTOFU}
	if len(c.pinning.CA) == 0 {
		return pin, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "oracle-ca-")
	if err != nil {
		return pin, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	pin.CA = map[string]string{}
	i := 0
	for prefix, bundle := range c.pinning.CA {
		p := filepath.Join(dir, fmt.Sprintf("ca%d.pem", i))
		i++
		if err := os.WriteFile(p, []byte(bundle), 0o600); err != nil {
			cleanup()
			return pin, nil, err
		}
		pin.CA[prefix] = p
	}
	return pin, cleanup, nil
}

// Tags lists the tags docker's `pull --all-tags` would pull successfully: notary's
// ListTargets over targets/releases then targets, keeping only entries whose role is one of
// those two (a tag first found in another delegation is dropped, not looked up again) and
// that carry a 32-byte sha256. Sorted.
func (c *Client) Tags(ctx context.Context, serverURL, gun string) (tags []string, err error) {
	defer func() {
		if p := recover(); p != nil {
			tags, err = nil, fmt.Errorf("notary panicked: %v", p)
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	remote, err := storage.NewNotaryServerStore(serverURL, data.GUN(gun), c.transport)
	if err != nil {
		return nil, fmt.Errorf("remote store: %w", err)
	}
	pin, cleanup, err := c.trustPin()
	if err != nil {
		return nil, err
	}
	defer cleanup()
	repo, _, err := client.LoadTUFRepo(client.TUFLoadOptions{
		GUN: data.GUN(gun), TrustPinning: pin, Cache: c.cache, RemoteStore: remote,
	})
	if err != nil {
		return nil, fmt.Errorf("load trust data: %w", err)
	}
	roles := []data.RoleName{"targets/releases", data.CanonicalTargetsRole}
	list, err := client.NewReadOnly(repo).ListTargets(roles...)
	if err != nil {
		return nil, err
	}
	for _, t := range list {
		// docker's convertTarget skips targets without sha256 ("Skipping target for ...");
		// one of the wrong length it would list, then fail to pull by digest.
		if len(t.Hashes["sha256"]) != sha256.Size {
			continue
		}
		if t.Role == roles[0] || t.Role == roles[1] {
			tags = append(tags, t.Name)
		}
	}
	sort.Strings(tags)
	return tags, nil
}
