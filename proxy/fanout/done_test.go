package fanout

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"
)

type doneKey struct{}

// OnDone sees every download's outcome once, after its responses: the whole verified blob, or
// the reason it failed, with the values of the request that started it.
func TestOnDone(t *testing.T) {
	blob, dgst := randomBlob(t, 40, 1<<20+7)
	bad := bytes.Clone(blob)
	bad[len(bad)-1] ^= 1
	for _, tc := range []struct {
		name    string
		serve   []byte
		wantErr error
	}{
		{"verified", blob, nil},
		{"digest mismatch", bad, ErrDigestMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type outcome struct {
				tag  any
				dgst digest.Digest
				got  []byte
				err  error
			}
			done := make(chan outcome, 2)
			g := newGroup(t, Options{OnDone: func(ctx context.Context, d digest.Digest, b *io.SectionReader, err error) {
				o := outcome{tag: ctx.Value(doneKey{}), dgst: d, err: err}
				if b != nil {
					o.got, _ = io.ReadAll(b)
				}
				done <- o
			}})
			up := newUpstream(t, honest(tc.serve))
			px := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
				ctx := context.WithValue(r.Context(), doneKey{}, "first")
				g.Serve(w, r.WithContext(ctx), dgst, httpOpener(up.URL))
			})
			res := get(t, px.URL, nil)
			if (res.err == nil) != (tc.wantErr == nil) {
				t.Fatalf("client: status %d err %v", res.status, res.err)
			}
			o := <-done
			if o.tag != "first" || o.dgst != dgst {
				t.Errorf("OnDone ctx value %v, digest %s", o.tag, o.dgst)
			}
			if tc.wantErr == nil && (o.err != nil || !bytes.Equal(o.got, blob)) {
				t.Errorf("OnDone: err %v, %d bytes (want the blob's %d)", o.err, len(o.got), len(blob))
			}
			if tc.wantErr != nil && (!errors.Is(o.err, tc.wantErr) || o.got != nil) {
				t.Errorf("OnDone: err %v, blob %v; want %v and no blob", o.err, o.got != nil, tc.wantErr)
			}
			select {
			case o := <-done:
				t.Errorf("OnDone called twice: %+v", o.err)
			default:
			}
		})
	}
}
