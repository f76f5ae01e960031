package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
	"github.com/trustgate/trustgate/proxy/fanout"
)

// apiError is a registry error response. The status is carried separately from the errcode because
// trustgate sometimes answers with a status the code's descriptor doesn't default to (e.g. an
// unknown route is a 404 with UNSUPPORTED).
type apiError struct {
	status int
	code   errcode.ErrorCode
	msg    string
	// header is copied to the response; used for Retry-After on TOOMANYREQUESTS.
	header http.Header
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.msg) }

func newError(code errcode.ErrorCode, format string, args ...any) *apiError {
	return &apiError{status: code.Descriptor().HTTPStatusCode, code: code, msg: fmt.Sprintf(format, args...)}
}

func errUnavailable(format string, args ...any) *apiError {
	return newError(errcode.ErrorCodeUnavailable, format, args...)
}

// maxEcho bounds what of a client-controlled string (a path, name, tag, digest, parameter) an
// error message repeats.
const maxEcho = 256

// echo is how an error message repeats a string the client sent: quoted and escaped, and cut to
// its first maxEcho bytes, so a request cannot make trustgate answer with (or log) its own bulk.
func echo(s string) string {
	if len(s) <= maxEcho {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(s[:maxEcho]), len(s))
}

// writeError answers with a registry JSON error body. HEAD responses carry the status and headers
// only: clients never read a HEAD body, and a body would violate HTTP.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{status: http.StatusInternalServerError, code: errcode.ErrorCodeUnknown, msg: err.Error()}
	}
	h := w.Header()
	for k, v := range ae.header {
		h[k] = v
	}
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	if r.Method == http.MethodHead {
		w.WriteHeader(ae.status)
		return
	}
	body, _ := json.Marshal(errcode.Errors{ae.code.WithMessage(ae.msg)})
	body = append(body, '\n')
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(ae.status)
	_, _ = w.Write(body)
}

// errUnusable: an upstream answer trustgate cannot use (e.g. a blob without a length).
var errUnusable = errors.New("unusable upstream answer")

// errCredentialsWithheld: the upstream sent trustgate to a token realm it won't give its
// credentials to (see checkRealm).
var errCredentialsWithheld = errors.New("refusing to send credentials to a token realm outside the upstream's host and token_realms")

// Kinds of subject.
const (
	kindManifest  = "manifest"
	kindBlob      = "blob"
	kindTags      = "tag list"
	kindReferrers = "referrers"
)

// subject is what a request asked for, in the terms an error body needs.
type subject struct {
	gun      string
	upstream string
	kind     string
	tag      string
	digest   digest.Digest // asked for by digest
	signed   digest.Digest // the digest the tag is signed to
}

// String names the subject for a client: repository and tag or digest.
func (s subject) String() string {
	switch {
	case s.tag != "":
		return s.gun + ":" + s.tag
	case s.digest != "":
		return s.gun + "@" + s.digest.String()
	}
	return s.gun
}

// clientError is the one place a failure becomes the registry error a client sees. A refusal
// decided by the verdict is already an *apiError and passes unchanged; anything else is upstream
// or local trouble, worded here from its kind and never from its text, which may name URLs,
// addresses or file paths (the full error goes to the log with the decision).
func clientError(err error, subj subject) *apiError {
	var ae *apiError
	var ue *UpstreamError
	isUpstream := errors.As(err, &ue)
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, errNotFound):
		return notFoundError(subj)
	case isUpstream && ue.StatusCode == http.StatusTooManyRequests:
		e := newError(errcode.ErrorCodeTooManyRequests, "upstream %s is rate limiting trustgate", subj.upstream)
		if ue.RetryAfter != "" {
			e.header = http.Header{"Retry-After": {ue.RetryAfter}}
		}
		return e
	case isUpstream && (ue.StatusCode == http.StatusUnauthorized || ue.StatusCode == http.StatusForbidden):
		return errUnavailable("upstream %s refused trustgate's credentials for %s (%d)", subj.upstream, subj.gun, ue.StatusCode)
	case isUpstream && ue.StatusCode != 0:
		return errUnavailable("upstream %s answered %d %s for %s", subj.upstream, ue.StatusCode, http.StatusText(ue.StatusCode), subj)
	case errors.Is(err, errDigestMismatch), errors.Is(err, fanout.ErrDigestMismatch),
		errors.Is(err, fanout.ErrTooLong), errors.Is(err, fanout.ErrTruncated), errors.Is(err, fanout.ErrSizeMismatch):
		return errUnavailable("upstream %s sent a %s for %s that does not match its digest or size; not served", subj.upstream, subj.kind, subj)
	case errors.Is(err, errTooLarge):
		return errUnavailable("upstream %s sent a %s for %s larger than the %d bytes trustgate accepts; not served", subj.upstream, subj.kind, subj, maxManifestSize)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, fanout.ErrIdle):
		return errUnavailable("upstream %s did not answer in time for %s", subj.upstream, subj)
	case errors.Is(err, errCredentialsWithheld):
		return errUnavailable("upstream %s: %v", subj.upstream, errCredentialsWithheld)
	case errors.Is(err, errUnusable):
		return errUnavailable("upstream %s sent an unusable answer for %s", subj.upstream, subj)
	case isUpstream:
		return errUnavailable("upstream %s unreachable for %s", subj.upstream, subj)
	case errors.Is(err, fanout.ErrSpool):
		// The fan-out words spool errors with the reason (errno) and without the path.
		_, reason, _ := strings.Cut(err.Error(), fanout.ErrSpool.Error()+": ")
		return errUnavailable("trustgate's blob spool is unavailable for %s: %s", subj, reason)
	case errors.Is(err, errWalkBudget), errors.Is(err, errWalkTooLarge):
		return errUnavailable("cannot tell yet whether %s is signed: %v", subj, err)
	case errors.Is(err, context.Canceled):
		return errUnavailable("request for %s canceled", subj)
	}
	return errUnavailable("trustgate could not serve %s %s (the reason is in its log)", subj.kind, subj)
}

// notFoundError words an upstream 404. For a SIGNED digest the upstream lacks it is 404
// MANIFEST_UNKNOWN naming the digest, not 503: the tag is signed but its content is gone, which
// retries won't fix.
func notFoundError(subj subject) *apiError {
	switch {
	case subj.kind == kindBlob:
		return newError(errcode.ErrorCodeBlobUnknown, "blob %s not found in %s upstream %s", subj.digest, subj.gun, subj.upstream)
	case subj.kind == kindTags || subj.kind == kindReferrers:
		return newError(errcode.ErrorCodeNameUnknown, "repository %s not found upstream %s", subj.gun, subj.upstream)
	case subj.signed != "":
		return newError(errcode.ErrorCodeManifestUnknown, "%s is signed to %s, but upstream %s has no manifest with that digest", subj, subj.signed, subj.upstream)
	}
	return newError(errcode.ErrorCodeManifestUnknown, "manifest unknown: %s not found upstream %s", subj, subj.upstream)
}
