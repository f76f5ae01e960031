package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

// manifestAccept is the Accept list docker and crane send for a manifest.
var manifestAccept = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}, ", ")

func manifestURL(base, repo, ref string) string { return base + "/v2/" + repo + "/manifests/" + ref }
func blobURL(base, repo, digest string) string  { return base + "/v2/" + repo + "/blobs/" + digest }

func manifestRequest(ctx context.Context, method, url string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", manifestAccept)
	return req, nil
}

// getManifest GETs a manifest and checks it is the expected one (the digest header is compared,
// and the body length; the e2e tests check bytes).
func getManifest(ctx context.Context, client *http.Client, url string, want peers.Pushed) error {
	req, err := manifestRequest(ctx, http.MethodGet, url)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s %s", url, resp.Status, b)
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != want.Digest || int64(len(b)) != want.Size {
		return fmt.Errorf("GET %s: got %s (%d bytes), want %s (%d bytes)", url, got, len(b), want.Digest, want.Size)
	}
	return nil
}

// prime makes a system ready for by-digest blob pulls and warm tag requests: one GET of the
// signed tag, as every client does before fetching blobs.
func prime(tb *scope, base string, p peers.Pushed) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := &http.Client{}
	if err := getManifest(ctx, client, manifestURL(base, p.Repo, p.Tag), p); err != nil {
		tb.Fatalf("priming %s: %v", base, err)
	}
	client.CloseIdleConnections()
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// upstreamBlobGETs counts blob GETs in the upstream registry's access log after mark.
func upstreamBlobGETs(reg *peers.Registry, mark int) int {
	n := 0
	for _, e := range reg.RequestsSince(mark) {
		if e.Method == http.MethodGet && strings.Contains(e.Path, "/blobs/sha256:") {
			n++
		}
	}
	return n
}

// upstreamRequests counts every request in the upstream registry's access log after mark.
func upstreamRequests(reg *peers.Registry, mark int) int { return len(reg.RequestsSince(mark)) }
