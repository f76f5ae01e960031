package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"
)

// Link is a rate-limited network link on loopback: a TCP proxy to one address whose downstream
// direction (target → client, where a registry's blobs flow) shares one token bucket across all
// connections, like a line of that many bits per second. Requests (client → target) are not
// limited.
//
// The bytes move with splice(2) through a pipe, never through user space, so the link costs the
// machine little CPU: on the shared cores of the benchmark a copying proxy would slow down what it
// carries more than the rate does.
type Link struct {
	URL  string // http://127.0.0.1:port
	Host string // 127.0.0.1:port
	// BitsPerSecond is the link's rate.
	BitsPerSecond float64

	ln     net.Listener
	target string
	lim    *rate.Limiter
	chunk  int // most bytes moved per token wait (a pipe's capacity at most)
	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// StartLink listens on a free loopback port and forwards every connection to target (host:port)
// at bitsPerSecond downstream. The bucket holds 20 ms of the rate (at least 1 MiB): deep enough
// that a pump goroutine woken late on a busy machine catches up instead of losing the time, which
// would make the link slower whenever the system behind it uses more CPU — a real link's rate
// does not depend on the CPU of the hosts it connects.
func StartLink(target string, bitsPerSecond float64) (*Link, error) {
	if bitsPerSecond <= 0 {
		return nil, fmt.Errorf("link rate %v bit/s", bitsPerSecond)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("link: %w", err)
	}
	bytesPerSec := bitsPerSecond / 8
	burst := max(int(bytesPerSec/50), 1<<20)
	ctx, cancel := context.WithCancel(context.Background())
	l := &Link{
		URL: "http://" + ln.Addr().String(), Host: ln.Addr().String(), BitsPerSecond: bitsPerSecond,
		ln: ln, target: target, lim: rate.NewLimiter(rate.Limit(bytesPerSec), burst), chunk: 1 << 20,
		ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{},
	}
	l.wg.Go(l.accept)
	return l, nil
}

// Close stops the link and every connection through it.
func (l *Link) Close() error {
	l.cancel()
	err := l.ln.Close()
	l.mu.Lock()
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
	return err
}

func (l *Link) track(c net.Conn, add bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if add {
		l.conns[c] = struct{}{}
	} else {
		delete(l.conns, c)
	}
}

func (l *Link) accept() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.wg.Go(func() { l.serve(c.(*net.TCPConn)) })
	}
}

func (l *Link) serve(client *net.TCPConn) {
	defer client.Close()
	up, err := net.Dial("tcp", l.target)
	if err != nil {
		return
	}
	server := up.(*net.TCPConn)
	defer server.Close()
	l.track(client, true)
	l.track(server, true)
	defer l.track(client, false)
	defer l.track(server, false)

	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = io.Copy(server, client) // requests: unlimited (Go splices TCP to TCP)
		_ = server.CloseWrite()
	})
	_ = l.pump(client, server)
	_ = client.CloseWrite()
	wg.Wait()
}

// pump moves src to dst through a pipe at the link's rate: splice what src has (at most one
// bucket), wait for that many tokens, splice it on to dst.
func (l *Link) pump(dst, src *net.TCPConn) error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return err
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	chunk := l.chunk
	if got, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, chunk); err != nil {
		chunk = min(chunk, 64<<10) // the default capacity
	} else {
		chunk = min(chunk, got)
	}
	rs, err := src.SyscallConn()
	if err != nil {
		return err
	}
	ws, err := dst.SyscallConn()
	if err != nil {
		return err
	}
	const flags = unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK
	for {
		var n int64
		var serr error
		// Returning false on EAGAIN makes the runtime wait until src is readable.
		if err := rs.Read(func(fd uintptr) bool {
			n, serr = unix.Splice(int(fd), nil, p[1], nil, chunk, flags)
			return !errors.Is(serr, unix.EAGAIN)
		}); err != nil {
			return err
		}
		if serr != nil {
			return serr
		}
		if n == 0 {
			return nil // EOF
		}
		if err := l.lim.WaitN(l.ctx, int(n)); err != nil {
			return err
		}
		for n > 0 {
			var m int64
			if err := ws.Write(func(fd uintptr) bool {
				m, serr = unix.Splice(p[0], nil, int(fd), nil, int(n), flags)
				return !errors.Is(serr, unix.EAGAIN)
			}); err != nil {
				return err
			}
			if serr != nil {
				return serr
			}
			n -= m
		}
	}
}
