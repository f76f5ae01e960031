package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Fetch is the outcome of downloading one URL.
type Fetch struct {
	Bytes   int64
	Elapsed time.Duration
	Err     error
}

// FetchAll starts n GETs of url at the same moment and reads each body to the end without keeping
// it. The bytes are counted, not hashed: the client's own hashing would compete with the server
// for the same two cores and blur what is being measured (correctness is the e2e tests' job).
func FetchAll(ctx context.Context, client *http.Client, url string, n int, hdr http.Header) (wall time.Duration, fs []Fetch) {
	fs = make([]Fetch, n)
	ready := make(chan struct{})
	var wg sync.WaitGroup
	for i := range fs {
		wg.Add(1)
		go func(f *Fetch) {
			defer wg.Done()
			<-ready
			t0 := time.Now()
			f.Bytes, f.Err = fetch(ctx, client, url, hdr)
			f.Elapsed = time.Since(t0)
		}(&fs[i])
	}
	start := time.Now()
	close(ready)
	wg.Wait()
	return time.Since(start), fs
}

func fetch(ctx context.Context, client *http.Client, url string, hdr http.Header) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("GET %s: %s %s", req.URL.Path, resp.Status, b)
	}
	n, err := io.CopyBuffer(discard{}, resp.Body, make([]byte, 256<<10))
	if err == nil && resp.ContentLength >= 0 && n != resp.ContentLength {
		err = fmt.Errorf("GET %s: %d bytes, Content-Length %d", req.URL.Path, n, resp.ContentLength)
	}
	return n, err
}

// discard is io.Discard without ReadFrom, so CopyBuffer uses our large buffer (fewer read calls).
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
