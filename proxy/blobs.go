package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/gorilla/mux"
	"github.com/opencontainers/go-digest"
	"github.com/trustgate/trustgate/proxy/fanout"
)

// handleBlob serves GET and HEAD /v2/<name>/blobs/<digest>, if the verdict allows the digest.
// GET streams through the fan-out (one upstream download per digest, verified, Range served from
// the spool). HEAD is answered from a verified spool kept on disk when there is one, else with an
// upstream HEAD; it never downloads the blob.
func (s *Server) handleBlob(w http.ResponseWriter, r *http.Request) {
	vars := mux.Vars(r)
	rec := &decisionRecord{start: time.Now(), method: r.Method}
	ref, err := s.locate(r, vars["name"])
	if err != nil {
		writeError(w, r, err)
		return
	}
	rec.upstream, rec.repo = ref.up.cfg.Name, ref.gun
	d, err := digest.Parse(vars["digest"])
	if err != nil {
		writeError(w, r, newError(errcode.ErrorCodeDigestInvalid, "invalid digest %s: %v", echo(vars["digest"]), err))
		return
	}
	rec.digest = d
	subj := subject{gun: ref.gun, upstream: ref.up.cfg.Name, kind: kindBlob, digest: d}
	v := s.judge(r.Context(), ref, subj)
	announce(w.Header(), rec, v)
	// Logged however the request ends, an aborted stream (a panic) included.
	defer func() {
		p := recover()
		if p != nil && rec.decision != decisionError {
			rec.decision, rec.reason = decisionError, "response aborted"
		}
		s.logDecision(r.Context(), rec, slog.LevelDebug)
		if p != nil {
			panic(p)
		}
	}()
	switch {
	case v.err != nil:
		writeError(w, r, v.err)
	case r.Method == http.MethodHead:
		if err := s.headBlob(w, r, ref, d, v); err != nil {
			rec.decision, rec.reason = decisionError, blobFailure(err)
			writeError(w, r, clientError(err, subj))
		}
	default:
		ctx := context.WithValue(r.Context(), blobRequestKey{}, &blobRequest{subj: subj, rec: rec})
		f := &blobFetch{namespace: ref.up.cfg.Name, size: -1}
		if v.sized {
			ctx = fanout.WithSize(ctx, v.size)
			f.size = v.size
		}
		ctx = context.WithValue(ctx, blobFetchKey{}, f)
		ref.up.blobs.Serve(w, r.WithContext(ctx), d, s.blobOpener(ref, d))
	}
}

// blobRequestKey carries a blob request's subject and decision record to the fan-out's OnError
// and OnAbort, which run on the request's goroutine within Serve.
type blobRequestKey struct{}

type blobRequest struct {
	subj subject
	rec  *decisionRecord
}

// failed records a blob download's failure as the request's decision.
func (b *blobRequest) failed(err error) {
	b.rec.decision, b.rec.reason = decisionError, blobFailure(err)
}

// blobFailure words a failed blob download for the decision log: its kind, then the error.
func blobFailure(err error) string {
	var ue *UpstreamError
	kind := "upstream failed"
	switch {
	case errors.Is(err, fanout.ErrDigestMismatch):
		kind = "digest mismatch"
	case errors.Is(err, fanout.ErrSizeMismatch), errors.Is(err, fanout.ErrTooLong), errors.Is(err, fanout.ErrTruncated):
		kind = "size mismatch"
	case errors.Is(err, fanout.ErrIdle), errors.Is(err, context.DeadlineExceeded):
		kind = "upstream timeout"
	case errors.Is(err, fanout.ErrSpool):
		kind = "spool unavailable"
	case errors.Is(err, fanout.ErrClosed):
		kind = "shutting down"
	case errors.As(err, &ue) && ue.StatusCode != 0:
		kind = "upstream answered " + strconv.Itoa(ue.StatusCode)
	case errors.As(err, &ue):
		kind = "upstream unreachable"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF):
		kind = "upstream reset"
	}
	return kind + ": " + err.Error()
}

// headBlob answers a HEAD from a verified spool on disk, else from the blob store, else from an
// upstream HEAD; a stored or upstream length must be the one the verified descriptors state when
// they state one.
func (s *Server) headBlob(w http.ResponseWriter, r *http.Request, ref repoRef, d digest.Digest, v verdict) error {
	size, ok := ref.up.blobs.Verified(d)
	if !ok && s.store != nil {
		if n, err := s.store.Stat(r.Context(), ref.up.cfg.Name, d); err == nil && (!v.sized || n == v.size) {
			size, ok = n, true
		}
	}
	if !ok {
		ctx, cancel := ref.up.withTimeout(r.Context())
		defer cancel()
		resp, err := ref.up.request(ctx, http.MethodHead, ref.repo, nil, "blobs", d.String())
		if err != nil {
			return err
		}
		resp.Body.Close()
		switch {
		case v.sized && resp.ContentLength != v.size:
			return &UpstreamError{Upstream: ref.up.cfg.Name, Op: "HEAD blobs", Err: fmt.Errorf("%w: upstream announces %d bytes, the verified size is %d", fanout.ErrSizeMismatch, resp.ContentLength, v.size)}
		case resp.ContentLength < 0:
			return &UpstreamError{Upstream: ref.up.cfg.Name, Op: "HEAD blobs", Err: fmt.Errorf("%w: no Content-Length", errUnusable)}
		}
		size = resp.ContentLength
	}
	h := w.Header()
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Accept-Ranges", "bytes")
	h.Set("Etag", `"`+d.String()+`"`)
	w.WriteHeader(http.StatusOK)
	return nil
}

