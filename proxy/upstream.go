package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/trustgate/trustgate/credscope"
	"github.com/trustgate/trustgate/proxy/fanout"
)

// errNotFound means the upstream answered 404 (NAME_UNKNOWN, MANIFEST_UNKNOWN, BLOB_UNKNOWN are not
// told apart: the handler knows which object it asked for and says so in its own words).
var errNotFound = errors.New("not found upstream")

// upstream is the client side of one configured registry.
type upstream struct {
	cfg       *Upstream
	gunPrefix string
	reg       name.Registry
	auth      authn.Authenticator
	creds     *credscope.Scope // where auth may be sent
	// base is cfg.Transport under creds' guard: every upstream request, token exchange and
	// followed redirect goes through it, and none carries Authorization out of creds.
	base    http.RoundTripper
	timeout time.Duration
	// redirects decides which redirects an upstream response may send trustgate to.
	redirects *redirectPolicy
	// transports holds one authenticating transport per repository: registry tokens are scoped to
	// "repository:<repo>:pull", so reusing the transport reuses the token instead of fetching one
	// per request (distribution's proxy fetches a token per request).
	transports *lru.Cache[string, http.RoundTripper]
	handshakes singleflight.Group
	// blobs is this upstream's own fan-out: downloads and kept spools are keyed by digest only,
	// so sharing one group across upstreams would serve bytes fetched from one registry (maybe
	// with private credentials) to a request addressed to another.
	blobs *fanout.Group
}

func newUpstream(cfg *Upstream, size int, timeout time.Duration) (*upstream, error) {
	var opts []name.Option
	if cfg.URL.Scheme == "http" {
		opts = append(opts, name.Insecure)
	} else if cfg.URL.Scheme != "https" {
		return nil, fmt.Errorf("URL scheme %q is not http or https", cfg.URL.Scheme)
	}
	reg, err := name.NewRegistry(cfg.URL.Host, opts...)
	if err != nil {
		return nil, err
	}
	realms := cfg.TokenRealms
	if cfg.DockerHub {
		realms = append(realms[:len(realms):len(realms)], dockerHubTokenRealm)
	}
	creds, err := credscope.New(cfg.URL.String(), realms)
	if err != nil {
		return nil, err
	}
	u := &upstream{cfg: cfg, gunPrefix: cfg.GUNPrefix, reg: reg, creds: creds, base: creds.Transport(cfg.Transport), timeout: timeout,
		redirects: newRedirectPolicy(cfg.URL.Hostname())}
	if u.gunPrefix == "" {
		u.gunPrefix = cfg.Name
	}
	u.auth = authn.Anonymous
	if cfg.Username != "" || cfg.Password != "" {
		u.auth = &authn.Basic{Username: cfg.Username, Password: cfg.Password}
	}
	if u.transports, err = lru.New[string, http.RoundTripper](size); err != nil {
		return nil, err
	}
	return u, nil
}

// client returns an http.Client authenticated for repo. Redirects (Docker Hub sends blob GETs to a
// CDN with 307) are followed here, server-side, rather than passed to the client: the bytes then
// go through trustgate's verification and fan-out, short-lived signed CDN URLs don't leak, and
// clients need no egress beyond trustgate (air-gapped mirrors). Credentials stay in u.creds: ggcr's
// transports add them for the registry's host only, and u.base removes them from any request
// outside the scope (a CDN behind a redirect needs none).
func (u *upstream) client(ctx context.Context, repo string) (*http.Client, error) {
	rt, ok := u.transports.Get(repo)
	if !ok {
		v, err, _ := u.handshakes.Do(repo, func() (any, error) {
			if rt, ok := u.transports.Get(repo); ok {
				return rt, nil
			}
			// The handshake is shared by every request waiting on it; one client going away
			// must not fail the others.
			hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), u.timeout)
			defer cancel()
			if err := u.checkRealm(hctx); err != nil {
				return nil, err
			}
			scope := "repository:" + repo + ":" + transport.PullScope
			rt, err := transport.NewWithContext(hctx, u.reg, u.auth, u.base, []string{scope})
			if err != nil {
				return nil, err
			}
			u.transports.Add(repo, rt)
			return rt, nil
		})
		if err != nil {
			return nil, &UpstreamError{Upstream: u.cfg.Name, Op: "authenticate", Err: err}
		}
		rt = v.(http.RoundTripper)
	}
	return &http.Client{Transport: rt, CheckRedirect: u.redirects.check}, nil
}

// request sends one request for /v2/<repo>/<kind>/<ref> upstream. Non-2xx statuses are turned
// into errors here (and the body closed), so callers only see usable responses.
func (u *upstream) request(ctx context.Context, method, repo string, hdr http.Header, path ...string) (*http.Response, error) {
	c, err := u.client(ctx, repo)
	if err != nil {
		return nil, err
	}
	target := u.cfg.URL.JoinPath(append([]string{"/v2", repo}, path...)...)
	req, err := http.NewRequestWithContext(ctx, method, target.String(), nil)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	// identity: Go would otherwise ask for gzip and transparently decode, and then
	// Content-Length no longer describes what we serve.
	req.Header.Set("Accept-Encoding", "identity")
	req.Header.Set("User-Agent", "trustgate")
	resp, err := c.Do(req)
	if err != nil {
		if ctx.Err() != nil && context.Cause(ctx) != nil {
			err = context.Cause(ctx)
		}
		return nil, &UpstreamError{Upstream: u.cfg.Name, Op: method + " " + path[0], Err: err}
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, u.statusError(resp, method+" "+path[0])
}

// UpstreamError is an upstream registry's failure: a non-2xx answer, or none at all. Like
// go-containerregistry's transport.Error it keeps the status and the registry error codes of the
// body. Its message is for logs (it includes the transport error, which names addresses); what a
// client is told is worded from its fields by clientError, never from Err.
type UpstreamError struct {
	Upstream   string   // the configured name
	Op         string   // e.g. "GET manifests", without URL
	StatusCode int      // 0: no answer
	Codes      []string // errors[].code of a registry error body
	RetryAfter string   // a 429's Retry-After, if numeric
	Err        error    // why there was no answer (StatusCode 0)
}

func (e *UpstreamError) Error() string {
	if e.StatusCode == 0 {
		return fmt.Sprintf("upstream %s: %s: %v", e.Upstream, e.Op, e.Err)
	}
	msg := fmt.Sprintf("upstream %s: %s: %d %s", e.Upstream, e.Op, e.StatusCode, http.StatusText(e.StatusCode))
	if len(e.Codes) > 0 {
		msg += " " + strings.Join(e.Codes, ",")
	}
	return msg
}

func (e *UpstreamError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, errNotFound) true for a 404.
func (e *UpstreamError) Is(target error) bool {
	return target == errNotFound && e.StatusCode == http.StatusNotFound
}

// statusError reads the registry error codes of a non-2xx answer (at most 64 KiB of its body).
func (u *upstream) statusError(resp *http.Response, op string) error {
	e := &UpstreamError{Upstream: u.cfg.Name, Op: op, StatusCode: resp.StatusCode}
	var body struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &body) == nil {
		for _, c := range body.Errors {
			if len(e.Codes) < 8 && len(c.Code) <= 64 {
				e.Codes = append(e.Codes, c.Code)
			}
		}
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if _, err := strconv.Atoi(ra); err == nil {
			e.RetryAfter = ra
		}
	}
	return e
}

// withTimeout bounds a whole upstream exchange (manifests, tag lists, referrers are small).
func (u *upstream) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, u.timeout, fmt.Errorf("upstream %s: no answer within %s", u.cfg.Name, u.timeout))
}
