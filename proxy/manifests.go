package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/reference"
	"github.com/gorilla/mux"
	"github.com/opencontainers/go-digest"
)

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
	subj := subject{gun: ref.gun, upstream: ref.up.cfg.Name, kind: kindManifest}
	refStr := vars["reference"]
	if strings.Contains(refStr, ":") {
		d, perr := digest.Parse(refStr)
		if perr != nil {
			writeError(w, r, newError(errcode.ErrorCodeDigestInvalid, "invalid digest %s: %v", echo(refStr), perr))
			return
		}
		subj.digest, rec.digest = d, d
	} else {
		if !validTag(refStr) {
			writeError(w, r, newError(errcode.ErrorCodeTagInvalid, "invalid tag %s", echo(refStr)))
			return
		}
		subj.tag, rec.tag = refStr, refStr
	}

	v := s.judge(r.Context(), ref, subj)
	var m *manifest
	var fail error
	if v.err != nil {
		fail = v.err
	} else if m, fail = s.fetchManifest(r.Context(), ref, subj, v); fail != nil {
		v.decision, v.reason, v.warning = decisionError, fail.Error(), ""
		subj.signed = v.sig.Digest
		fail = clientError(fail, subj)
	}
	if fail == nil {
		if !v.upstream {
			// Only verified manifests teach the graph: unverified ones (off, warn) would let
			// whoever can push to such a repository fill the bounded edge store.
			s.learn(r.Context(), ref.up, m)
		}
		if accept := parseAccept(r.Header.Values("Accept")); !accept.accepts(m.mediaType) {
			fail = newError(errcode.ErrorCodeManifestUnknown,
				"%s manifest %s found, but the Accept header (%s) does not allow it; trustgate never converts manifests",
				m.mediaType, m.digest, accept)
			v.decision, v.reason = decisionRefuse, "media type not accepted by client"
		}
	}

	announce(w.Header(), rec, v)
	if m != nil {
		rec.digest = m.digest
	} else if v.sig.Digest != "" {
		rec.digest = v.sig.Digest
	}
	if fail != nil {
		writeError(w, r, fail)
	} else {
		writeManifest(w, r, m)
	}
	s.logDecision(r.Context(), rec, slog.LevelInfo)
}

// fetchManifest gets the manifest a verdict allows. A signed tag is fetched upstream BY DIGEST (the
// upstream tag is never consulted, so a moved or malicious tag upstream can't change what is
// served) and its length checked against the signed length; warn and off modes take the
// upstream's tag. The bytes are always hashed: the digest served is theirs.
func (s *Server) fetchManifest(ctx context.Context, ref repoRef, subj subject, v verdict) (*manifest, error) {
	switch {
	case subj.digest != "":
		m, _, err := s.manifests.byDigest(ctx, ref.up, ref.repo, subj.digest)
		return m, err
	case v.upstream:
		return s.manifests.byTag(ctx, ref.up, ref.repo, subj.tag)
	}
	sig := v.sig
	if sig.Size > maxManifestSize {
		return nil, errUnavailable("%s is signed to %s of %d bytes, more than the %d bytes trustgate buffers", subj, sig.Digest, sig.Size, maxManifestSize)
	}
	m, _, err := s.manifests.byDigest(ctx, ref.up, ref.repo, sig.Digest)
	if err != nil {
		return nil, err
	}
	if int64(len(m.body)) != sig.Size {
		return nil, errUnavailable("%s is signed to %s with %d bytes, upstream has %d; not served", subj, sig.Digest, sig.Size, len(m.body))
	}
	return m, nil
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
