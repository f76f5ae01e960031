package fanout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"time"
)

// tailBufSize is each response's only buffer: memory per client is constant
// however large the blob or however far behind the client is. Its size sets
// how many pread and write calls a byte costs, and those calls were most of
// serving a client: 256 KiB served 4 clients from a retained spool about a
// quarter faster than 64 KiB (BenchmarkServe) and 16 cold clients about 8%
// faster (make bench), while 512 KiB gained nothing more. A response to a
// smaller blob or range gets a buffer of its length. It is also the most a
// response sends per write deadline (see tail), zero-copy or not.
const tailBufSize = 256 << 10

// headWriteSize is the write size of a buffered response that keeps up with
// the download. There the bytes arrive one upstream read at a time and the
// client waits for each; smaller writes let it start on the first piece while
// the next is read and written, a pipeline across cores that whole-buffer
// writes broke: they cost the 1-client row of make bench about 10%. A
// zero-copy response has no copy to pipeline and sends what is there.
const headWriteSize = 64 << 10

// tail copies bytes [start, end] of the spool to w as they become readable,
// so every client moves at its own pace: a slow one only lags behind in the
// file and never holds up the download or the other clients.
//
// Whatever the range, its last byte is held back until the whole blob is
// verified: a response never completes with bytes that turn out to be
// wrong, only ends short when they do. A range that ends before the blob's
// end therefore completes only when the download does.
//
// With zeroCopy, bytes go from the spool to the socket with sendfile(2)
// (io.Copy hands an io.LimitedReader of the spool to the ResponseWriter's
// ReadFrom, which net/http passes to *net.TCPConn) instead of through a
// buffer: no copy in user space. The limit is what makes that exactly as
// safe as the buffered path: it never reaches past the readable offset nor,
// before verification, the response's last byte.
func (g *Group) tail(ctx context.Context, w http.ResponseWriter, d *download, start, end int64, zeroCopy bool) error {
	rc := http.NewResponseController(w)
	var src *spoolReader
	if zeroCopy {
		if f, err := d.reader(); err == nil {
			src = &spoolReader{f: f}
			defer f.Close()
		} else {
			g.log.Debug("no spool reader for sendfile, copying through a buffer", "err", err)
		}
	}
	var buf []byte
	if src == nil {
		buf = make([]byte, min(tailBufSize, end-start+1))
	}
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
			n := min(tailBufSize, stop-pos)
			if src == nil && avail-pos <= copyBufSize {
				n = min(n, headWriteSize)
			}
			// A client that accepts nothing for IdleTimeout would
			// otherwise pin the spool forever; it gets IdleTimeout
			// for each piece. net/http clears the deadline after
			// the response, so keep-alive is unaffected.
			if err := rc.SetWriteDeadline(time.Now().Add(g.opts.IdleTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return err
			}
			if src != nil {
				if err := src.send(w, pos, n); err != nil {
					return err
				}
			} else {
				if _, err := d.file.ReadAt(buf[:n], pos); err != nil {
					return &failedError{err: fmt.Errorf("read spool at %d: %w", pos, err)}
				}
				if _, err := w.Write(buf[:n]); err != nil {
					return err
				}
			}
			pos += n
		}
	}
	if err := d.verified(ctx); err != nil {
		return err
	}
	// Out with the last bytes now, not after the handler returns: releasing
	// the download may close the spool, and the kernel frees its page cache
	// (a gigabyte for a large layer) inside that close.
	_ = rc.Flush()
	return nil
}

// spoolReader is one response's own file description on the spool (see
// download.reader) and its offset, which sendfile(2) advances.
type spoolReader struct {
	f   *os.File
	off int64
}

// send sends n bytes of the spool from offset pos to w.
func (s *spoolReader) send(w io.Writer, pos, n int64) error {
	if s.off != pos {
		if _, err := s.f.Seek(pos, io.SeekStart); err != nil {
			return &failedError{err: fmt.Errorf("seek spool to %d: %w", pos, err)}
		}
		s.off = pos
	}
	// io.Copy hands the limited spool to w's ReadFrom: net/http's sends
	// it with sendfile to the TCP connection.
	sent, err := io.Copy(w, io.LimitReader(s.f, n))
	s.off += sent
	switch {
	case err != nil:
		return err
	case sent < n:
		// The spool holds fewer bytes than were published: never
		// happens unless the file was changed under us.
		return &failedError{err: fmt.Errorf("read spool at %d: %d of %d bytes: %w", pos, sent, n, io.ErrUnexpectedEOF)}
	}
	return nil
}

// reader opens the spool anew for one response: a file description of its
// own, whose offset sendfile(2) can advance without disturbing the other
// responses (pread, which the buffered path uses, takes an offset; sendfile
// on Linux uses the file's). The spool is unlinked, so it is reopened
// through /proc/self/fd. The caller holds a reference to d, so d.file is
// open, and closes the file it gets.
func (d *download) reader() (*os.File, error) {
	sc, err := d.file.SyscallConn()
	if err != nil {
		return nil, err
	}
	var fd uintptr
	if err := sc.Control(func(f uintptr) { fd = f }); err != nil {
		return nil, err
	}
	return os.OpenFile("/proc/self/fd/"+strconv.FormatUint(uint64(fd), 10), os.O_RDONLY|syscall.O_CLOEXEC, 0)
}
