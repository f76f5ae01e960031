package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// faultKind is what a front does to a request whose path matches a fault.
type faultKind int

const (
	// hangup closes the connection with a TCP reset before any answer.
	hangup faultKind = iota
	// stall holds the request for fault.delay (or until the client goes away), then proxies it.
	stall
	// trickle proxies the response, sending the body at fault.rate bytes per second.
	trickle
	// resetBody sends the real headers and the first fault.after bytes of the body, then a TCP
	// reset.
	resetBody
	// garbage answers 200 with the real headers but a body that is not what was asked for.
	garbage
	// oversize answers 200 with the real headers and fault.size bytes of filler (with
	// Content-Length unless fault.chunked).
	oversize
	// statusOnly answers fault.status with a registry error body, without asking the peer.
	statusOnly
	// flip proxies the response with the byte at fault.after (or the last one) changed; a letter
	// or digit stays one, so JSON stays well-formed and only hashes and signatures can tell.
	flip
)

var faultNames = map[faultKind]string{hangup: "hangup", stall: "stall", trickle: "trickle",
	resetBody: "reset mid-body", garbage: "garbage", oversize: "oversized", flip: "flipped byte", statusOnly: "status"}

func (k faultKind) String() string { return faultNames[k] }

// fault is one injected failure; path is matched against the request path.
type fault struct {
	path    *regexp.Regexp
	kind    faultKind
	delay   time.Duration // stall
	rate    int64         // trickle (and flip, if set): bytes per second
	after   int64         // resetBody: bytes sent before the reset; flip: offset
	size    int64         // oversize
	chunked bool          // oversize: no Content-Length
	status  int           // statusOnly: the status code
	times   int64         // applies to the first times matching requests; 0 = all
	hits    int64         // guarded by the front's mu
}

// seenRequest is what a front recorded of one request, before anything was stripped.
type seenRequest struct {
	Method, Path, RawQuery string
	Header                 http.Header
}

// front is a reverse proxy on loopback between trustgate and one real peer (registry or
// notary-server). It records every request with its headers, can go down (connections refused)
// and come back on the same address, injects faults per path, and can demand HTTP Basic
// credentials (challenging like a registry and stripping them before forwarding), so tests see
// exactly what trustgate sends to its peers.
type front struct {
	URL, Host string

	tb        testing.TB
	target    *url.URL
	transport *http.Transport
	rp        *httputil.ReverseProxy

	mu        sync.Mutex
	srv       *http.Server
	faults    []*fault
	seen      []seenRequest
	basicUser string
	basicPass string
}

func startFront(tb testing.TB, target string) *front {
	tb.Helper()
	u, err := url.Parse(target)
	if err != nil {
		tb.Fatal(err)
	}
	f := &front{tb: tb, target: u, transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64}}
	f.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
		},
		Transport:     f.transport,
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0), // trustgate cancelling a stalled request is expected
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	f.Host = ln.Addr().String()
	f.URL = "http://" + f.Host
	f.serve(ln)
	tb.Cleanup(func() {
		f.mu.Lock()
		srv := f.srv
		f.mu.Unlock()
		if srv != nil {
			_ = srv.Close()
		}
		f.transport.CloseIdleConnections()
	})
	return f
}

func (f *front) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(f.handle), ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	f.mu.Lock()
	f.srv = srv
	f.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// down closes the listener and every connection: trustgate's next dial is refused and its
// pooled connections are gone.
func (f *front) down() {
	f.mu.Lock()
	srv := f.srv
	f.srv = nil
	f.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// up listens again on the same address.
func (f *front) up() {
	f.tb.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port is ours; a closing socket may hold it for a moment
		if ln, err = net.Listen("tcp", f.Host); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		f.tb.Fatalf("front %s: listening again: %v", f.Host, err)
	}
	f.serve(ln)
}

// inject adds a fault (first match wins) and returns it; clear removes all.
func (f *front) inject(ft *fault) *fault {
	f.mu.Lock()
	f.faults = append(f.faults, ft)
	f.mu.Unlock()
	return ft
}

func (f *front) clear() {
	f.mu.Lock()
	f.faults = nil
	f.mu.Unlock()
}

// hits is how often ft has been applied.
func (f *front) hits(ft *fault) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return ft.hits
}

// requireBasic makes the front challenge requests without these Basic credentials with 401.
func (f *front) requireBasic(user, pass string) {
	f.mu.Lock()
	f.basicUser, f.basicPass = user, pass
	f.mu.Unlock()
}

// requests returns what the front has seen since mark (a value of mark()).
func (f *front) requests(mark int) []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.seen[mark:]...)
}

func (f *front) mark() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.seen)
}

