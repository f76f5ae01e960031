package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/reference"
	"github.com/gorilla/mux"
	"github.com/opencontainers/go-digest"
	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/resolver"
)

// outcome is what trustgate decided for one manifest request, before Accept is considered.
type outcome struct {
	m        *manifest
	decision string
	reason   string
	role     string
	signed   digest.Digest
	warning  string
}

// handleManifest serves GET and HEAD /v2/<name>/manifests/<tag|digest>. HEAD and GET run the same
// decision and send the same headers (HEAD is what docker and containerd resolve tags with); HEAD
// is answered from the manifest cache when it can be.
func (s *Server) handleManifest(w http.ResponseWriter, r *http.Request) {
	vars := mux.Vars(r)
	rec := &decisionRecord{start: time.Now(), method: r.Method}
	ref, err := s.locate(r, vars["name"])
	if err != nil {
		writeError(w, r, err)
		return
	}
	rec.upstream, rec.repo = ref.up.cfg.Name, ref.gun
	dec := s.policy.Decide(ref.gun)

	var out outcome
	refStr := vars["reference"]
	if strings.Contains(refStr, ":") {
		d, perr := digest.Parse(refStr)
		rec.digest = d
		if perr != nil {
			writeError(w, r, newError(errcode.ErrorCodeDigestInvalid, "invalid digest %q: %v", refStr, perr))
			return
		}
		out, err = s.manifestByDigest(r.Context(), ref, dec, d)
	} else {
		rec.tag = refStr
		if !validTag(refStr) {
			writeError(w, r, newError(errcode.ErrorCodeTagInvalid, "invalid tag %q", refStr))
			return
		}
		out, err = s.manifestByTag(r.Context(), ref, dec, refStr)
	}
	if err == nil {
		if accept := parseAccept(r.Header.Values("Accept")); !accept.accepts(out.m.mediaType) {
			err = newError(errcode.ErrorCodeManifestUnknown,
				"%s manifest %s found, but the Accept header (%s) does not allow it; trustgate never converts manifests",
				out.m.mediaType, out.m.digest, accept)
			out.decision, out.reason = decisionRefuse, "media type not accepted by client"
		}
	}

	h := w.Header()
	h.Set(HeaderDecision, out.decision)
	if out.role != "" {
		h.Set(HeaderRole, out.role)
	}
	if out.signed != "" {
		h.Set(HeaderSignedDigest, out.signed.String())
	}
	if out.warning != "" {
		setWarning(h, out.warning)
	}
	rec.decision, rec.reason, rec.role = out.decision, out.reason, out.role
	if out.m != nil {
		rec.digest = out.m.digest
	} else if out.signed != "" {
		rec.digest = out.signed
	}
	if err != nil {
		if rec.reason == "" {
			rec.reason = err.Error()
		}
		writeError(w, r, err)
	} else {
		writeManifest(w, r, out.m)
	}
	s.logDecision(r.Context(), rec, slog.LevelInfo)
}

func writeManifest(w http.ResponseWriter, r *http.Request, m *manifest) {
	h := w.Header()
	h.Set("Content-Type", m.mediaType)
	h.Set("Content-Length", strconv.Itoa(len(m.body)))
	h.Set("Docker-Content-Digest", m.digest.String())
	h.Set("Etag", `"`+m.digest.String()+`"`)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(m.body)
	}
}

func validTag(tag string) bool {
	return len(tag) <= 128 && reference.TagRegexp.FindString(tag) == tag
}

// notaryRoles is the roles a Decision accepts. enforce and warn always carry a Notary rule from
// the policy package; should a future policy require only a verifier this proxy doesn't know,
// enforce fails closed.
func notaryRoles(dec policy.Decision) ([]string, bool) {
	if dec.Notary == nil {
		return nil, false
	}
	if len(dec.Notary.Roles) == 0 {
		return resolver.DefaultRoles, true
	}
	return dec.Notary.Roles, true
}

