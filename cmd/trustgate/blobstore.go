package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustgate/trustgate/proxy/blobstore"

	// The storage drivers a blob store may use register themselves with factory. gcs costs the
	// binary about 27 MB (gRPC and Google's API client) and is linked only with -tags gcs
	// (blobstore_gcs.go); s3 adds about 10 MB, azure 4 MB, filesystem and inmemory nothing
	// worth counting.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/azure"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"
)

// newBlobStore opens the configured blob store, or returns nil when none is configured. Creating
// a driver checks its parameters; it does not need the store to be reachable (a store that is
// down is skipped at run time, not a reason to refuse to start).
func newBlobStore(ctx context.Context, cfg BlobStoreConfig, log *slog.Logger, reg prometheus.Registerer) (*blobstore.Store, error) {
	if len(cfg.Storage) == 0 {
		return nil, nil
	}
	var name string
	var params map[string]any
	for k, v := range cfg.Storage { // validated: exactly one driver
		name, params = k, nil
		if m, ok := v.(map[string]any); ok {
			params = m
		}
	}
	d, err := factory.Create(ctx, name, params)
	if err != nil {
		var unknown factory.InvalidStorageDriverError
		if errors.As(err, &unknown) {
			return nil, fmt.Errorf("blob_store.storage: driver %q is not in this binary (filesystem, s3, azure, inmemory; gcs needs go build -tags gcs)", name)
		}
		return nil, fmt.Errorf("blob_store.storage.%s: %w", name, err)
	}
	st, err := blobstore.New(d, blobstore.Options{
		MaxBytes:      cfg.MaxBytes,
		MaxAge:        cfg.MaxAge,
		SweepInterval: cfg.SweepInterval,
		Timeout:       cfg.Timeout,
		Logger:        log,
		Metrics:       reg,
	})
	if err != nil {
		return nil, err
	}
	log.Info("blob store", "driver", name, "max_bytes", cfg.MaxBytes, "max_age", cfg.MaxAge, "sweep_interval", cfg.SweepInterval)
	return st, nil
}

// storeCheck is the blob store's line of /readyz. It is optional unless
// health.require_blob_store is set: the store is a cache, and a
// replica whose store fails serves every blob from upstream, so it stays ready; the line says
// why blobs come from upstream.
func (b *built) storeCheck() []check {
	if b.store == nil {
		return nil
	}
	up, detail := b.store.Status()
	return []check{{Name: "blob_store " + b.store.Driver(), Kind: "blob_store", OK: up, Detail: detail,
		Optional: b.cfg == nil || !b.cfg.Health.RequireBlobStore}}
}
