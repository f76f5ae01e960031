package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/singleflight"
)

// maxManifestSize is containerd's limit; distribution refuses to store larger manifests, so
// anything bigger upstream is refused rather than buffered.
const maxManifestSize = 4 << 20

// manifestCacheBytes bounds the manifest bytes cached, whatever the entry count: 4096 entries of
// up to 4 MiB each, which anyone who can push to an off-mode repository can fill, would be 16 GiB.
const manifestCacheBytes = 256 << 20

// manifestAccept is sent upstream: every manifest type, so the upstream never picks a platform or
// converts on trustgate's behalf (the signed digest is of the bytes as pushed).
var manifestAccept = strings.Join([]string{
	v1.MediaTypeImageManifest, v1.MediaTypeImageIndex,
	mediaTypeDockerManifest, mediaTypeDockerManifestList,
	"*/*",
}, ", ")

// manifest is a manifest whose bytes were hashed by trustgate. Immutable once built.
type manifest struct {
	digest    digest.Digest
	mediaType string
	body      []byte
	children  []digest.Digest
}

var (
	errDigestMismatch = errors.New("upstream content does not match its digest")
	errTooLarge       = fmt.Errorf("manifest larger than %d bytes", maxManifestSize)
)

// manifestCache holds verified manifests by (upstream, repository, digest). Manifests by digest
// are immutable, so a hit needs no upstream request at all (and costs no Docker Hub pull). The key
// includes the repository so content seen in one repository is never served for another that
// doesn't have it (a private repository's manifest must not leak through a public one).
type manifestCache struct {
	lru      *lru.Cache[string, *manifest]
	bytes    atomic.Int64 // of the manifests in lru
	maxBytes int64
	flights  singleflight.Group
	// received counts manifest bytes read from an upstream (metrics).
	received func(upstream string, n int)
}

func newManifestCache(size int, received func(upstream string, n int)) (*manifestCache, error) {
	c := &manifestCache{received: received, maxBytes: manifestCacheBytes}
	var err error
	c.lru, err = lru.NewWithEvict(size, func(_ string, m *manifest) { c.bytes.Add(-int64(len(m.body))) })
	if err != nil {
		return nil, err
	}
	return c, nil
}

// add caches m under key, then drops the least recently used manifests while over maxBytes. A
// key's manifest never changes (it is a digest's bytes), so one already cached stays.
func (c *manifestCache) add(key string, m *manifest) {
	if ok, _ := c.lru.ContainsOrAdd(key, m); ok {
		return
	}
	c.bytes.Add(int64(len(m.body)))
	for c.bytes.Load() > c.maxBytes {
		if _, _, ok := c.lru.RemoveOldest(); !ok {
			return
		}
	}
}

func manifestKey(up *upstream, repo string, d digest.Digest) string {
	return up.cfg.Name + "\x00" + repo + "\x00" + d.String()
}

// byDigest returns the manifest d of repo, from the cache or fetched upstream by digest. Concurrent
// misses share one upstream fetch, which runs detached from any one client so a disconnect does
// not fail the others, and a miss while a fetch was finishing gets that fetch's manifest (the
// cache is consulted again inside the flight), so a cached digest is never fetched twice. The
// bytes are hashed before anything is cached or returned.
func (c *manifestCache) byDigest(ctx context.Context, up *upstream, repo string, d digest.Digest) (*manifest, bool, error) {
	key := manifestKey(up, repo, d)
	if m, ok := c.lru.Get(key); ok {
		return m, true, nil
	}
	ch := c.flights.DoChan(key, func() (any, error) {
		// The flight that stored it may have ended between the check above and DoChan.
		if m, ok := c.lru.Get(key); ok {
			return m, nil
		}
		fctx, cancel := up.withTimeout(context.WithoutCancel(ctx))
		defer cancel()
		m, err := c.fetch(fctx, up, repo, d.String(), d)
		if err != nil {
			return nil, err
		}
		c.add(key, m)
		return m, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, false, res.Err
		}
		return res.Val.(*manifest), false, nil
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

// byTag returns a tag's current manifest upstream (warn and off mode only). It first asks with a
// HEAD (which Docker Hub does not count as a pull) and, if the digest the upstream names is cached,
// serves the cached bytes: they hash to that digest, so the answer is self-consistent, and the
// tag→digest mapping is the upstream's word in these modes anyway. Otherwise it GETs the tag. The
// upstream's Docker-Content-Digest is never reported: the digest is the hash of the bytes served,
// and the result is cached under it so the by-digest requests that follow cost nothing.
//
// Concurrent requests for one tag share one such round trip, detached from any one client as in
// byDigest. A tag moves, so nothing about it is remembered once the flight ends: a request that
// starts later asks upstream again, and its flight re-checks the cache by the digest the HEAD
// names (filled by the flight before), so the manifest itself is fetched once.
func (c *manifestCache) byTag(ctx context.Context, up *upstream, repo, tag string) (*manifest, error) {
	ch := c.flights.DoChan("tag\x00"+up.cfg.Name+"\x00"+repo+"\x00"+tag, func() (any, error) {
		fctx, cancel := up.withTimeout(context.WithoutCancel(ctx))
		defer cancel()
		return c.fetchTag(fctx, up, repo, tag)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*manifest), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *manifestCache) fetchTag(ctx context.Context, up *upstream, repo, tag string) (*manifest, error) {
	resp, err := up.request(ctx, http.MethodHead, repo, http.Header{"Accept": {manifestAccept}}, "manifests", tag)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if d, err := digest.Parse(resp.Header.Get("Docker-Content-Digest")); err == nil {
		if m, ok := c.lru.Get(manifestKey(up, repo, d)); ok {
			return m, nil
		}
	}
	m, err := c.fetch(ctx, up, repo, tag, "")
	if err != nil {
		return nil, err
	}
	c.add(manifestKey(up, repo, m.digest), m)
	return m, nil
}

// fetch GETs /v2/<repo>/manifests/<ref> and, if want is set, refuses bytes that don't hash to it.
func (c *manifestCache) fetch(ctx context.Context, up *upstream, repo, ref string, want digest.Digest) (*manifest, error) {
	resp, err := up.request(ctx, http.MethodGet, repo, http.Header{"Accept": {manifestAccept}}, "manifests", ref)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.ContentLength > maxManifestSize {
		return nil, fmt.Errorf("%s@%s: upstream announces %d bytes: %w", repo, ref, resp.ContentLength, errTooLarge)
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(resp.Body, maxManifestSize+1))
	c.received(up.cfg.Name, int(n))
	if err != nil {
		return nil, &UpstreamError{Upstream: up.cfg.Name, Op: "GET manifests (reading the body)", Err: err}
	}
	if buf.Len() > maxManifestSize {
		return nil, fmt.Errorf("%s@%s: %w", repo, ref, errTooLarge)
	}
	body := buf.Bytes()
	alg := digest.Canonical
	if want != "" {
		alg = want.Algorithm()
		if !alg.Available() {
			return nil, fmt.Errorf("%s: digest algorithm %q is not supported", want, alg)
		}
	}
	got := alg.FromBytes(body)
	if want != "" && got != want {
		return nil, fmt.Errorf("%s@%s: upstream sent %d bytes hashing to %s: %w", repo, want, len(body), got, errDigestMismatch)
	}
	mt, children := describe(body, resp.Header.Get("Content-Type"))
	return &manifest{digest: got, mediaType: mt, body: body, children: children}, nil
}