func denied(ref repoRef, dec policy.Decision) (outcome, error) {
	return outcome{decision: decisionRefuse, reason: "policy mode deny (rule " + dec.Rule + ")"},
		newError(errcode.ErrorCodeDenied, "repository %s is not allowed by trustgate policy (rule %q)", ref.gun, dec.Rule)
}

func (s *Server) manifestByTag(ctx context.Context, ref repoRef, dec policy.Decision, tag string) (outcome, error) {
	switch dec.Mode {
	case policy.Deny:
		return denied(ref, dec)
	case policy.Off:
		m, err := s.manifests.byTag(ctx, ref.up, ref.repo, tag)
		if err != nil {
			return outcome{decision: decisionError}, s.manifestFetchError(err, ref, tag, "")
		}
		return outcome{m: m, decision: decisionAllow, reason: "policy mode off (rule " + dec.Rule + ")"}, nil
	case policy.Enforce, policy.Warn:
	default:
		return outcome{decision: decisionError}, errUnavailable("policy mode %q for %s is not understood by this trustgate", dec.Mode, ref.gun)
	}

	roles, ok := notaryRoles(dec)
	var tgt resolver.Target
	var err error
	if ok {
		tgt, err = ref.up.cfg.Trust.Resolve(ctx, ref.gun, tag, roles)
		switch {
		case err != nil:
		case tgt.Digest.Validate() != nil:
			err = fmt.Errorf("%w: trust data names the invalid digest %q", resolver.ErrInvalid, tgt.Digest)
		case !tgt.Expires.IsZero() && !s.now().Before(tgt.Expires):
			// The trust source must not return an expired answer; checking again costs
			// nothing and keeps a stale cache entry from being served.
			err = fmt.Errorf("%w at %s", resolver.ErrExpired, tgt.Expires.UTC().Format(time.RFC3339))
		}
	} else {
		err = errors.New("policy requires a verifier this trustgate does not implement")
	}
	if err != nil {
		if dec.Mode == policy.Warn {
			return s.warnByTag(ctx, ref, tag, err)
		}
		if resolver.IsNotSigned(err) {
			return outcome{decision: decisionRefuse, reason: err.Error()},
				newError(errcode.ErrorCodeManifestUnknown, "%s:%s: no valid signature exists for this tag (%v); trustgate serves only signed tags", ref.gun, tag, err)
		}
		return outcome{decision: decisionError, reason: err.Error()},
			errUnavailable("cannot verify the signature of %s:%s: %v", ref.gun, tag, err)
	}
	return s.serveSigned(ctx, ref, tag, tgt)
}

// serveSigned fetches the signed digest upstream BY DIGEST (the upstream tag is never consulted, so
// a moved or malicious tag upstream can't change what is served) and checks digest and size.
func (s *Server) serveSigned(ctx context.Context, ref repoRef, tag string, tgt resolver.Target) (outcome, error) {
	out := outcome{role: tgt.Role, signed: tgt.Digest}
	if tgt.Size > maxManifestSize {
		out.decision, out.reason = decisionError, "signed manifest exceeds the size limit"
		return out, errUnavailable("%s:%s is signed to %s of %d bytes, more than the %d bytes trustgate buffers", ref.gun, tag, tgt.Digest, tgt.Size, maxManifestSize)
	}
	m, _, err := s.manifests.byDigest(ctx, ref.up, ref.repo, tgt.Digest)
	if err != nil {
		out.decision, out.reason = decisionError, err.Error()
		return out, s.manifestFetchError(err, ref, tag, tgt.Digest)
	}
	if int64(len(m.body)) != tgt.Size {
		out.decision, out.reason = decisionError, "size mismatch"
		return out, errUnavailable("%s:%s is signed to %s with %d bytes, upstream has %d; not served", ref.gun, tag, tgt.Digest, tgt.Size, len(m.body))
	}
	s.reach.add(ref.up.cfg.Name, ref.repo, append([]digest.Digest{m.digest}, m.children...)...)
	out.m, out.decision, out.reason = m, decisionAllow, "signed"
	return out, nil
}

