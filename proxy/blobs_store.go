package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/opencontainers/go-digest"

	"github.com/trustgate/trustgate/proxy/blobstore"
	"github.com/trustgate/trustgate/proxy/fanout"
)

// blobFetchKey carries a blob GET's *blobFetch to the download it may start: the opener records
// where the bytes came from and onBlobDone acts on it, both on the download's goroutine.
type blobFetchKey struct{}

type blobFetch struct {
	namespace               string // the upstream's name: stored blobs are kept per upstream
	size                    int64  // the verified size, -1 if unknown
	fromStore, fromUpstream bool
}

func fetchOf(ctx context.Context) *blobFetch {
	f, _ := ctx.Value(blobFetchKey{}).(*blobFetch)
	return f
}

// openStored is a download's first try: the blob store. ok is false on a miss, on a stored
// object of the wrong size (deleted) and on a failing store (logged by the store, counted, and
// skipped for a while): the caller goes upstream. A store read that broke off (a dropped
// connection, a stall past the fan-out's idle timeout) is resumed from upstream, not from the
// store again, so a store that stalls costs a resume, never the pull.
func (s *Server) openStored(ctx context.Context, d digest.Digest, offset int64) (io.ReadCloser, int64, bool) {
	f := fetchOf(ctx)
	if s.store == nil || f == nil || (offset > 0 && f.fromStore) {
		return nil, 0, false
	}
	body, size, err := s.store.Open(ctx, f.namespace, d, offset, f.size)
	switch {
	case err == nil:
		f.fromStore = true
		s.log.LogAttrs(ctx, slog.LevelDebug, "blob from blob store", slog.String("digest", d.String()),
			slog.Int64("offset", offset), slog.Int64("size", size))
		return body, size, true
	case errors.Is(err, blobstore.ErrNotFound), errors.Is(err, blobstore.ErrUnavailable):
	default:
		s.log.LogAttrs(ctx, slog.LevelWarn, "blob store not used", slog.String("digest", d.String()), slog.String("err", err.Error()))
	}
	return nil, 0, false
}

// onBlobDone is the fan-out's OnDone. A blob verified from upstream is written to the store (on
// the download's goroutine, after its responses completed). A download from the store that
// failed verification had a stored object that is not the blob: it is deleted before the
// failure reaches any response, so the next request, a client's immediate retry included, goes
// upstream rather than reading it again. (A download that merely broke off is left alone.)
func (s *Server) onBlobDone(ctx context.Context, dgst digest.Digest, blob *io.SectionReader, err error) {
	f := fetchOf(ctx)
	if s.store == nil || f == nil {
		return
	}
	switch {
	case err == nil && f.fromUpstream && !f.fromStore:
		if err := s.store.Put(ctx, f.namespace, dgst, blob); err != nil && !errors.Is(err, blobstore.ErrUnavailable) {
			s.log.LogAttrs(ctx, slog.LevelWarn, "blob not stored", slog.String("digest", dgst.String()), slog.String("err", err.Error()))
		}
	case err != nil && f.fromStore && (errors.Is(err, fanout.ErrDigestMismatch) || errors.Is(err, fanout.ErrTooLong) || errors.Is(err, fanout.ErrSizeMismatch)):
		s.store.Discard(ctx, f.namespace, dgst, err.Error())
	}
}
