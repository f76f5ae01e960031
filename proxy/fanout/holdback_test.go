package fanout

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// eofGate is an upstream body that has delivered every byte but withholds
// EOF (and so the verdict) until released.
type eofGate struct {
	r       io.Reader
	release chan struct{}
	once    sync.Once
}

func (g *eofGate) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if err == io.EOF {
		<-g.release
	}
	return n, err
}

func (g *eofGate) Close() error { g.once.Do(func() { close(g.release) }); return nil }

type countingWriter struct{ n atomic.Int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

// Clients receive every byte but the last while the download is still
// unverified; the last one only after verification, never on a mismatch.
func TestHoldBackFinalByte(t *testing.T) {
	blob, dgst := randomBlob(t, 30, 1<<20+123)
	wrong := bytes.Clone(blob)
	wrong[len(wrong)-1] ^= 1
	for _, tc := range []struct {
		name   string
		body   []byte
		wantOK bool
	}{
		{"honest", blob, true},
		{"wrong last byte", wrong, false},
	} {
		for _, wk := range writerKinds {
			t.Run(tc.name+"/"+wk.name, func(t *testing.T) {
				gate := &eofGate{r: bytes.NewReader(tc.body), release: make(chan struct{})}
				g := newGroup(t, Options{})
				px := proxyWith(t, wk, g, dgst, func(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
					return gate, int64(len(tc.body)), nil
				})
				resp, err := http.Get(px.URL)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var got countingWriter
				done := make(chan error, 1)
				go func() { _, err := io.Copy(&got, resp.Body); done <- err }()

				size := int64(len(blob))
				waitFor(t, "client to receive all but the last byte", func() bool { return got.n.Load() >= size-1 })
				select {
				case err := <-done:
					t.Fatalf("response finished before verification: %d bytes, err %v", got.n.Load(), err)
				default:
				}
				if n := got.n.Load(); n != size-1 {
					t.Fatalf("client has %d bytes before verification, want %d", n, size-1)
				}
				gate.Close()
				err = <-done
				if tc.wantOK != (err == nil) || tc.wantOK != (got.n.Load() == size) {
					t.Fatalf("after verdict: %d of %d bytes, err %v; want ok=%v", got.n.Load(), size, err, tc.wantOK)
				}
			})
		}
	}
}
