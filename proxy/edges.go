package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/opencontainers/go-digest"
)

// Edges are the children of one manifest: what becomes pullable once the manifest is. The
// manifest graph is content-addressed, so a manifest's edges never change and are safe to keep
// for ever and to share between repositories, processes and replicas.
type Edges struct {
	// Manifests are the entries of an index: manifests whose own edges are walked.
	Manifests []digest.Digest
	// Blobs are the config and layers of an image manifest (and of artifact manifests).
	Blobs []digest.Digest
	// Sizes[i] is the size of Blobs[i] as the manifest's descriptor states it, -1 where it states
	// none. Sizes is nil for records stored before sizes were recorded (version 1): their blobs'
	// sizes are unknown, as in warn and off modes.
	Sizes []int64
}

// size returns the size the manifest states for Blobs[i].
func (e Edges) size(i int) (int64, bool) {
	if i >= len(e.Sizes) || e.Sizes[i] < 0 {
		return 0, false
	}
	return e.Sizes[i], true
}

// EdgeStore keeps manifest edges. Edges are recorded only from manifest bytes trustgate hashed
// itself, keyed by that hash; a store is a cache of facts about immutable content, so an
// implementation may drop records at any time (trustgate fetches the manifest again), but must
// never return edges for a digest other than the one recorded.
//
// The file implementation lives under trust_dir; a shared implementation (Redis) for several
// replicas stores the same encoded records (EncodeEdges) under the digest.
type EdgeStore interface {
	// Edges returns d's recorded edges; ok is false when none are recorded.
	Edges(ctx context.Context, d digest.Digest) (e Edges, ok bool, err error)
	// Record stores d's edges.
	Record(ctx context.Context, d digest.Digest, e Edges) error
}

// Limits of one edge record. A manifest is at most maxManifestSize bytes and a descriptor takes
// well over 64 of them, so no real manifest comes near.
const (
	maxEdgeChildren    = 1 << 16
	maxEdgeRecordBytes = 8 << 20
	// edgeRecordVersion 2 added sizes; version 1 records (no sizes) still decode.
	edgeRecordVersion = 2
)

// edgeRecord is the stored form: JSON, one record per manifest.
type edgeRecord struct {
	V         int             `json:"v"`
	Digest    digest.Digest   `json:"digest"`
	Manifests []digest.Digest `json:"manifests,omitempty"`
	Blobs     []digest.Digest `json:"blobs,omitempty"`
	Sizes     []int64         `json:"sizes,omitempty"` // version 2: one per blob
}

// EncodeEdges is the record format every EdgeStore implementation stores.
func EncodeEdges(d digest.Digest, e Edges) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	if len(e.Manifests)+len(e.Blobs) > maxEdgeChildren {
		return nil, fmt.Errorf("manifest %s has %d children, more than %d", d, len(e.Manifests)+len(e.Blobs), maxEdgeChildren)
	}
	sizes := e.Sizes
	switch {
	case sizes == nil && len(e.Blobs) > 0:
		// Edges of a version 1 record: every size unknown.
		sizes = slices.Repeat([]int64{-1}, len(e.Blobs))
	case len(sizes) != len(e.Blobs):
		return nil, fmt.Errorf("manifest %s: %d sizes for %d blobs", d, len(sizes), len(e.Blobs))
	}
	return json.Marshal(edgeRecord{V: edgeRecordVersion, Digest: d, Manifests: e.Manifests, Blobs: e.Blobs, Sizes: sizes})
}

// DecodeEdges parses a record stored for want. A record that is malformed, of another version,
// too large, or about another digest is an error, never partial edges.
func DecodeEdges(want digest.Digest, b []byte) (Edges, error) {
	if err := want.Validate(); err != nil {
		return Edges{}, err
	}
	if len(b) > maxEdgeRecordBytes {
		return Edges{}, fmt.Errorf("edge record of %d bytes exceeds %d", len(b), maxEdgeRecordBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r edgeRecord
	if err := dec.Decode(&r); err != nil {
		return Edges{}, fmt.Errorf("edge record: %w", err)
	}
	if dec.More() {
		return Edges{}, errors.New("edge record: trailing data")
	}
	switch {
	case r.V != 1 && r.V != edgeRecordVersion:
		return Edges{}, fmt.Errorf("edge record version %d, want 1 or %d", r.V, edgeRecordVersion)
	case r.V == 1 && r.Sizes != nil:
		return Edges{}, errors.New("edge record version 1 with sizes")
	case r.V == edgeRecordVersion && len(r.Sizes) != len(r.Blobs):
		return Edges{}, fmt.Errorf("edge record lists %d sizes for %d blobs", len(r.Sizes), len(r.Blobs))
	case r.Digest != want:
		return Edges{}, fmt.Errorf("edge record is for %q, not %s", r.Digest, want)
	case len(r.Manifests)+len(r.Blobs) > maxEdgeChildren:
		return Edges{}, fmt.Errorf("edge record lists more than %d children", maxEdgeChildren)
	}
	for _, list := range [][]digest.Digest{r.Manifests, r.Blobs} {
		for _, c := range list {
			if err := c.Validate(); err != nil {
				return Edges{}, fmt.Errorf("edge record: child %q: %w", c, err)
			}
		}
	}
	for _, n := range r.Sizes {
		if n < -1 {
			return Edges{}, fmt.Errorf("edge record: size %d", n)
		}
	}
	return Edges{Manifests: r.Manifests, Blobs: r.Blobs, Sizes: r.Sizes}, nil
}

// edgeCache is an in-memory LRU in front of an optional persistent EdgeStore. Errors of the
// store behind it are logged and otherwise ignored: a missing edge only costs a manifest fetch.
type edgeCache struct {
	mem      *lru.Cache[digest.Digest, Edges]
	next     EdgeStore // nil = memory only
	log      *slog.Logger
	fullOnce sync.Once // a full store is reported once, not per manifest
}

func newEdgeCache(size int, next EdgeStore, log *slog.Logger) (*edgeCache, error) {
	mem, err := lru.New[digest.Digest, Edges](size)
	if err != nil {
		return nil, err
	}
	return &edgeCache{mem: mem, next: next, log: log}, nil
}

func (c *edgeCache) get(ctx context.Context, d digest.Digest) (Edges, bool) {
	if e, ok := c.mem.Get(d); ok {
		return e, true
	}
	if c.next == nil {
		return Edges{}, false
	}
	e, ok, err := c.next.Edges(ctx, d)
	if err != nil {
		c.log.Warn("reading manifest edges", "digest", d, "err", err)
		return Edges{}, false
	}
	if ok {
		c.mem.Add(d, e)
	}
	return e, ok
}

func (c *edgeCache) record(ctx context.Context, d digest.Digest, e Edges) {
	if c.mem.Contains(d) {
		return
	}
	c.mem.Add(d, e)
	if c.next == nil {
		return
	}
	err := c.next.Record(ctx, d, e)
	switch {
	case errors.Is(err, errEdgeStoreFull):
		c.fullOnce.Do(func() {
			c.log.Warn("manifest edge store is full; new edges are kept in memory only", "err", err)
		})
	case err != nil:
		c.log.Warn("recording manifest edges", "digest", d, "err", err)
	}
}
