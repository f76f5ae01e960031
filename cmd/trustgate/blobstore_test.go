package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/trustgate/trustgate/proxy/blobstore"
)

func TestBlobStoreConfig(t *testing.T) {
	dir := t.TempDir()
	// One registry for every case, as for the configurations a reload builds one after another.
	reg := prometheus.NewRegistry()
	for _, tc := range []struct {
		name, yaml string
		err        string // "" = valid
		driver     string // the store built from it; "" = none
	}{
		{name: "none", yaml: ""},
		{name: "filesystem", yaml: "blob_store:\n  storage:\n    filesystem:\n      rootdirectory: " + dir + "\n", driver: "filesystem"},
		{name: "s3", yaml: "blob_store:\n  max_bytes: 1000\n  storage:\n    s3:\n      region: us-east-1\n      bucket: b\n      regionendpoint: http://127.0.0.1:9\n      forcepathstyle: true\n      accesskey: a\n      secretkey: s\n", driver: "s3aws"},
		{name: "two drivers", yaml: "blob_store:\n  storage:\n    filesystem: {}\n    inmemory: {}\n", err: "blob_store.storage: must name exactly one storage driver"},
		{name: "registry-only key", yaml: "blob_store:\n  storage:\n    inmemory: {}\n    delete: {enabled: true}\n", err: "blob_store.storage.delete"},
		{name: "negative max_bytes", yaml: "blob_store:\n  max_bytes: -1\n", err: "blob_store.max_bytes"},
		{name: "sweep too often", yaml: "blob_store:\n  sweep_interval: 1s\n", err: "blob_store.sweep_interval"},
		{name: "unknown key", yaml: "blob_store:\n  max_bytez: 1\n", err: "max_bytez"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig([]byte(validConfig+tc.yaml), nil)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one naming %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b := cfg.BlobStore; b.MaxAge != 720*time.Hour || b.SweepInterval != 10*time.Minute || b.Timeout != 10*time.Second {
				t.Errorf("defaults: %+v", b)
			}
			var st *blobstore.Store
			for range 2 { // built twice: a reload to the same configuration
				if st, err = newBlobStore(context.Background(), cfg.BlobStore, slog.New(slog.DiscardHandler), reg); err != nil {
					t.Fatal(err)
				}
			}
			switch {
			case tc.driver == "" && st != nil:
				t.Errorf("a store without configuration: %s", st.Driver())
			case tc.driver != "" && (st == nil || st.Driver() != tc.driver):
				t.Errorf("store = %v, want driver %s", st, tc.driver)
			}
		})
	}
}

func TestBlobStoreDriverNotLinked(t *testing.T) {
	cfg, err := parseConfig([]byte(validConfig+"blob_store:\n  storage:\n    floppy: {}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = newBlobStore(context.Background(), cfg.BlobStore, slog.New(slog.DiscardHandler), nil)
	if err == nil || !strings.Contains(err.Error(), `driver "floppy" is not in this binary`) {
		t.Fatalf("err = %v", err)
	}
}

// downDriver is a store that cannot be reached.
type downDriver struct{ storagedriver.StorageDriver }

func (downDriver) Stat(context.Context, string) (storagedriver.FileInfo, error) {
	return nil, errors.New("dial tcp 127.0.0.1:9: connect: connection refused")
}

// /readyz shows a failing blob store, as an optional check: the mirror stays ready and serves
// blobs from upstream.
func TestBlobStoreReadiness(t *testing.T) {
	st, err := blobstore.New(downDriver{inmemory.New()}, blobstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := &built{store: st}
	if cs := b.storeCheck(); len(cs) != 1 || !cs[0].OK || !cs[0].Optional {
		t.Fatalf("before any failure: %+v", cs)
	}
	if _, err := st.Stat(context.Background(), "docker.io", digest.FromString("x")); !errors.Is(err, blobstore.ErrUnavailable) {
		t.Fatalf("Stat: %v", err)
	}
	cs := b.storeCheck()
	if len(cs) != 1 || cs[0].OK || !cs[0].Optional || !strings.Contains(cs[0].Detail, "connection refused") || cs[0].Name != "blob_store inmemory" {
		t.Fatalf("store down: %+v", cs)
	}
	if (&built{}).storeCheck() != nil {
		t.Errorf("a check without a store")
	}
	// health.require_blob_store makes the same failure a required check.
	req := &built{store: st, cfg: &Config{Health: HealthConfig{RequireBlobStore: true}}}
	if cs := req.storeCheck(); len(cs) != 1 || cs[0].OK || cs[0].Optional {
		t.Fatalf("required store down: %+v", cs)
	}
}
