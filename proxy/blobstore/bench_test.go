package blobstore

import (
	"context"
	"crypto/sha256"
	"hash"
	"io"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
)

// nopHash is a hash.Hash that does nothing, for the "trusted as stored" baseline.
type nopHash struct{}

func (nopHash) Write(p []byte) (int, error) { return len(p), nil }
func (nopHash) Sum(b []byte) []byte         { return b }
func (nopHash) Reset()                      {}
func (nopHash) Size() int                   { return 0 }
func (nopHash) BlockSize() int              { return 64 }

// BenchmarkStoreRead is the cost of the choice to re-hash what is read from the store: one
// 64 MiB blob read from the filesystem driver (page cache) as stored, and hashed with SHA-256
// on the way, as the proxy's fan-out does.
func BenchmarkStoreRead(b *testing.B) {
	d := filesystem.New(filesystem.DriverParameters{RootDirectory: b.TempDir(), MaxThreads: 10})
	s, err := New(d, Options{})
	if err != nil {
		b.Fatal(err)
	}
	data, dgst := blob(30, 64<<20)
	ctx := context.Background()
	if err := s.Put(ctx, "docker.io", dgst, section(data)); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	for _, bc := range []struct {
		name string
		h    func() hash.Hash
	}{{"as-stored", func() hash.Hash { return nopHash{} }}, {"sha256", sha256.New}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				rc, _, err := s.Open(ctx, "docker.io", dgst, 0, int64(len(data)))
				if err != nil {
					b.Fatal(err)
				}
				h := bc.h()
				if _, err := io.CopyBuffer(h, rc, buf); err != nil {
					b.Fatal(err)
				}
				rc.Close()
			}
		})
	}
}
