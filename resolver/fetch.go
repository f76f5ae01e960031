package resolver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Download caps from notary's const.go: the timestamp is small and unauthenticated by any
// parent, so it gets a fixed cap; roots fetched without a known length get the generic one.
// Every other file is capped at the length its parent lists.
const (
	maxTimestampSize = 1 << 20
	maxDownloadSize  = 100 << 20
	maxErrorBody     = 1 << 10
)

// requestTimeout bounds each request (token round trip included) even when the caller's
// context has no deadline: a trust server that stalls must become a 503, not a hung pull
// holding the GUN's lock.
const requestTimeout = 30 * time.Second

// noRedirects is the trust client's CheckRedirect. Notary's HTTP store does not follow
// redirects (a 3xx is "server unavailable"), and following one would carry the credentials the
// token transport attaches to another host; get turns the 3xx into ErrUnavailable.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// errNotFound marks a 404 so bootstrap can tell "no trust data" from other failures.
var errNotFound = errors.New("not found")

// errBodyCut marks a response whose body failed mid-read. Notary's GetSized returns that read
// error as it is, which is none of the outage classes a cached timestamp may stand in for.
var errBodyCut = errors.New("response body cut short")

// remote fetches metadata files of one GUN from a notary-server.
type remote struct {
	base   *url.URL // server base URL
	gun    string
	client *http.Client
	limits *Limiter
}

func (r *remote) url(name string) string {
	return r.base.JoinPath("v2", r.gun, "_trust", "tuf", name+".json").String()
}

// get fetches <name>.json, refusing a declared Content-Length over limit and reading at most
// limit bytes otherwise (an over-long body is truncated, so its hash cannot match), exactly
// like notary's HTTPStore.GetSized. Its error classes are notary's translateStatusToError:
// 404 and every status but 200 and 400, and transport failures, wrap ErrUnavailable (an
// outage, for which a still-valid cached timestamp may stand in; a body cut short is also
// ErrUnavailable but not an outage); 400 is ErrRejected. The body is read through the
// Limiter's budget; a read that would exceed it is an outage too. overLimit is the error kind of a
// declared length over limit: ErrChecksum when limit is the length a parent role lists (the
// server contradicts signed metadata), ErrInvalid for the fixed caps.
func (r *remote) get(ctx context.Context, name string, limit int64, overLimit error) ([]byte, error) {
	u := r.url(name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, name, err)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %w", ErrUnavailable, u, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil, fmt.Errorf("%w: GET %s: %w", ErrUnavailable, u, errNotFound)
	case resp.StatusCode == http.StatusBadRequest:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil, fmt.Errorf("%w: GET %s: server returned 400", ErrRejected, u)
	case resp.StatusCode/100 == 3:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil, fmt.Errorf("%w: GET %s: server returned %d to %q; trust fetches do not follow redirects", ErrUnavailable, u, resp.StatusCode, resp.Header.Get("Location"))
	case resp.StatusCode != http.StatusOK:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil, fmt.Errorf("%w: GET %s: server returned %d", ErrUnavailable, u, resp.StatusCode)
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%w: GET %s: Content-Length %d exceeds the %d bytes allowed", overLimit, u, resp.ContentLength, limit)
	}
	b, err := r.limits.read(resp.Body, limit, resp.ContentLength)
	if errors.Is(err, ErrUnavailable) {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %w: %w", ErrUnavailable, u, errBodyCut, err)
	}
	return b, nil
}

// getRoot fetches root.json or <N>.root.json, which no signed parent gives a length for: capped
// at Limits.MaxRootBytes.
func (r *remote) getRoot(ctx context.Context, name string) ([]byte, error) {
	return r.get(ctx, name, r.limits.limits.MaxRootBytes, ErrInvalid)
}
