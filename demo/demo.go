// Package demo is the world `trustgate demo` runs trustgate in, all in one process and offline:
// distribution's registry with in-memory storage as the upstream, a Notary-compatible trust
// server (package notaryserve) with keys generated at start, and sample images pushed and
// signed in-process — one signed tag, one unsigned, one signed tag later moved upstream to
// other content, and a signed multi-platform index. Check then pulls through trustgate and
// says whether it served what the signatures bind.
package demo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/trustgate/trustgate/notaryserve"
)

// GUNPrefix is the name prefix the demo's registry stands in for: repository demo/hello has
// the GUN docker.io/demo/hello, as on Docker Hub, so docker's registry-mirrors and containerd's
// docker.io hosts.toml route to trustgate unchanged.
const GUNPrefix = "docker.io"

// Sample is one image the demo pushed and what trustgate must answer for its tag.
type Sample struct {
	Repo string // repository in the registry, e.g. "demo/hello"
	Tag  string
	// Signed is the digest the tag is signed to; zero if the tag is not signed.
	Signed v1.Hash
	// Upstream is the digest the registry's tag points at; for a tag moved after signing it
	// differs from Signed.
	Upstream v1.Hash
	// Platforms lists an index's children by platform, in index order; nil for an image.
	Platforms []string
}

// Ref is the sample's reference through the registry host (host:port).
func (s Sample) Ref(host string) string { return host + "/" + s.Repo + ":" + s.Tag }

// GUN is the sample repository's Notary GUN.
func (s Sample) GUN() string { return GUNPrefix + "/" + s.Repo }

// Env is a started demo world. Close stops it.
type Env struct {
	// RegistryURL and NotaryURL are the embedded upstream registry and trust server
	// (http://127.0.0.1:<port>).
	RegistryURL, NotaryURL string
	// RootKeyIDs maps each signed GUN to its root certificate's key ID, for trust pinning.
	RootKeyIDs map[string]string
	// The samples.
	Signed, Unsigned, Moved, Multi Sample

	app      interface{ Shutdown() error }
	registry *loopback
	notary   *loopback
}

// RegistryHost is RegistryURL without its scheme.
func (e *Env) RegistryHost() string { return e.registry.addr }

// Start builds the demo world: it starts the registry and the trust server on loopback ports
// from the kernel, pushes the samples and signs them. On error, whatever was started is
// stopped.
func Start(ctx context.Context) (_ *Env, err error) {
	e := &Env{RootKeyIDs: map[string]string{}}
	defer func() {
		if err != nil {
			_ = e.Close()
		}
	}()
	app, err := newRegistry(context.WithoutCancel(ctx))
	if err != nil {
		return nil, err
	}
	e.app = app
	if e.registry, err = listenLoopback(app); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	trust := notaryserve.NewServer()
	if e.notary, err = listenLoopback(trust); err != nil {
		return nil, fmt.Errorf("trust server: %w", err)
	}
	e.RegistryURL, e.NotaryURL = e.registry.URL(), e.notary.URL()
	if err := e.populate(ctx, trust); err != nil {
		return nil, err
	}
	return e, nil
}

// populate pushes and signs the samples:
//
//	demo/hello:signed    an image, signed
//	demo/hello:unsigned  another image, not signed
//	demo/hello:moved     signed to one image; then the registry's tag is pushed over with another
//	demo/multi:signed    a linux/amd64 + linux/arm64 manifest list, signed
func (e *Env) populate(ctx context.Context, trust *notaryserve.Server) error {
	now := time.Now()
	hello, err := notaryserve.NewRepo(GUNPrefix+"/demo/hello", now)
	if err != nil {
		return err
	}
	multi, err := notaryserve.NewRepo(GUNPrefix+"/demo/multi", now)
	if err != nil {
		return err
	}
	host := hostPlatform()
	push := func(s *Sample, text string, sign *notaryserve.Repo) error {
		img, err := helloImage(text, host)
		if err != nil {
			return fmt.Errorf("sample %s:%s: %w", s.Repo, s.Tag, err)
		}
		d, size, err := e.write(ctx, s, img)
		if err != nil {
			return err
		}
		s.Upstream = d
		if sign != nil {
			s.Signed = d
			return sign.SetTarget(s.Tag, notaryserve.Target{Digest: digestOf(d), Size: size})
		}
		return nil
	}
	e.Signed = Sample{Repo: "demo/hello", Tag: "signed"}
	e.Unsigned = Sample{Repo: "demo/hello", Tag: "unsigned"}
	e.Moved = Sample{Repo: "demo/hello", Tag: "moved"}
	e.Multi = Sample{Repo: "demo/multi", Tag: "signed"}
	if err := push(&e.Signed, "hello from trustgate's demo: this image is signed", hello); err != nil {
		return err
	}
	if err := push(&e.Unsigned, "hello from trustgate's demo: this image is NOT signed", nil); err != nil {
		return err
	}
	if err := push(&e.Moved, "hello from trustgate's demo: this is what demo/hello:moved was signed to", hello); err != nil {
		return err
	}
	signed := e.Moved.Signed
	if err := push(&e.Moved, "hello from trustgate's demo: the registry's tag was moved here after signing", nil); err != nil {
		return err
	}
	e.Moved.Signed = signed

	idx, platforms, err := multiIndex()
	if err != nil {
		return fmt.Errorf("sample %s:%s: %w", e.Multi.Repo, e.Multi.Tag, err)
	}
	ref, err := name.NewTag(e.Multi.Ref(e.registry.addr), name.Insecure)
	if err != nil {
		return err
	}
	if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return err
	}
	e.Multi.Signed, e.Multi.Upstream = d, d
	for _, p := range platforms {
		e.Multi.Platforms = append(e.Multi.Platforms, p.String())
	}
	if err := multi.SetTarget(e.Multi.Tag, notaryserve.Target{Digest: digestOf(d), Size: int64(len(raw))}); err != nil {
		return err
	}

	for _, r := range []*notaryserve.Repo{hello, multi} {
		files, err := r.Publish(now)
		if err != nil {
			return err
		}
		trust.Publish(r.GUN(), files)
		e.RootKeyIDs[r.GUN()] = r.RootKeyID()
	}
	return nil
}

// write pushes img to the sample's tag and returns the manifest's digest and size.
func (e *Env) write(ctx context.Context, s *Sample, img v1.Image) (v1.Hash, int64, error) {
	ref, err := name.NewTag(s.Ref(e.registry.addr), name.Insecure)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	if err := remote.Write(ref, img, remote.WithContext(ctx)); err != nil {
		return v1.Hash{}, 0, fmt.Errorf("push %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return v1.Hash{}, 0, err
	}
	size, err := img.Size()
	return d, size, err
}

// Close stops the trust server and the registry, closing their connections, and releases the
// registry's memory. Stop trustgate first.
func (e *Env) Close() error {
	var errs []error
	for _, l := range []*loopback{e.notary, e.registry} {
		if l != nil {
			errs = append(errs, l.close())
		}
	}
	if e.app != nil {
		errs = append(errs, e.app.Shutdown())
	}
	return errors.Join(errs...)
}

func digestOf(h v1.Hash) digest.Digest { return digest.Digest(h.String()) }
