package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// Decisions, as logged and as sent in X-Trustgate-Decision.
const (
	decisionAllow  = "allow"  // served: verified, reachable from a verified manifest, or policy off
	decisionRefuse = "refuse" // not served because policy requires something the content lacks
	decisionWarn   = "warn"   // served although unverified (warn mode)
	decisionError  = "error"  // not served because trustgate could not verify (trust or upstream down)
)

// Response headers that explain a manifest decision to operators and curious clients.
const (
	// HeaderDecision is allow, refuse, warn or error.
	HeaderDecision = "X-Trustgate-Decision"
	// HeaderRole is the Notary role whose signature the served tag rests on.
	HeaderRole = "X-Trustgate-Role"
	// HeaderSignedDigest is the digest the tag is signed to (sent even when serving fails, so a
	// "signed digest missing upstream" error says which digest).
	HeaderSignedDigest = "X-Trustgate-Signed-Digest"
	// HeaderVerifier names what answered: notary, frozen (a frozen trust file), cosign,
	// notation, or several joined with "+" under require: all.
	HeaderVerifier = "X-Trustgate-Verifier"
	// HeaderSigner is who signed, in the verifier's terms: a Notary role, a cosign key ID
	// (sha256:<hex>) or certificate identity, a Notation certificate subject.
	HeaderSigner = "X-Trustgate-Signer"
	// HeaderExpires is when the verdict stops counting without verifying again (RFC 3339): a
	// frozen trust file's expiry, a cosign or Notation result's trust_ttl or certificate expiry.
	HeaderExpires = "X-Trustgate-Expires"
)

// decisionRecord is one served (or refused) decision; it becomes exactly one slog record with msg
// "decision", which is the audit trail operators grep for.
type decisionRecord struct {
	start    time.Time
	method   string
	upstream string
	repo     string // the GUN
	tag      string
	digest   digest.Digest
	role     string
	verifier string
	signer   string
	expires  time.Time
	decision string
	reason   string
}

// signedBy records the signature a verdict rests on: the Notary role as role, and for every
// verifier its name, signer and expiry.
func (rec *decisionRecord) signedBy(sig Signature) {
	if sig.Verifier == "" || sig.Verifier == "notary" {
		rec.role = sig.Signer
	}
	rec.verifier, rec.signer, rec.expires = sig.Verifier, sig.Signer, sig.Expires
}

func (s *Server) logDecision(ctx context.Context, rec *decisionRecord, level slog.Level) {
	s.metrics.decisions.WithLabelValues(rec.decision).Inc()
	// level is the caller's choice for allows (blob allows are debug: one per layer is noise);
	// anything not plainly allowed is always visible.
	switch rec.decision {
	case decisionRefuse:
		level = max(level, slog.LevelInfo)
	case decisionWarn, decisionError:
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("repo", rec.repo),
		slog.String("tag", rec.tag),
		slog.String("digest", rec.digest.String()),
		slog.String("role", rec.role),
	}
	if rec.verifier != "" {
		attrs = append(attrs, slog.String("verifier", rec.verifier), slog.String("signer", rec.signer),
			slog.Time("expires", rec.expires))
	}
	attrs = append(attrs,
		slog.String("decision", rec.decision),
		slog.String("reason", rec.reason),
		slog.Duration("latency", time.Since(rec.start)),
		slog.String("upstream", rec.upstream),
		slog.String("method", rec.method),
	)
	s.log.LogAttrs(ctx, level, "decision", attrs...)
}

// setWarning adds an RFC 7234 Warning that clients such as containerd surface to users. The text
// is made safe for a quoted-string and kept far below the 4096-byte total clients accept.
func setWarning(h http.Header, reason string) {
	clean := strings.Map(func(r rune) rune {
		switch {
		case r == '"' || r == '\\':
			return '\''
		case r < 0x20 || r == 0x7f || r > 0x7e:
			return ' '
		}
		return r
	}, reason)
	if len(clean) > 1024 {
		clean = clean[:1024]
	}
	h.Add("Warning", `299 - "trustgate: `+clean+`"`)
}
