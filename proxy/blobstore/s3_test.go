package blobstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"

	"github.com/trustgate/trustgate/internal/peers"
)

// The store's contract on distribution's s3 driver against a real S3 server (versitygw), with a
// blob large enough for a multipart upload and a multipart copy on the move (over 32 MiB).
func TestS3Driver(t *testing.T) {
	s3 := peers.StartVersityGW(t)
	var params map[string]map[string]any
	if err := json.Unmarshal([]byte(s3.StorageYAML()), &params); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := factory.Create(ctx, "s3", params["s3"])
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newStore(t, d, Options{MaxBytes: 50 << 20})
	big, bigDgst := blob(20, 40<<20+3)
	small, smallDgst := blob(21, 1000)
	for _, b := range [][]byte{big, small} {
		if err := s.Put(ctx, "docker.io", digestOf(b), section(b)); err != nil {
			t.Fatalf("Put %d bytes: %v", len(b), err)
		}
	}
	got, size, err := readAll(t, s, "docker.io", bigDgst, 0, int64(len(big)))
	if err != nil || size != int64(len(big)) || !bytes.Equal(got, big) {
		t.Fatalf("Open: err %v size %d equal %v", err, size, bytes.Equal(got, big))
	}
	got, _, err = readAll(t, s, "docker.io", bigDgst, 33<<20, -1)
	if err != nil || !bytes.Equal(got, big[33<<20:]) {
		t.Fatalf("Open at offset: err %v, %d bytes", err, len(got))
	}
	// Nothing is left under the upload prefix.
	if ents, err := os.ReadDir(s3.ObjectFile(uploadsDir[1:])); err == nil && len(ents) > 0 {
		t.Errorf("uploads left behind: %d", len(ents))
	}
	// The big blob is older: sweeping to 50 MiB keeps both; to 1 MiB deletes it.
	if res, err := s.Sweep(ctx); err != nil || res.Deleted != 0 || res.Bytes != int64(len(big)+len(small)) {
		t.Fatalf("sweep: %+v %v", res, err)
	}
	s.opts.MaxBytes = 1 << 20
	if res, err := s.Sweep(ctx); err != nil || res.Deleted != 1 || res.Blobs != 1 {
		t.Fatalf("sweep to 1 MiB: %+v %v", res, err)
	}
	if _, err := s.Stat(ctx, "docker.io", bigDgst); !errors.Is(err, ErrNotFound) {
		t.Errorf("big blob not evicted: %v", err)
	}
	if _, err := s.Stat(ctx, "docker.io", smallDgst); err != nil {
		t.Errorf("small blob evicted: %v", err)
	}

	// The server stopped: the store is unavailable, not an error of the blob's.
	if err := s3.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Open(ctx, "docker.io", smallDgst, 0, -1); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Open with the server stopped: %v, want ErrUnavailable", err)
	}
}