// warnByTag serves the upstream tag although it could not be verified, marked with a Warning and
// X-Trustgate-Decision: warn. The reported digest is still the hash of the bytes served.
func (s *Server) warnByTag(ctx context.Context, ref repoRef, tag string, why error) (outcome, error) {
	m, err := s.manifests.byTag(ctx, ref.up, ref.repo, tag)
	if err != nil {
		return outcome{decision: decisionError, reason: why.Error()}, s.manifestFetchError(err, ref, tag, "")
	}
	reason := "unverified: " + why.Error()
	return outcome{m: m, decision: decisionWarn, reason: reason, warning: ref.gun + ":" + tag + " served " + reason}, nil
}

func (s *Server) manifestByDigest(ctx context.Context, ref repoRef, dec policy.Decision, d digest.Digest) (outcome, error) {
	reachable := s.reach.has(ref.up.cfg.Name, ref.repo, d)
	var out outcome
	switch dec.Mode {
	case policy.Deny:
		return denied(ref, dec)
	case policy.Off:
		out.decision, out.reason = decisionAllow, "policy mode off (rule "+dec.Rule+")"
	case policy.Enforce:
		if !reachable {
			return outcome{decision: decisionRefuse, reason: "not reachable from a signed tag"},
				newError(errcode.ErrorCodeManifestUnknown, "manifest %s is not reachable from any signed tag of %s (pull a signed tag first)", d, ref.gun)
		}
		out.decision, out.reason = decisionAllow, "reachable from a signed tag"
	case policy.Warn:
		if reachable {
			out.decision, out.reason = decisionAllow, "reachable from a signed tag"
		} else {
			out.decision, out.reason = decisionWarn, "unverified: not reachable from any signed tag"
			out.warning = ref.gun + "@" + d.String() + " served unverified: not reachable from any signed tag"
		}
	default:
		return outcome{decision: decisionError}, errUnavailable("policy mode %q for %s is not understood by this trustgate", dec.Mode, ref.gun)
	}
	m, _, err := s.manifests.byDigest(ctx, ref.up, ref.repo, d)
	if err != nil {
		return outcome{decision: decisionError, reason: err.Error()}, s.manifestFetchError(err, ref, "", d)
	}
	if reachable {
		s.reach.add(ref.up.cfg.Name, ref.repo, m.children...)
	}
	out.m = m
	return out, nil
}

// manifestFetchError words an upstream failure for the client. Upstream trouble is a 503, never a
// 404, except that a 404 for content that exists nowhere is reported as such. For a SIGNED digest
// the upstream lacks, trustgate answers 404 MANIFEST_UNKNOWN naming the digest: the tag is signed
// but its content is gone, which retries won't fix (a 503 would make clients retry in vain).
func (s *Server) manifestFetchError(err error, ref repoRef, tag string, signed digest.Digest) error {
	var ae *apiError
	switch {
	case errors.Is(err, errNotFound) && tag != "" && signed != "":
		return newError(errcode.ErrorCodeManifestUnknown, "%s:%s is signed to %s, but upstream %s has no manifest with that digest", ref.gun, tag, signed, ref.up.cfg.Name)
	case errors.Is(err, errNotFound) && tag != "":
		return newError(errcode.ErrorCodeManifestUnknown, "manifest unknown: %s:%s not found upstream %s", ref.gun, tag, ref.up.cfg.Name)
	case errors.Is(err, errNotFound):
		return newError(errcode.ErrorCodeManifestUnknown, "manifest unknown: %s@%s not found upstream %s", ref.gun, signed, ref.up.cfg.Name)
	case errors.Is(err, errDigestMismatch), errors.Is(err, errTooLarge):
		return errUnavailable("upstream %s sent unusable content, not served: %v", ref.up.cfg.Name, err)
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return errUnavailable("upstream %s: %v", ref.up.cfg.Name, err)
	default:
		return errUnavailable("upstream %s: %v", ref.up.cfg.Name, err)
	}
}
