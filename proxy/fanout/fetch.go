package fanout

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
)

// copyBufSize is the most the fetcher reads from upstream and publishes at a
// time; with hashBufs it bounds the fetcher's memory per download (2 MiB).
// Each buffer costs a read, a spool write, a hand-off to the hasher and a
// wake-up of every response, so larger buffers cost less CPU per byte until
// they stop fitting in cache: BenchmarkColdCPU (1 GiB, cold) measured the
// fan-out at 1.79 CPU-s/GB with 512 KiB against 1.95 with 256 KiB (medians
// of 15 paired runs, each won by 512 KiB, load average 5-10 on 2 cores),
// 0.374 against 0.410 with 16 clients; 128 KiB cost 2.12. 1 MiB measured
// 1.73 at load 8-10 but 3.0 against 1.95 at load 10-15.
const copyBufSize = 512 << 10

// fillState is what survives from one upstream connection to the next when a
// dropped connection is resumed with a Range request.
type fillState struct {
	hash    *pipeHasher
	off     int64
	size    int64
	sizeSet bool
	idle    *time.Timer
}

// fetch runs the download under ctx, which is detached from the request
// that started it: the blob keeps filling for the clients that joined (and
// for a client that retries after disconnecting) when that request goes
// away. It stops on upstream failure, on IdleTimeout without a byte, or when
// the Group is closed.
func (g *Group) fetch(ctx context.Context, d *download, open Opener) {
	err := g.fill(ctx, d, open)
	if err != nil {
		// Counted before the verdict is published, so a client that
		// sees the failure also sees it in Stats.
		g.stats.failures.Add(1)
		g.done(ctx, d, err) // before the failure is out: see Options.OnDone
	}
	d.finish(err)
	g.finished(d, err)
	if err == nil {
		g.done(ctx, d, nil)
	}
	d.release()
}

// done hands the download's outcome to Options.OnDone while the fetcher still holds the spool.
func (g *Group) done(ctx context.Context, d *download, err error) {
	if g.opts.OnDone == nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(g.ctx, cancel)
	defer stop()
	var blob *io.SectionReader
	if err == nil {
		blob = io.NewSectionReader(d.file, 0, d.size)
	}
	g.opts.OnDone(ctx, d.dgst, blob, err)
}

func (g *Group) fill(ctx context.Context, d *download, open Opener) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(g.ctx, func() { cancel(ErrClosed) })
	defer stop()

	st := &fillState{
		hash: newPipeHasher(d.dgst.Algorithm().Hash(), copyBufSize),
		size: -1,
		idle: time.AfterFunc(g.opts.IdleTimeout, func() { cancel(ErrIdle) }),
	}
	defer st.idle.Stop()
	defer st.hash.close()

	for attempt := 0; ; attempt++ {
		retry, err := g.fillOnce(ctx, d, open, st)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (after %d bytes): %w", context.Cause(ctx), st.off, err)
		}
		if !retry || attempt >= g.opts.MaxResumes {
			return err
		}
		g.stats.resumes.Add(1)
		g.log.Warn("resuming blob download", "digest", d.dgst, "offset", st.off, "err", err)
	}
	if got := digest.NewDigest(d.dgst.Algorithm(), st.hash.sum()); got != d.dgst {
		return fmt.Errorf("%w: got %s after %d bytes", ErrDigestMismatch, got, st.off)
	}
	return nil
}

// fillOnce copies one upstream connection into the spool. retry says whether
// reconnecting at st.off could help: a dropped connection or a short body
// can, a lie about the size or a failed first request cannot.
func (g *Group) fillOnce(ctx context.Context, d *download, open Opener, st *fillState) (retry bool, err error) {
	g.stats.opens.Add(1)
	body, size, err := open(ctx, st.off)
	if err != nil {
		return st.sizeSet, fmt.Errorf("open upstream at offset %d: %w", st.off, err)
	}
	// Close the body on cancellation too, for Openers whose body ignores ctx.
	stopClose := context.AfterFunc(ctx, func() { body.Close() })
	defer func() {
		stopClose()
		body.Close()
	}()
	want, verified := sizeFrom(ctx)
	switch {
	case verified && size >= 0 && size != want:
		return false, fmt.Errorf("%w: upstream announces %d bytes, the verified size is %d", ErrSizeMismatch, size, want)
	case verified:
		size = want
	}
	if !st.sizeSet {
		reserve := g.reservation(size, verified)
		g.makeRoom(reserve)
		// Before setSize, so that a full disk is an error status for
		// every request rather than an aborted body.
		if err := g.spoolWrite("reserve spool space", func() error { return preallocate(d.file, reserve) }); err != nil {
			return false, err
		}
		st.size, st.sizeSet = size, true
		d.setSize(size)
	} else if size != st.size {
		return false, fmt.Errorf("upstream size changed on resume: %d, was %d", size, st.size)
	}
	for {
		buf := st.hash.buffer()
		n, rerr := body.Read(buf)
		if n > 0 {
			st.idle.Reset(g.opts.IdleTimeout)
			if st.size >= 0 && st.off+int64(n) > st.size {
				st.hash.recycle(buf)
				return false, fmt.Errorf("%w: more than %d bytes", ErrTooLong, st.size)
			}
			// Hashed while it is written to the spool; see pipeHasher.
			st.hash.hash(buf[:n])
			if err := g.spoolWrite("write spool", func() error {
				_, err := d.file.WriteAt(buf[:n], st.off)
				return err
			}); err != nil {
				return false, err
			}
			st.off += int64(n)
			g.stats.upstreamBytes.Add(int64(n))
			d.publish(st.off)
		} else {
			st.hash.recycle(buf)
		}
		switch {
		case rerr == io.EOF && st.size >= 0 && st.off < st.size:
			return true, fmt.Errorf("%w: %d of %d bytes", ErrTruncated, st.off, st.size)
		case rerr == io.EOF:
			return false, nil
		case rerr != nil:
			return true, fmt.Errorf("read upstream at offset %d: %w", st.off, rerr)
		}
	}
}
