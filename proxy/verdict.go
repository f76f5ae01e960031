package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/trustgate/trustgate/frozen"
	"github.com/trustgate/trustgate/policy"
	"github.com/trustgate/trustgate/resolver"
)

// verdict is the answer to "may this be served, and why". judge gives it for every endpoint and
// every mode; handlers only carry it out.
type verdict struct {
	decision string // allow, refuse, warn, error
	reason   string // for the decision log
	// sig is the signature a tag is served under (Digest is empty when nothing verified it).
	sig Signature
	// upstream: serve what the upstream has (off and warn modes, referrers in warn) rather than
	// content derived from signatures.
	upstream bool
	tags     []string // the signed tags, for a tag list in enforce mode
	// size is a blob's size as the verified manifests reaching it state, if sized; not sized in
	// warn and off modes, for edges stored before sizes were kept, and where descriptors disagree.
	size    int64
	sized   bool
	warning string // for the Warning header
	err     *apiError
	// verifier names the Verifier that answered (X-Trustgate-Verifier), set whether or not
	// it verified.
	verifier string
}

// errUnreachable: a digest that none of the repository's signatures reach.
var errUnreachable = errors.New("not reachable from any signed tag")

// judge decides whether subj may be served from ref's repository. It is the only place a policy
// mode is looked at: deny refuses (403), off passes through, enforce serves only what the
// repository's current signatures allow, warn serves that and marks the rest, and a mode this
// trustgate does not know fails closed (503) on every endpoint.
func (s *Server) judge(ctx context.Context, ref repoRef, subj subject) (out verdict) {
	dec := s.policy.Decide(ref.gun)
	rule := " (rule " + dec.Rule + ")"
	switch dec.Mode {
	case policy.Deny:
		return verdict{decision: decisionRefuse, reason: "policy mode deny" + rule,
			err: newError(errcode.ErrorCodeDenied, "repository %s is not allowed by trustgate policy (rule %q)", ref.gun, dec.Rule)}
	case policy.Off:
		return verdict{decision: decisionAllow, reason: "policy mode off" + rule, upstream: true}
	case policy.Enforce, policy.Warn:
	default:
		return verdict{decision: decisionError, reason: "unknown policy mode" + rule,
			err: errUnavailable("policy mode %q for %s (rule %q) is not understood by this trustgate", dec.Mode, ref.gun, dec.Rule)}
	}
	warn := dec.Mode == policy.Warn
	switch {
	case subj.kind == kindReferrers && warn:
		return verdict{decision: decisionAllow, reason: "warn mode relays referrers" + rule, upstream: true}
	case subj.kind == kindReferrers:
		// Referrers (cosign signatures, SBOMs) are manifests DCT does not sign: trustgate can't
		// vouch for them, and listing them would invite pulls enforce mode refuses anyway.
		return verdict{decision: decisionAllow, reason: "referrers are not signed: empty list"}
	case subj.kind == kindTags && warn:
		return verdict{decision: decisionAllow, reason: "warn mode relays the tag list" + rule, upstream: true}
	}

	v, err := s.verify(ctx, ref, dec, subj)
	if err == nil {
		return v
	}
	defer func() { out.verifier = v.verifier }() // a refusal still says who refused
	why := trustReason(err)
	switch {
	case warn:
		return verdict{decision: decisionWarn, reason: "unverified: " + err.Error(), upstream: true,
			warning: subj.String() + " served unverified: " + why}
	case subj.kind == kindTags && resolver.IsNotSigned(err):
		return verdict{decision: decisionAllow, reason: why} // nothing signed: no pullable tags
	case subj.tag != "" && resolver.IsNotSigned(err):
		return verdict{decision: decisionRefuse, reason: err.Error(),
			err: newError(errcode.ErrorCodeManifestUnknown, "%s: no valid signature exists for this tag (%s); trustgate serves only signed tags", subj, why)}
	case subj.digest != "" && (resolver.IsNotSigned(err) || errors.Is(err, errUnreachable)):
		code := errcode.ErrorCodeManifestUnknown
		if subj.kind == kindBlob {
			code = errcode.ErrorCodeBlobUnknown
		}
		return verdict{decision: decisionRefuse, reason: err.Error(),
			err: newError(code, "%s %s is not signed in %s: %s", subj.kind, subj.digest, subj.gun, why)}
	case isTrustError(err):
		return verdict{decision: decisionError, reason: err.Error(),
			err: errUnavailable("cannot verify the signatures of %s: %s", subj, why)}
	}
	// An upstream failure while fetching signed manifests to derive reachability: worded for
	// the manifest, with its status (a 429 stays a 429).
	ae := *clientError(err, subject{gun: subj.gun, upstream: subj.upstream, kind: kindManifest})
	ae.msg = "cannot tell whether " + subj.String() + " is signed: " + ae.msg
	return verdict{decision: decisionError, reason: err.Error(), err: &ae}
}

