package fanout

import (
	"bytes"
	"crypto/sha256"
	"testing"
)

// The pipelined hash is the hash of the buffers in the order handed over,
// however far the fetcher runs ahead, and never uses more than hashBufs
// buffers.
func TestPipeHasher(t *testing.T) {
	blob, _ := randomBlob(t, 70, 1<<20+77)
	want := sha256.Sum256(blob)
	for _, size := range []int{100, 4096, 256 << 10} {
		p := newPipeHasher(sha256.New(), size)
		for r := bytes.NewReader(blob); ; {
			b := p.buffer()
			n, _ := r.Read(b)
			if n == 0 {
				p.recycle(b)
				break
			}
			p.hash(b[:n])
			// Scribble on a buffer the hasher handed back, as the
			// next read does: it must not change what was hashed.
			if c := p.buffer(); len(c) > 0 {
				c[0] ^= 0xff
				p.recycle(c)
			}
		}
		if got := p.sum().Sum(nil); !bytes.Equal(got, want[:]) {
			t.Errorf("buffers of %d: hash %x, want %x", size, got, want)
		}
		if p.bufs > hashBufs {
			t.Errorf("buffers of %d: %d allocated, want at most %d", size, p.bufs, hashBufs)
		}
	}
}
