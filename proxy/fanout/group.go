package fanout

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// Opener opens the upstream blob starting at offset (0 = whole blob; >0
// sends Range: bytes=offset- and must return a body that starts at offset).
// size is the full blob size (from Content-Length or Content-Range), -1 if
// unknown. The Group calls it with offset > 0 only to resume a download whose
// upstream connection dropped. ctx is detached from any client request.
type Opener func(ctx context.Context, offset int64) (body io.ReadCloser, size int64, err error)

// Options configure a Group. The zero value is usable.
type Options struct {
	// Dir holds the spool files; "" means os.TempDir().
	Dir    string
	Logger *slog.Logger
	// IdleTimeout aborts a download when upstream sends no byte for this
	// long, and a response when the client accepts no byte for this long.
	// 0 means 30s.
	IdleTimeout time.Duration
	// MaxSpoolBytes bounds the completed, verified spools kept for later
	// requests (and is made room for when a download of known size starts).
	// 0 keeps none: a spool is gone once its download and readers finish.
	MaxSpoolBytes int64
	// MaxResumes is how often a dropped upstream connection is resumed with
	// a Range request before the download fails. 0 means 2; negative, none.
	MaxResumes int
	// OnError answers a request whose download failed before any response
	// header was written (e.g. upstream answered 404). nil writes 502 with
	// a registry error body. It is never called once headers are out: those
	// responses are aborted instead.
	OnError func(w http.ResponseWriter, r *http.Request, err error)
	// OnAbort, if set, is told why a response whose headers are out is
	// about to be aborted (the download failed); it must not write to the
	// response.
	OnAbort func(r *http.Request, err error)
	// OnDone, if set, is called once per download when it has ended: blob reads the whole
	// verified blob (nil when err says why the download failed) and stays readable until
	// OnDone returns. ctx carries the values of the request that started the download and is
	// cancelled when the Group closes. It runs on the download's own goroutine; while it runs
	// the spool stays open. A verified download's OnDone runs after its verdict is out to every
	// response. A failed download's runs before: no response ends, and no new request starts
	// another download of the digest, until OnDone returned, so whatever it undoes (a corrupt
	// copy the download read) is undone before a client can see the failure and retry.
	OnDone func(ctx context.Context, dgst digest.Digest, blob *io.SectionReader, err error)
}

// Group fans one upstream download per digest out to every concurrent
// request for it. It is safe for concurrent use.
type Group struct {
	opts Options
	log  *slog.Logger

	// ctx is cancelled by Close and stops every download still running.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	inflight map[digest.Digest]*download
	keep     *retention
	closed   bool

	stats counters
}

// New returns a Group; call Close to stop downloads and drop retained spools.
func New(opts Options) *Group {
	if opts.Dir == "" {
		opts.Dir = os.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 30 * time.Second
	}
	switch {
	case opts.MaxResumes == 0:
		opts.MaxResumes = 2
	case opts.MaxResumes < 0:
		opts.MaxResumes = 0
	}
	if opts.OnError == nil {
		opts.OnError = defaultOnError
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Group{
		opts:     opts,
		log:      opts.Logger,
		ctx:      ctx,
		cancel:   cancel,
		inflight: make(map[digest.Digest]*download),
		keep:     newRetention(opts.MaxSpoolBytes),
	}
}

// Close stops running downloads (their responses are aborted) and releases
// retained spools. Serve must not be called after Close.
func (g *Group) Close() error {
	g.cancel()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	g.keep.purge()
	return nil
}

// join attaches a request to the download of dgst: the one in flight, a
// retained verified one, or a new one it starts. The caller must release the
// returned download. ctx only carries values into the new download; its
// cancellation is ignored.
func (g *Group) join(ctx context.Context, dgst digest.Digest, open Opener) (*download, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if d := g.inflight[dgst]; d != nil {
		d.acquire()
		g.stats.joins.Add(1)
		g.log.Debug("joining blob download in flight", "digest", dgst)
		return d, nil
	}
	if d := g.keep.get(dgst); d != nil {
		d.acquire()
		g.stats.hits.Add(1)
		g.log.Debug("serving retained blob spool", "digest", dgst)
		return d, nil
	}
	if g.closed {
		return nil, ErrClosed
	}
	f, err := g.createSpool()
	if err != nil {
		return nil, err
	}
	d := newDownload(f, dgst)
	d.refs = 2 // the fetcher and this request
	g.inflight[dgst] = d
	g.stats.fetches.Add(1)
	g.log.Debug("starting blob download", "digest", dgst)
	go g.fetch(context.WithoutCancel(ctx), d, open)
	return d, nil
}

// peek returns the in-flight or retained download of dgst without starting
// one; the caller must release it.
func (g *Group) peek(dgst digest.Digest) *download {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := g.inflight[dgst]
	if d == nil {
		d = g.keep.get(dgst)
	}
	if d != nil {
		d.acquire()
	}
	return d
}

// finished unregisters a download so the next request for a failed digest
// starts afresh, and retains a verified one.
func (g *Group) finished(d *download, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inflight[d.dgst] == d {
		delete(g.inflight, d.dgst)
	}
	if err != nil {
		g.log.Warn("blob download failed", "digest", d.dgst, "err", err)
		return
	}
	if !g.closed {
		g.keep.add(d)
	}
}
