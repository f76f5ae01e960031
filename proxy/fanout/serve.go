package fanout

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/opencontainers/go-digest"
)

// Serve answers a GET for blob dgst (with or without Range) by joining an
// in-flight download of dgst, a retained verified spool, or starting a
// download with open. It writes all headers itself: Content-Length,
// Content-Type, Docker-Content-Digest, ETag, Accept-Ranges, and 206 with
// Content-Range for a single satisfiable range. If the download fails after
// headers were sent the response is aborted with http.ErrAbortHandler, so a
// client never sees a normally completed wrong body.
//
// A HEAD is answered from a download in flight or retained; otherwise open is
// called only to learn the size and its body is closed unread, so a HEAD
// never pulls the blob (callers that can HEAD upstream should do that).
func (g *Group) Serve(w http.ResponseWriter, r *http.Request, dgst digest.Digest, open Opener) {
	if err := dgst.Validate(); err != nil {
		writeRegistryError(w, http.StatusBadRequest, "DIGEST_INVALID", err.Error())
		return
	}
	if r.Method == http.MethodHead {
		g.serveHead(w, r, dgst, open)
		return
	}
	spec, ranged := requestedRange(r, dgst)
	d, err := g.join(r.Context(), dgst, open)
	if err != nil {
		g.opts.OnError(w, r, err)
		return
	}
	defer d.release()
	size, err := d.waitSize(r.Context())
	if err != nil {
		if r.Context().Err() == nil {
			g.opts.OnError(w, r, err)
		}
		return
	}

	start, end, status := int64(0), size-1, http.StatusOK
	if ranged {
		var ok bool
		if start, end, ok = spec.resolve(size); !ok {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			writeRegistryError(w, http.StatusRequestedRangeNotSatisfiable, "RANGE_INVALID",
				fmt.Sprintf("range %q not satisfiable for a blob of %d bytes", r.Header.Get("Range"), size))
			return
		}
		status = http.StatusPartialContent
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, size))
	}
	setBlobHeaders(w.Header(), dgst, end-start+1)
	w.WriteHeader(status)

	err = g.tail(r.Context(), w, d, start, end, zeroCopyable(w, r))
	var failed *failedError
	switch {
	case errors.As(err, &failed):
		g.stats.aborts.Add(1)
		g.log.Warn("aborting blob response", "digest", dgst, "range", r.Header.Get("Range"), "err", err)
		if g.opts.OnAbort != nil {
			g.opts.OnAbort(r, failed.err)
		}
		panic(http.ErrAbortHandler)
	case err != nil:
		g.log.Debug("client stopped reading blob", "digest", dgst, "err", err)
	}
}

// zeroCopyable reports whether w can take the spool's bytes by sendfile(2):
// HTTP/1 without TLS (TLS encrypts in user space, HTTP/2 frames), and a
// ResponseWriter (or wrapper) that passes io.ReaderFrom on to net/http's.
func zeroCopyable(w http.ResponseWriter, r *http.Request) bool {
	_, ok := w.(io.ReaderFrom)
	return ok && r.TLS == nil && r.ProtoMajor == 1
}

func (g *Group) serveHead(w http.ResponseWriter, r *http.Request, dgst digest.Digest, open Opener) {
	size := int64(-1)
	if d := g.peek(dgst); d != nil {
		n, err := d.waitSize(r.Context())
		d.release()
		if err != nil {
			if r.Context().Err() == nil {
				g.opts.OnError(w, r, err)
			}
			return
		}
		size = n
	} else {
		g.stats.opens.Add(1)
		body, n, err := open(r.Context(), 0)
		if err != nil {
			g.opts.OnError(w, r, fmt.Errorf("open upstream: %w", err))
			return
		}
		body.Close()
		size = n
	}
	if size < 0 {
		// Without a size there is no Content-Length to announce; the
		// blob has to be spooled and verified first, as for a GET.
		d, err := g.join(r.Context(), dgst, open)
		if err != nil {
			g.opts.OnError(w, r, err)
			return
		}
		defer d.release()
		if size, err = d.waitSize(r.Context()); err != nil {
			if r.Context().Err() == nil {
				g.opts.OnError(w, r, err)
			}
			return
		}
	}
	setBlobHeaders(w.Header(), dgst, size)
	w.WriteHeader(http.StatusOK)
}

// requestedRange returns the single range to serve, or false to serve the
// whole blob: no Range, an unusable one (see parseRange), or an If-Range
// that does not name this blob (the only validator a blob has is its digest).
func requestedRange(r *http.Request, dgst digest.Digest) (rangeSpec, bool) {
	h := r.Header.Get("Range")
	if h == "" {
		return rangeSpec{}, false
	}
	if ir := r.Header.Get("If-Range"); ir != "" && ir != etag(dgst) && ir != dgst.String() {
		return rangeSpec{}, false
	}
	return parseRange(h)
}

func etag(dgst digest.Digest) string { return `"` + dgst.String() + `"` }

func setBlobHeaders(h http.Header, dgst digest.Digest, length int64) {
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", dgst.String())
	h.Set("Etag", etag(dgst))
	h.Set("Accept-Ranges", "bytes")
}

func defaultOnError(w http.ResponseWriter, _ *http.Request, err error) {
	if errors.Is(err, ErrSpool) {
		writeRegistryError(w, http.StatusServiceUnavailable, "UNAVAILABLE", err.Error())
		return
	}
	writeRegistryError(w, http.StatusBadGateway, "UNKNOWN", "fetching blob from upstream: "+err.Error())
}

// writeRegistryError writes the distribution-spec error envelope.
func writeRegistryError(w http.ResponseWriter, status int, code, msg string) {
	type entry struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	body, _ := json.Marshal(struct {
		Errors []entry `json:"errors"`
	}{[]entry{{code, msg}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}
