package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
	"github.com/trustgate/trustgate/policy"
)

// sizeLiar relays a registry but lies about the length of one blob.
type sizeLiar struct {
	url    string
	mu     sync.Mutex
	target string // the blob digest lied about
	// mode "announce": Content-Length inflated by extra; "pad": no length, extra bytes appended;
	// "flip": the last byte altered, and sent late.
	mode    string
	extra   int64
	written atomic.Int64 // bytes of the lied-about blob written to trustgate
}

func startSizeLiar(t *testing.T, reg *peers.Registry) *sizeLiar {
	t.Helper()
	target, _ := url.Parse(reg.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	l := &sizeLiar{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		dgst, mode, extra := l.target, l.mode, l.extra
		l.mu.Unlock()
		if dgst == "" || !strings.HasSuffix(r.URL.Path, "/blobs/"+dgst) || (r.Method != http.MethodGet && mode != "announce") {
			rp.ServeHTTP(w, r)
			return
		}
		resp, err := http.Get(reg.URL + r.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if r.Method == http.MethodHead {
			w.Header().Set("Content-Length", strconv.FormatInt(int64(len(body))+extra, 10))
			return
		}
		switch mode {
		case "announce":
			w.Header().Set("Content-Length", strconv.FormatInt(int64(len(body))+extra, 10))
			n, _ := w.Write(body)
			l.written.Add(int64(n))
		case "flip": // the right length, the last byte wrong and late: headers are out by then
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			n, _ := w.Write(body[:len(body)-1])
			w.(http.Flusher).Flush()
			time.Sleep(200 * time.Millisecond)
			m, _ := w.Write([]byte{body[len(body)-1] ^ 1})
			l.written.Add(int64(n + m))
		case "pad":
			n, _ := w.Write(body)
			l.written.Add(int64(n))
			junk := make([]byte, 64<<10)
			for i := int64(0); i < extra; i += int64(len(junk)) {
				n, err := w.Write(junk)
				l.written.Add(int64(n))
				if err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		}
	}))
	t.Cleanup(srv.Close)
	l.url = srv.URL
	return l
}

func (l *sizeLiar) lie(dgst, mode string, extra int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.target, l.mode, l.extra = dgst, mode, extra
	l.written.Store(0)
}

// TestBlobSizeFromDescriptor: a blob reachable from a verified manifest has the size its
// descriptor states. An upstream announcing another Content-Length is refused before a byte is
// sent or spool space reserved (503, the reason logged), and a body without a length is read no
// further than the descriptor's size.
func TestBlobSizeFromDescriptor(t *testing.T) {
	reg := peers.StartRegistry(t)
	l := startSizeLiar(t, reg)
	e := newEnv(t, reg, envConfig{upstreamURL: l.url})
	img := peers.PushImage(t, reg, "library/alpine", "1")
	e.trust.sign("docker.io/library/alpine", "1", img, "targets")
	if r := e.get("/v2/alpine/manifests/1"); r.status != http.StatusOK {
		t.Fatalf("signed tag: %d", r.status)
	}

	layer := img.Layers[0]
	l.lie(layer.Digest, "announce", 4<<30)
	r := e.get("/v2/alpine/blobs/" + layer.Digest)
	expectError(t, r, http.StatusServiceUnavailable, "UNAVAILABLE", "does not match its digest or size", "docker.io/library/alpine")
	if announced := strconv.FormatInt(layer.Size+4<<30, 10); !strings.Contains(e.logText(), announced) {
		t.Errorf("the log does not name the announced size %s:\n%s", announced, e.logText())
	}
	if h := e.do(http.MethodHead, "/v2/alpine/blobs/"+layer.Digest, nil); h.status != http.StatusServiceUnavailable {
		t.Errorf("HEAD with an upstream announcing %d bytes: %d %v", layer.Size+4<<30, h.status, h.header)
	}

	layer = img.Layers[1]
	const pad = 64 << 20
	l.lie(layer.Digest, "pad", pad)
	if status, body, complete := e.tryGet("/v2/alpine/blobs/" + layer.Digest); status == http.StatusOK && complete {
		t.Fatalf("a body longer than its descriptor was served completely: %d bytes", len(body))
	}
	if w := l.written.Load(); w > layer.Size+8<<20 {
		t.Errorf("trustgate read %d bytes of a blob whose descriptor says %d", w, layer.Size)
	}

	l.lie("", "", 0)
	if r := e.get("/v2/alpine/blobs/" + layer.Digest); r.status != http.StatusOK || sha(r.body) != layer.Digest {
		t.Fatalf("honest again: %d", r.status)
	}
	if h := e.do(http.MethodHead, "/v2/alpine/blobs/"+img.Layers[0].Digest, nil); h.status != http.StatusOK || h.header.Get("Content-Length") != strconv.FormatInt(img.Layers[0].Size, 10) {
		t.Errorf("HEAD, honest again: %d %v", h.status, h.header)
	}
}

// TestUnknownSizeReservationCapped: where no verified descriptor gives the size (off and warn
// modes), an upstream's huge Content-Length neither evicts retained spools nor reserves disk
// beyond the spool budget: the lie is found when the body ends short, and the retained blob of
// another pull is still there.
func TestUnknownSizeReservationCapped(t *testing.T) {
	reg := peers.StartRegistry(t)
	l := startSizeLiar(t, reg)
	e := newEnv(t, reg, envConfig{upstreamURL: l.url, spoolBytes: 64 << 20,
		rules: []policy.RuleConfig{{Match: "docker.io/off/**", Mode: policy.Off}}})
	img := peers.PushImage(t, reg, "off/app", "1")
	kept := img.Layers[0]
	if r := e.get("/v2/off/app/blobs/" + kept.Digest); r.status != http.StatusOK {
		t.Fatalf("honest blob: %d", r.status)
	}
	blobs := e.srv.upstreams["docker.io"].blobs
	if n := blobs.Stats().Retained; n != 1 {
		t.Fatalf("%d spools retained, want 1", n)
	}

	l.lie(img.Layers[1].Digest, "announce", 1<<50)
	status, body, complete := e.tryGet("/v2/off/app/blobs/" + img.Layers[1].Digest)
	if status == http.StatusOK && complete {
		t.Fatalf("served a blob whose announced size was a lie")
	}
	if strings.Contains(string(body), "spool") {
		t.Errorf("an announced size made the spool unavailable: %d %s", status, body)
	}
	if n := blobs.Stats().Retained; n != 1 {
		t.Errorf("an announced size evicted retained spools: %d left, want 1", n)
	}
}

// tryGet is a GET that may legitimately be aborted mid-body: complete says whether the body
// arrived whole. It is one request on a connection of its own: on a reused connection that
// closes before the first response byte (an aborted response whose bytes were still
// buffered), net/http's Transport silently sends a GET again, and the retry's answer would
// stand for the aborted one.
func (e *env) tryGet(path string) (status int, body []byte, complete bool) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(e.http.URL + path)
	if err != nil {
		return 0, nil, false
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	return resp.StatusCode, body, err == nil
}
