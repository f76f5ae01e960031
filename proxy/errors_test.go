package proxy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
	"github.com/trustgate/trustgate/proxy/fanout"
)

// TestClientError: every kind of failure is worded once, with the status a client must see, naming
// the repository, and without anything from the error's text that could be an address or a path.
func TestClientError(t *testing.T) {
	d := digest.FromString("x")
	signed := digest.FromString("signed")
	const gun, up = "docker.io/library/alpine", "docker.io"
	tag := subject{gun: gun, upstream: up, kind: kindManifest, tag: "1"}
	signedTag := subject{gun: gun, upstream: up, kind: kindManifest, tag: "1", signed: signed}
	byDigest := subject{gun: gun, upstream: up, kind: kindManifest, digest: d}
	blob := subject{gun: gun, upstream: up, kind: kindBlob, digest: d}
	tags := subject{gun: gun, upstream: up, kind: kindTags}
	const secret = "10.9.8.7:5000"
	netErr := &url.Error{Op: "Get", URL: "https://" + secret + "/v2/library/alpine/manifests/1", Err: syscall.ECONNREFUSED}
	status := func(code int) error { return &UpstreamError{Upstream: up, Op: "GET manifests", StatusCode: code} }

	cases := []struct {
		name   string
		err    error
		subj   subject
		status int
		code   errcode.ErrorCode
		want   []string
	}{
		{"404 tag", status(404), tag, 404, errcode.ErrorCodeManifestUnknown, []string{gun + ":1", "not found upstream"}},
		{"404 signed digest", status(404), signedTag, 404, errcode.ErrorCodeManifestUnknown, []string{"is signed to " + signed.String(), "no manifest with that digest"}},
		{"404 by digest", fmt.Errorf("x: %w", status(404)), byDigest, 404, errcode.ErrorCodeManifestUnknown, []string{gun + "@" + d.String()}},
		{"404 blob", status(404), blob, 404, errcode.ErrorCodeBlobUnknown, []string{d.String(), gun}},
		{"404 tag list", status(404), tags, 404, errcode.ErrorCodeNameUnknown, []string{gun}},
		{"429", &UpstreamError{Upstream: up, StatusCode: 429, RetryAfter: "7"}, tag, 429, errcode.ErrorCodeTooManyRequests, []string{"rate limiting"}},
		{"401", status(401), tag, 503, errcode.ErrorCodeUnavailable, []string{"credentials", gun}},
		{"502", status(502), blob, 503, errcode.ErrorCodeUnavailable, []string{"502", gun}},
		{"unreachable", &UpstreamError{Upstream: up, Op: "GET manifests", Err: netErr}, tag, 503, errcode.ErrorCodeUnavailable, []string{"unreachable", gun}},
		{"timeout", &UpstreamError{Upstream: up, Op: "GET blobs", Err: fmt.Errorf("%w: %w", context.DeadlineExceeded, netErr)}, blob, 503, errcode.ErrorCodeUnavailable, []string{"in time", gun}},
		{"manifest mismatch", fmt.Errorf("%s: %w", secret, errDigestMismatch), byDigest, 503, errcode.ErrorCodeUnavailable, []string{"does not match", gun}},
		{"blob truncated", fmt.Errorf("%s: %w", secret, fanout.ErrTruncated), blob, 503, errcode.ErrorCodeUnavailable, []string{"does not match", gun}},
		{"blob idle", fanout.ErrIdle, blob, 503, errcode.ErrorCodeUnavailable, []string{"in time"}},
		{"manifest too large", fmt.Errorf("%w", errTooLarge), tag, 503, errcode.ErrorCodeUnavailable, []string{"larger than"}},
		{"unusable", &UpstreamError{Upstream: up, Err: fmt.Errorf("%w: Content-Range from %s", errUnusable, secret)}, blob, 503, errcode.ErrorCodeUnavailable, []string{"unusable", gun}},
		{"realm", &UpstreamError{Upstream: up, Op: "authenticate", Err: fmt.Errorf("realm %s: %w", secret, errCredentialsWithheld)}, tag, 503, errcode.ErrorCodeUnavailable, []string{"refusing to send credentials"}},
		{"spool", &fs.PathError{Op: "open", Path: "/var/lib/" + secret, Err: syscall.ENOSPC}, blob, 503, errcode.ErrorCodeUnavailable, []string{gun}},
		{"spool (fan-out)", fmt.Errorf("%w: create spool file: %w", fanout.ErrSpool, syscall.EROFS), blob, 503, errcode.ErrorCodeUnavailable, []string{gun, "read-only file system"}},
		{"worded already", newError(errcode.ErrorCodeDenied, "no %s", gun), tag, 403, errcode.ErrorCodeDenied, []string{"no " + gun}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ae := clientError(c.err, c.subj)
			if ae.status != c.status || ae.code != c.code {
				t.Errorf("%d %s, want %d %s (%q)", ae.status, ae.code, c.status, c.code, ae.msg)
			}
			for _, w := range c.want {
				if !strings.Contains(ae.msg, w) {
					t.Errorf("message %q lacks %q", ae.msg, w)
				}
			}
			if strings.Contains(ae.msg, secret) || strings.Contains(ae.msg, "/var/lib") {
				t.Errorf("message leaks: %q", ae.msg)
			}
			if c.status == http.StatusTooManyRequests && ae.header.Get("Retry-After") != "7" {
				t.Errorf("Retry-After %q", ae.header.Get("Retry-After"))
			}
		})
	}
	if !errors.Is(status(404), errNotFound) || errors.Is(status(500), errNotFound) {
		t.Error("UpstreamError.Is(errNotFound) must hold for 404 only")
	}
}
