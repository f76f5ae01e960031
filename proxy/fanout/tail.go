package fanout

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// tailBufSize is each response's only buffer: memory per client is constant
// however large the blob or however far behind the client is. Its size sets
// how many pread and write calls a byte costs, and those calls were most of
// serving a client: 256 KiB served 4 clients from a retained spool about a
// quarter faster than 64 KiB (BenchmarkServe) and 16 cold clients about 8%
// faster (make bench), while 512 KiB gained nothing more. A response to a
// smaller blob or range gets a buffer of its length.
const tailBufSize = 256 << 10

// headWriteSize is the write size of a response that keeps up with the
// download. There the bytes arrive one upstream read at a time and the client
// waits for each; smaller writes let it start on the first piece while the
// next is read and written, a pipeline across cores that whole-buffer writes
// broke: they cost the 1-client row of make bench about 10%.
const headWriteSize = 64 << 10

// tail copies bytes [start, end] of the spool to w as they become readable,
// so every client moves at its own pace: a slow one only lags behind in the
// file and never holds up the download or the other clients.
//
// Whatever the range, its last byte is held back until the whole blob is
// verified: a response never completes with bytes that turn out to be
// wrong, only ends short when they do. A range that ends before the blob's
// end therefore completes only when the download does.
func (g *Group) tail(ctx context.Context, w http.ResponseWriter, d *download, start, end int64) error {
	rc := http.NewResponseController(w)
	buf := make([]byte, min(tailBufSize, end-start+1))
	for pos := start; pos <= end; {
		avail, ok, changed, err := d.readable()
		if err != nil {
			return err
		}
		if !ok {
			avail = min(avail, end)
		}
		if avail <= pos {
			// Push out what is buffered before waiting, so the client
			// sees progress while upstream is slow and has everything
			// but the held-back byte while the verdict is pending.
			_ = rc.Flush()
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		for stop := min(avail, end+1); pos < stop; {
			n := int(min(int64(len(buf)), stop-pos))
			if avail-pos <= copyBufSize {
				n = min(n, headWriteSize)
			}
			if _, err := d.file.ReadAt(buf[:n], pos); err != nil {
				return &failedError{err: fmt.Errorf("read spool at %d: %w", pos, err)}
			}
			// A client that accepts nothing for IdleTimeout would
			// otherwise pin the spool forever; it gets IdleTimeout
			// for each buffer. net/http clears the deadline after
			// the response, so keep-alive is unaffected.
			if err := rc.SetWriteDeadline(time.Now().Add(g.opts.IdleTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return err
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			pos += int64(n)
		}
	}
	return d.verified(ctx)
}
