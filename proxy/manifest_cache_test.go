package proxy

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// inProcessRegistry answers /v2/ and GET /v2/<repo>/manifests/<digest> with one manifest, without
// a network, and counts the manifest GETs.
type inProcessRegistry struct {
	body []byte
	gets atomic.Int32
}

func (r *inProcessRegistry) RoundTrip(req *http.Request) (*http.Response, error) {
	resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Request: req, Body: http.NoBody}
	if strings.Contains(req.URL.Path, "/manifests/") && req.Method == http.MethodGet {
		r.gets.Add(1)
		runtime.Gosched() // let the other callers pile up behind the flight
		resp.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		resp.Header.Set("Content-Length", strconv.Itoa(len(r.body)))
		resp.ContentLength = int64(len(r.body))
		resp.Body = io.NopCloser(strings.NewReader(string(r.body)))
	}
	return resp, nil
}

// TestManifestFetchedOncePerDigestUnderLoad is a stress test for byDigest's coalescing: callers
// that missed the cache just before a flight stored the manifest must find it there, not start a
// second upstream fetch of bytes that are already verified.
func TestManifestFetchedOncePerDigestUnderLoad(t *testing.T) {
	reg := &inProcessRegistry{body: []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)}
	d := digest.FromBytes(reg.body)
	u, _ := url.Parse("http://registry.test")
	up, err := newUpstream(&Upstream{Name: "registry.test", URL: u, Transport: reg}, 16, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	const rounds, callers = 3000, 16
	extra := 0
	for round := 0; round < rounds; round++ {
		c, err := newManifestCache(16, func(string, int) {})
		if err != nil {
			t.Fatal(err)
		}
		before := reg.gets.Load()
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < callers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				m, _, err := c.byDigest(context.Background(), up, "team/app", d)
				if err != nil || m.digest != d {
					t.Errorf("byDigest: %v", err)
				}
			}()
		}
		close(start)
		wg.Wait()
		extra += int(reg.gets.Load()-before) - 1
	}
	if extra > 0 {
		t.Fatalf("%d extra upstream fetches in %d rounds of %d concurrent callers for one digest, want 0", extra, rounds, callers)
	}
}

// tagRegistry answers HEAD and GET /v2/<repo>/manifests/<tag> with one manifest, as a registry
// does (HEAD names the digest), and counts both.
type tagRegistry struct {
	body        []byte
	heads, gets atomic.Int32
}

func (r *tagRegistry) RoundTrip(req *http.Request) (*http.Response, error) {
	resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Request: req, Body: http.NoBody}
	if !strings.Contains(req.URL.Path, "/manifests/") {
		return resp, nil
	}
	runtime.Gosched() // let the other callers pile up
	resp.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp.Header.Set("Docker-Content-Digest", digest.FromBytes(r.body).String())
	resp.Header.Set("Content-Length", strconv.Itoa(len(r.body)))
	resp.ContentLength = int64(len(r.body))
	switch req.Method {
	case http.MethodHead:
		r.heads.Add(1)
	case http.MethodGet:
		r.gets.Add(1)
		resp.Body = io.NopCloser(strings.NewReader(string(r.body)))
	}
	return resp, nil
}

// TestManifestFetchedOncePerTagUnderLoad is a stress test for byTag's coalescing (warn and off
// modes): concurrent pulls of one tag share one upstream round trip, and a pull that starts
// after it finds the manifest cached by the digest its HEAD names, so the manifest is fetched
// once however many clients pull the tag at once.
func TestManifestFetchedOncePerTagUnderLoad(t *testing.T) {
	reg := &tagRegistry{body: []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)}
	d := digest.FromBytes(reg.body)
	u, _ := url.Parse("http://registry.test")
	up, err := newUpstream(&Upstream{Name: "registry.test", URL: u, Transport: reg}, 16, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	const rounds, callers = 1000, 16
	extra := 0
	for round := 0; round < rounds; round++ {
		c, err := newManifestCache(16, func(string, int) {})
		if err != nil {
			t.Fatal(err)
		}
		before := reg.gets.Load()
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < callers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				m, err := c.byTag(context.Background(), up, "team/app", "1")
				if err != nil || m.digest != d {
					t.Errorf("byTag: %v", err)
				}
			}()
		}
		close(start)
		wg.Wait()
		extra += int(reg.gets.Load()-before) - 1
	}
	if extra > 0 {
		t.Fatalf("%d extra upstream manifest GETs in %d rounds of %d concurrent pulls of one tag, want 0 (HEADs: %d)", extra, rounds, callers, reg.heads.Load())
	}
}
