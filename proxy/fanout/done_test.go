package fanout

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

type doneKey struct{}

// OnDone sees every download's outcome once: the whole verified blob, or the reason it failed,
// with the values of the request that started it.
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
			// Upstream holds its last byte until the client has its
			// headers, so the failure reaches a response under way
			// (aborted) rather than one still waiting for them (502).
			release := make(chan struct{})
			up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(len(tc.serve)))
				w.Write(tc.serve[:len(tc.serve)-1])
				w.(http.Flusher).Flush()
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
				w.Write(tc.serve[len(tc.serve)-1:])
			})
			px := httptestServer(t, func(w http.ResponseWriter, r *http.Request) {
				ctx := context.WithValue(r.Context(), doneKey{}, "first")
				g.Serve(w, r.WithContext(ctx), dgst, httpOpener(up.URL))
			})
			resp, err := http.Get(px.URL)
			close(release)
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("client: status %d err %v", resp.StatusCode, err)
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

// A failed download's OnDone returns before any response ends with the failure, so what it
// undoes (a corrupt cached copy the download read) is undone before a client that saw the
// failure can retry, and the retry does not read that copy again.
func TestOnDoneBeforeFailureIsPublished(t *testing.T) {
	blob, dgst := randomBlob(t, 41, 64<<10)
	bad := bytes.Clone(blob)
	bad[len(bad)/2] ^= 1
	clientDone := make(chan struct{})
	type outcome struct {
		err   error
		early bool // the client had its answer while OnDone ran
	}
	done := make(chan outcome, 2)
	g := newGroup(t, Options{OnDone: func(_ context.Context, _ digest.Digest, _ *io.SectionReader, err error) {
		// A response that learned of the failure before OnDone returned would end within
		// this second; one held until OnDone returns cannot.
		select {
		case <-clientDone:
			done <- outcome{err, true}
		case <-time.After(time.Second):
			done <- outcome{err, false}
		}
	}})
	open := func(context.Context, int64) (io.ReadCloser, int64, error) {
		return io.NopCloser(bytes.NewReader(bad)), int64(len(bad)), nil
	}
	px := proxyFor(t, g, dgst, open)
	go func() {
		defer close(clientDone)
		if resp, err := http.Get(px.URL); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	o := <-done
	if !errors.Is(o.err, ErrDigestMismatch) {
		t.Fatalf("OnDone: err %v, want %v", o.err, ErrDigestMismatch)
	}
	if o.early {
		t.Errorf("a response ended with the failure before OnDone returned")
	}
	<-clientDone
}