func (f *front) handle(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.seen = append(f.seen, seenRequest{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone()})
	user, pass := f.basicUser, f.basicPass
	var ft *fault
	for _, c := range f.faults {
		if c.path.MatchString(r.URL.Path) && (c.times == 0 || c.hits < c.times) {
			c.hits++
			ft = c
			break
		}
	}
	f.mu.Unlock()

	if user != "" {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="front"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
			return
		}
	}
	r.Header.Del("Authorization") // the peer behind needs none
	if ft == nil {
		f.rp.ServeHTTP(w, r)
		return
	}
	switch ft.kind {
	case hangup:
		resetConn(w)
		return
	case statusOnly:
		w.Header().Set("Content-Type", "application/json")
		if ft.status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "7")
		}
		w.WriteHeader(ft.status)
		fmt.Fprintf(w, `{"errors":[{"code":"INJECTED","message":"status %d injected by the test front"}]}`, ft.status)
		return
	case stall:
		select {
		case <-time.After(ft.delay):
		case <-r.Context().Done():
			return
		}
		f.rp.ServeHTTP(w, r)
		return
	}

	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host, out.RequestURI = f.target.Scheme, f.target.Host, ""
	resp, err := f.transport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	switch ft.kind {
	case trickle:
		w.WriteHeader(resp.StatusCode)
		trickleCopy(w, r, resp.Body, ft.rate)
	case resetBody:
		rc := http.NewResponseController(w)
		conn, buf, err := rc.Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(buf, "HTTP/1.1 %s\r\n", resp.Status)
		_ = resp.Header.Write(buf)
		if resp.ContentLength >= 0 && resp.Header.Get("Content-Length") == "" {
			fmt.Fprintf(buf, "Content-Length: %d\r\n", resp.ContentLength)
		}
		buf.WriteString("\r\n")
		_, _ = io.CopyN(buf, resp.Body, ft.after)
		_ = buf.Flush()
		time.Sleep(50 * time.Millisecond) // let the bytes leave before the reset
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	case garbage:
		body := []byte(`{"signed": {"_type": "Timestamp", "meta": <<garbage>>` + "\x00\xff")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	case oversize:
		if ft.chunked {
			h.Del("Content-Length")
		} else {
			h.Set("Content-Length", strconv.FormatInt(ft.size, 10))
		}
		w.WriteHeader(http.StatusOK)
		_, _ = io.CopyN(w, fillReader{}, ft.size)
	case flip:
		body, err := io.ReadAll(resp.Body)
		if err != nil || len(body) == 0 {
			resetConn(w)
			return
		}
		i := min(ft.after, int64(len(body)-1))
		body[i] = otherByte(body[i])
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(resp.StatusCode)
		if ft.rate > 0 {
			trickleCopy(w, r, bytes.NewReader(body), ft.rate)
			return
		}
		_, _ = w.Write(body)
	}
}

// trickleCopy sends body at rate bytes per second, flushing each piece, until it ends or the
// client goes away.
func trickleCopy(w http.ResponseWriter, r *http.Request, body io.Reader, rate int64) {
	tick := 50 * time.Millisecond
	chunk := max(rate*int64(tick)/int64(time.Second), 1)
	for {
		n, err := io.CopyN(w, body, chunk)
		if n > 0 {
			_ = http.NewResponseController(w).Flush() // a gone client ends the copy below
		}
		if err != nil {
			return
		}
		select {
		case <-time.After(tick):
		case <-r.Context().Done():
			return
		}
	}
}

// otherByte is a different byte of the same class: letters and digits shift by one within their
// range, anything else is inverted.
func otherByte(c byte) byte {
	for _, r := range []struct{ lo, hi byte }{{'0', '9'}, {'a', 'z'}, {'A', 'Z'}} {
		if c >= r.lo && c <= r.hi {
			if c == r.hi {
				return r.lo
			}
			return c + 1
		}
	}
	return c ^ 0xff
}

// resetConn closes the client connection with a TCP reset instead of an answer.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	conn.Close()
}

// fillReader is an endless stream of spaces (valid JSON whitespace, so only size can fail it).
type fillReader struct{}

func (fillReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// streamOutcome is how a client saw a (possibly large) response end.
type streamOutcome struct {
	code     int
	n        int64
	digest   string
	complete bool  // the body ended cleanly and had Content-Length bytes
	err      error // transport or read error
	body     []byte
}

// stream GETs url and hashes the body as it arrives, keeping the first keep bytes; onBytes
// (optional) is told the running count. It never fails the test: aborted transfers are an
// expected outcome.
func stream(ctx context.Context, url string, header http.Header, keep int, onBytes func(int64)) streamOutcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return streamOutcome{err: err}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		return streamOutcome{err: err}
	}
	defer resp.Body.Close()
	out := streamOutcome{code: resp.StatusCode}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		out.body, out.err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return out
	}
	h := newDigester()
	buf := make([]byte, 256<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			h.Write(buf[:n])
			if room := keep - len(out.body); room > 0 {
				out.body = append(out.body, buf[:min(n, room)]...)
			}
			out.n += int64(n)
			if onBytes != nil {
				onBytes(out.n)
			}
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) {
				out.err = rerr
			}
			break
		}
	}
	out.digest = h.digest()
	out.complete = out.err == nil && (resp.ContentLength < 0 || out.n == resp.ContentLength)
	return out
}

func (o streamOutcome) String() string {
	return fmt.Sprintf("status %d, %d bytes (complete %t, digest %s), err %v, body %q", o.code, o.n, o.complete,
		o.digest, o.err, strings.TrimSpace(string(o.body)))
}

// digester hashes a stream into an OCI sha256 digest string.
type digester struct{ h hash.Hash }

func newDigester() *digester { return &digester{h: sha256.New()} }

func (d *digester) Write(p []byte) { d.h.Write(p) }

func (d *digester) digest() string { return "sha256:" + hex.EncodeToString(d.h.Sum(nil)) }
