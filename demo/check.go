package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ErrCheck is the error Check returns when trustgate answered any sample wrongly.
var ErrCheck = errors.New("self-check failed")

// Check pulls every sample through the registry at gate (host:port, plain HTTP) as a client
// would and writes one line per sample to w, "ok" or "FAIL" with what was expected and what
// came back:
//
//   - demo/hello:signed: the manifest is the signed digest, its config and layers download;
//   - demo/hello:unsigned: refused with 404 (MANIFEST_UNKNOWN);
//   - demo/hello:moved: the signed digest, although the registry's tag now points elsewhere;
//   - demo/multi:signed: the signed index, and each child manifest with its layers by digest.
//
// It returns an error wrapping ErrCheck if any sample failed, or ctx's error.
func (e *Env) Check(ctx context.Context, gate string, w io.Writer) error {
	if _, err := name.NewRegistry(gate, name.Insecure); err != nil {
		return fmt.Errorf("demo: trustgate address %q: %w", gate, err)
	}
	// A transport of its own, whose idle connections are closed when the check ends: one left
	// open would hold up trustgate's graceful shutdown.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(tr)}
	checks := []struct {
		s   Sample
		run func() (string, error)
	}{
		{e.Signed, func() (string, error) { return pullSigned(e.Signed, gate, opts) }},
		{e.Unsigned, func() (string, error) { return pullRefused(e.Unsigned, gate, opts) }},
		{e.Moved, func() (string, error) {
			up, err := remote.Head(mustTag(e.Moved.Ref(e.registry.addr)), opts...)
			if err != nil {
				return "", fmt.Errorf("asking the registry directly: %w", err)
			}
			if up.Digest == e.Moved.Signed {
				return "", fmt.Errorf("the registry's tag was not moved (still %s)", up.Digest)
			}
			msg, err := pullSigned(e.Moved, gate, opts)
			return msg + "; the registry's tag now points at " + short(up.Digest), err
		}},
		{e.Multi, func() (string, error) { return pullIndex(e.Multi, gate, opts) }},
	}
	failed := 0
	for _, c := range checks {
		if err := ctx.Err(); err != nil {
			return err
		}
		msg, err := c.run()
		ref := c.s.Repo + ":" + c.s.Tag
		if err != nil {
			failed++
			fmt.Fprintf(w, "  FAIL  %-20s %v\n", ref, err)
			continue
		}
		fmt.Fprintf(w, "  ok    %-20s %s\n", ref, msg)
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d of %d samples answered wrongly", ErrCheck, failed, len(checks))
	}
	return nil
}

// pullSigned pulls s by tag through gate and wants the signed manifest, its config and layers.
func pullSigned(s Sample, gate string, opts []remote.Option) (string, error) {
	img, err := remote.Image(mustTag(s.Ref(gate)), opts...)
	if err != nil {
		return "", fmt.Errorf("want the signed digest %s, got: %w", s.Signed, err)
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	if d != s.Signed {
		return "", fmt.Errorf("served %s, want the signed digest %s", d, s.Signed)
	}
	n, err := pullContent(img)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("served at its signed digest %s (manifest, config, %d layer(s))", d, n), nil
}

// pullContent downloads img's config and layers; remote layers check their digest as read.
func pullContent(img v1.Image) (int, error) {
	if _, err := img.RawConfigFile(); err != nil {
		return 0, fmt.Errorf("config: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return 0, err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return 0, fmt.Errorf("layer: %w", err)
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return 0, fmt.Errorf("layer: %w", err)
		}
	}
	return len(layers), nil
}

// pullRefused wants trustgate to refuse s's tag with 404.
func pullRefused(s Sample, gate string, opts []remote.Option) (string, error) {
	desc, err := remote.Get(mustTag(s.Ref(gate)), opts...)
	if err == nil {
		return "", fmt.Errorf("served %s, want 404: the tag is not signed", desc.Digest)
	}
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
		return "", fmt.Errorf("want 404, got: %w", err)
	}
	var why []string
	for _, d := range terr.Errors {
		why = append(why, string(d.Code)+": "+d.Message)
	}
	return "refused with 404 " + strings.Join(why, "; "), nil
}

// pullIndex wants the signed index and every child manifest and its layers, by digest.
func pullIndex(s Sample, gate string, opts []remote.Option) (string, error) {
	idx, err := remote.Index(mustTag(s.Ref(gate)), opts...)
	if err != nil {
		return "", fmt.Errorf("want the signed index %s, got: %w", s.Signed, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return "", err
	}
	if d != s.Signed {
		return "", fmt.Errorf("served %s, want the signed digest %s", d, s.Signed)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return "", err
	}
	var platforms []string
	for _, c := range m.Manifests {
		ref := gate + "/" + s.Repo + "@" + c.Digest.String()
		dr, err := name.NewDigest(ref, name.Insecure)
		if err != nil {
			return "", err
		}
		img, err := remote.Image(dr, opts...)
		if err != nil {
			return "", fmt.Errorf("child %s: %w", c.Digest, err)
		}
		if _, err := pullContent(img); err != nil {
			return "", fmt.Errorf("child %s: %w", c.Digest, err)
		}
		if c.Platform != nil {
			platforms = append(platforms, c.Platform.String())
		}
	}
	if len(platforms) != len(s.Platforms) {
		return "", fmt.Errorf("index lists %d platforms (%s), want %s", len(platforms), strings.Join(platforms, ", "), strings.Join(s.Platforms, ", "))
	}
	return fmt.Sprintf("served at its signed digest %s; children %s pulled by digest", d, strings.Join(platforms, ", ")), nil
}

// mustTag parses a reference the demo built from a registry host Check validated and a fixed
// repository and tag.
func mustTag(ref string) name.Tag {
	t, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		panic("demo: " + err.Error())
	}
	return t
}

func short(h v1.Hash) string { return h.Algorithm + ":" + h.Hex[:12] }