// verify answers subj from the repository's verified signatures (enforce and warn modes).
func (s *Server) verify(ctx context.Context, ref repoRef, dec policy.Decision, subj subject) (verdict, error) {
	sigs, name, err := s.signatures(ctx, ref, dec)
	base := verdict{verifier: name}
	if err != nil {
		return base, err
	}
	source := ""
	if src, ok := sigs.(interface{ source() string }); ok {
		source = "; " + src.source()
	}
	v := base
	v.decision = decisionAllow
	switch {
	case subj.kind == kindTags:
		v.reason, v.tags = "signed tags"+source, sigs.Tags()
		return v, nil
	case subj.tag != "":
		sig, err := sigs.Tag(subj.tag)
		if err != nil {
			return base, err
		}
		v.reason, v.sig = "signed"+source, sig
		return v, nil
	}
	if dc, ok := sigs.(digestChecker); ok && subj.kind == kindManifest {
		// A system that signs digests may have signed this one; if not, it may still be
		// reachable from one that is.
		sig, err := dc.SignedDigest(ctx, subj.digest)
		if err == nil {
			v.reason, v.sig = "signed digest ("+sig.Verifier+")"+source, sig
			return v, nil
		}
		if !resolver.IsNotSigned(err) {
			return base, err
		}
	}
	root, size, ok, err := s.reachable(ctx, ref, sigs, subj.digest)
	if err != nil {
		return base, err
	}
	if !ok {
		return base, fmt.Errorf("%w%s", errUnreachable, source)
	}
	sig, _ := sigs.Signed(root)
	as := ref.gun + ":" + sig.Tag
	if sig.Tag == "" {
		as = ref.gun + "@" + root.String() // signed by digest
	}
	reason := "signed as " + as
	if root != subj.digest {
		reason = "reachable from " + as + " (" + root.String() + ")"
	}
	v.reason, v.sig, v.size, v.sized = reason+source, sig, size, size >= 0
	return v, nil
}

// verifier picks the Verifier a decision requires. A frozen trust file answers for the
// repositories it holds, in place of Notary; Notary answers for the rest.
func (s *Server) verifier(ref repoRef, dec policy.Decision) (Verifier, error) {
	if dec.Frozen != nil {
		fv := s.frozen[*dec.Frozen]
		if fv == nil {
			return nil, fmt.Errorf("%w: frozen trust %s is not loaded", errNoVerifier, dec.Frozen.File)
		}
		if fv.covers(ref.gun) {
			return fv, nil
		}
	}
	if dec.Notary != nil {
		return s.notary[ref.up.cfg.Name], nil
	}
	return nil, errNoVerifier
}

// trustErrors are the reasons trust is refused or unavailable, in the words a client is told.
var trustErrors = []error{
	resolver.ErrTagNotSigned, resolver.ErrNoTrustData,
	resolver.ErrUnavailable, resolver.ErrExpired, resolver.ErrRollback, resolver.ErrPinMismatch,
	resolver.ErrThreshold, resolver.ErrChecksum, resolver.ErrInvalid,
	errNoVerifier, errUnreachable, errWalkBudget, errWalkTooLarge, frozen.ErrExpired,
}

func isTrustError(err error) bool {
	for _, e := range trustErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// trustReason words a verification failure for a client: the kind of failure, never the error
// text, which may name the trust server's URL or files in trust_dir (the log has it all).
func trustReason(err error) string {
	for _, e := range trustErrors {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "trust server did not answer in time"
	case errors.Is(err, context.Canceled):
		return "request canceled"
	}
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.msg
	}
	return "trust could not be established"
}

// announce records the verdict in the request's decision record and explains it in the response
// headers; every judged handler calls it once, before it answers.
func announce(h http.Header, rec *decisionRecord, v verdict) {
	rec.decision, rec.reason = v.decision, v.reason
	rec.signedBy(v.sig)
	h.Set(HeaderDecision, v.decision)
	byDigest := v.sig.Verifier != "" && v.sig.Verifier != "notary" // cosign, notation, or several
	if v.sig.Signer != "" && !byDigest {
		h.Set(HeaderRole, v.sig.Signer)
	}
	if v.sig.Signer != "" {
		h.Set(HeaderSigner, v.sig.Signer)
	}
	if v.sig.Digest != "" {
		h.Set(HeaderSignedDigest, v.sig.Digest.String())
	}
	switch {
	case v.sig.Verifier != "":
		h.Set(HeaderVerifier, v.sig.Verifier) // the one whose signature is served
	case v.verifier != "":
		h.Set(HeaderVerifier, v.verifier)
	}
	if (byDigest || v.verifier == "frozen") && !v.sig.Expires.IsZero() {
		h.Set(HeaderExpires, v.sig.Expires.UTC().Format(time.RFC3339))
	}
	if v.warning != "" {
		setWarning(h, v.warning)
	}
}