// blobOpener is how the fan-out reaches the blob: the blob store first, then upstream. It runs under the fan-out's detached context,
// so only the wait for response headers is bounded here; the body is bounded by the fan-out's
// idle timeout (a large layer may legitimately take many minutes).
func (s *Server) blobOpener(ref repoRef, d digest.Digest) fanout.Opener {
	return func(ctx context.Context, offset int64) (io.ReadCloser, int64, error) {
		if body, size, ok := s.openStored(ctx, d, offset); ok {
			return body, size, nil
		}
		if f := fetchOf(ctx); f != nil {
			f.fromUpstream = true
		}
		var hdr http.Header
		if offset > 0 {
			hdr = http.Header{"Range": {fmt.Sprintf("bytes=%d-", offset)}}
		}
		hctx, cancel := context.WithCancelCause(ctx)
		timer := time.AfterFunc(ref.up.timeout, func() {
			cancel(fmt.Errorf("upstream %s: no response headers within %s", ref.up.cfg.Name, ref.up.timeout))
		})
		resp, err := ref.up.request(hctx, http.MethodGet, ref.repo, hdr, "blobs", d.String())
		if !timer.Stop() || err != nil {
			cancel(nil)
			if err == nil {
				resp.Body.Close()
				err = &UpstreamError{Upstream: ref.up.cfg.Name, Op: "GET blobs", Err: fmt.Errorf("%w: no response headers within %s", context.DeadlineExceeded, ref.up.timeout)}
			}
			return nil, 0, err
		}
		size, skip, err := blobRange(resp, offset)
		if err != nil {
			resp.Body.Close()
			cancel(nil)
			return nil, 0, &UpstreamError{Upstream: ref.up.cfg.Name, Op: "GET blobs", Err: fmt.Errorf("%w: %w", errUnusable, err)}
		}
		body := &countingBody{rc: resp.Body, cancel: cancel, add: s.metrics.upstreamBytes.WithLabelValues(ref.up.cfg.Name, "blob").Add}
		if skip > 0 {
			// Upstream ignored Range: drop what the spool already has.
			if _, err := io.CopyN(io.Discard, body, skip); err != nil {
				body.Close()
				return nil, 0, &UpstreamError{Upstream: ref.up.cfg.Name, Op: "GET blobs (skipping to the resume offset)", Err: err}
			}
		}
		return body, size, nil
	}
}

// blobRange returns the blob's full size and how many leading bytes of the body to discard to
// reach offset.
func blobRange(resp *http.Response, offset int64) (size, skip int64, err error) {
	if resp.StatusCode == http.StatusPartialContent {
		var first, last, total int64
		cr := resp.Header.Get("Content-Range")
		if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &first, &last, &total); err != nil || first != offset || total < 0 {
			return 0, 0, fmt.Errorf("unusable Content-Range %q for offset %d", cr, offset)
		}
		return total, 0, nil
	}
	if offset > resp.ContentLength && resp.ContentLength >= 0 {
		return 0, 0, fmt.Errorf("offset %d beyond size %d", offset, resp.ContentLength)
	}
	return resp.ContentLength, offset, nil
}

// onBlobError is the fan-out's OnError: a download failed before any byte was sent.
func (s *Server) onBlobError(w http.ResponseWriter, r *http.Request, err error) {
	subj := subject{kind: kindBlob, gun: "this repository"}
	if b, ok := r.Context().Value(blobRequestKey{}).(*blobRequest); ok {
		subj = b.subj
		b.failed(err)
	}
	s.log.LogAttrs(r.Context(), slog.LevelWarn, "blob not served", slog.String("repo", subj.gun),
		slog.String("digest", subj.digest.String()), slog.String("err", err.Error()))
	writeError(w, r, clientError(err, subj))
}

// onBlobAbort is the fan-out's OnAbort: a download failed after the response's headers were out.
func (s *Server) onBlobAbort(r *http.Request, err error) {
	if b, ok := r.Context().Value(blobRequestKey{}).(*blobRequest); ok {
		b.failed(err)
	}
}

type countingBody struct {
	rc     io.ReadCloser
	cancel context.CancelCauseFunc
	add    func(float64)
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.add(float64(n))
	}
	return n, err
}

func (b *countingBody) Close() error {
	err := b.rc.Close()
	b.cancel(nil)
	return err
}
