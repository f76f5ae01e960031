package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/gorilla/mux"
	"github.com/opencontainers/go-digest"
	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/proxy/fanout"
)

// handleBlob serves GET and HEAD /v2/<name>/blobs/<digest>. In enforce mode only blobs reachable
// from a verified manifest of the same repository are served. GET streams through the fan-out
// (one upstream download per digest, verified, Range served from the spool); HEAD is answered with
// an upstream HEAD and never downloads the blob.
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
		writeError(w, r, newError(errcode.ErrorCodeDigestInvalid, "invalid digest %q: %v", vars["digest"], err))
		return
	}
	rec.digest = d
	dec := s.policy.Decide(ref.gun)
	rec.decision, rec.reason = decisionAllow, "reachable from a signed tag"
	switch dec.Mode {
	case policy.Deny:
		_, err = denied(ref, dec)
		rec.decision, rec.reason = decisionRefuse, "policy mode deny (rule "+dec.Rule+")"
	case policy.Enforce:
		if !s.reach.has(ref.up.cfg.Name, ref.repo, d) {
			rec.decision, rec.reason = decisionRefuse, "not reachable from a signed tag"
			err = newError(errcode.ErrorCodeBlobUnknown, "blob %s is not reachable from any signed tag of %s (pull a signed tag first)", d, ref.gun)
		}
	case policy.Warn:
		if !s.reach.has(ref.up.cfg.Name, ref.repo, d) {
			rec.decision, rec.reason = decisionWarn, "unverified: not reachable from any signed tag"
			setWarning(w.Header(), ref.gun+"@"+d.String()+" served unverified: not reachable from any signed tag")
		}
	case policy.Off:
		rec.reason = "policy mode off (rule " + dec.Rule + ")"
	default:
		rec.decision = decisionError
		err = errUnavailable("policy mode %q for %s is not understood by this trustgate", dec.Mode, ref.gun)
	}
	w.Header().Set(HeaderDecision, rec.decision)
	if err != nil {
		writeError(w, r, err)
		s.logDecision(r.Context(), rec, slog.LevelDebug)
		return
	}
	if r.Method == http.MethodHead {
		err = s.headBlob(w, r, ref, d)
		if err != nil {
			rec.decision, rec.reason = decisionError, err.Error()
			writeError(w, r, err)
		}
	} else {
		ref.up.blobs.Serve(w, r, d, s.blobOpener(ref, d))
		// The fan-out answers failures itself; the recorder tells the log what happened.
		if sr, ok := w.(*statusRecorder); ok && sr.status >= 400 && sr.status != http.StatusRequestedRangeNotSatisfiable {
			rec.decision, rec.reason = decisionError, "upstream fetch failed with "+strconv.Itoa(sr.status)
		}
	}
	s.logDecision(r.Context(), rec, slog.LevelDebug)
}

func (s *Server) headBlob(w http.ResponseWriter, r *http.Request, ref repoRef, d digest.Digest) error {
	ctx, cancel := ref.up.withTimeout(r.Context())
	defer cancel()
	resp, err := ref.up.request(ctx, http.MethodHead, ref.repo, nil, "blobs", d.String())
	if err != nil {
		return blobError(err, ref, d)
	}
	resp.Body.Close()
	if resp.ContentLength < 0 {
		return errUnavailable("upstream %s: HEAD %s@%s has no Content-Length", ref.up.cfg.Name, ref.repo, d)
	}
	h := w.Header()
	h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Accept-Ranges", "bytes")
	h.Set("Etag", `"`+d.String()+`"`)
	w.WriteHeader(http.StatusOK)
	return nil
}

// blobOpener is how the fan-out reaches upstream. It runs under the fan-out's detached context,
// so only the wait for response headers is bounded here; the body is bounded by the fan-out's
// idle timeout (a large layer may legitimately take many minutes).
func (s *Server) blobOpener(ref repoRef, d digest.Digest) fanout.Opener {
	return func(ctx context.Context, offset int64) (io.ReadCloser, int64, error) {
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
				err = errUnavailable("upstream %s: no response headers within %s", ref.up.cfg.Name, ref.up.timeout)
			}
			return nil, 0, blobError(err, ref, d)
		}
		size, skip, err := blobRange(resp, offset)
		if err != nil {
			resp.Body.Close()
			cancel(nil)
			return nil, 0, errUnavailable("upstream %s: blob %s: %v", ref.up.cfg.Name, d, err)
		}
		body := &countingBody{rc: resp.Body, cancel: cancel, add: s.metrics.upstreamBytes.WithLabelValues(ref.up.cfg.Name, "blob").Add}
		if skip > 0 {
			// Upstream ignored Range: drop what the spool already has.
			if _, err := io.CopyN(io.Discard, body, skip); err != nil {
				body.Close()
				return nil, 0, errUnavailable("upstream %s: blob %s: skipping to offset %d: %v", ref.up.cfg.Name, d, offset, err)
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

// blobError words an upstream failure for the client: 404 is BLOB_UNKNOWN, everything else an
// outage (503) or the upstream's rate limit.
func blobError(err error, ref repoRef, d digest.Digest) error {
	var ae *apiError
	switch {
	case errors.Is(err, errNotFound):
		return newError(errcode.ErrorCodeBlobUnknown, "blob %s not found in %s upstream %s", d, ref.gun, ref.up.cfg.Name)
	case errors.As(err, &ae):
		return ae
	default:
		return errUnavailable("upstream %s: blob %s: %v", ref.up.cfg.Name, d, err)
	}
}

// blobServeError is the fan-out's OnError: a download failed before any byte was sent.
func blobServeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		writeError(w, r, ae)
	case errors.Is(err, fanout.ErrDigestMismatch), errors.Is(err, fanout.ErrTooLong), errors.Is(err, fanout.ErrTruncated):
		writeError(w, r, errUnavailable("upstream sent a blob that does not match its digest or size; not served: %v", err))
	default:
		writeError(w, r, errUnavailable("blob download failed: %v", err))
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
