package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/gorilla/mux"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// emptyIndex is the referrers answer when there are none. The spec says a registry that implements
// the API must not 404 (clients would fall back to the sha256-<hex> referrers tag).
var emptyIndex = []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)

// handleReferrers serves GET /v2/<name>/referrers/<digest>. In enforce mode the answer is always
// an empty index: referrers (cosign signatures, SBOMs, attestations) are separate manifests that
// Docker Content Trust does not sign, so trustgate can't vouch for them, and listing them would
// invite pulls that enforce mode refuses anyway. warn and off relay the upstream (a 404 there, as
// from distribution v3 which has no referrers API, becomes the empty index).
func (s *Server) handleReferrers(w http.ResponseWriter, r *http.Request) {
	vars := mux.Vars(r)
	rec := &decisionRecord{start: time.Now(), method: r.Method}
	ref, err := s.locate(r, vars["name"])
	if err != nil {
		writeError(w, r, err)
		return
	}
	d, err := digest.Parse(vars["digest"])
	if err != nil {
		writeError(w, r, newError(errcode.ErrorCodeDigestInvalid, "invalid digest %s: %v", echo(vars["digest"]), err))
		return
	}
	rec.upstream, rec.repo, rec.digest = ref.up.cfg.Name, ref.gun, d
	subj := subject{gun: ref.gun, upstream: ref.up.cfg.Name, kind: kindReferrers, digest: d}
	v := s.judge(r.Context(), ref, subj)
	announce(w.Header(), rec, v)
	defer s.logDecision(r.Context(), rec, slog.LevelInfo)
	if v.err != nil {
		writeError(w, r, v.err)
		return
	}
	body := emptyIndex
	if v.upstream {
		b, err := s.upstreamReferrers(r, ref, d)
		if err != nil {
			rec.decision, rec.reason = decisionError, err.Error()
			writeError(w, r, clientError(err, subj))
			return
		}
		if b != nil {
			body = b
		}
	}
	w.Header().Set("Content-Type", v1.MediaTypeImageIndex)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

func (s *Server) upstreamReferrers(r *http.Request, ref repoRef, d digest.Digest) ([]byte, error) {
	ctx, cancel := ref.up.withTimeout(r.Context())
	defer cancel()
	// artifactType is not forwarded: the whole list is relayed unfiltered (and no
	// OCI-Filters-Applied is claimed), which the spec allows and clients filter themselves.
	resp, err := ref.up.request(ctx, http.MethodGet, ref.repo, http.Header{"Accept": {v1.MediaTypeImageIndex}}, "referrers", d.String())
	if errors.Is(err, errNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(resp.Body, maxManifestSize+1)); err != nil || buf.Len() > maxManifestSize {
		return nil, &UpstreamError{Upstream: ref.up.cfg.Name, Op: "GET referrers", Err: fmt.Errorf("%w: referrers list unreadable or too large", errUnusable)}
	}
	var idx v1.Index
	if err := json.Unmarshal(buf.Bytes(), &idx); err != nil {
		return nil, &UpstreamError{Upstream: ref.up.cfg.Name, Op: "GET referrers", Err: fmt.Errorf("%w: referrers list is not an index: %w", errUnusable, err)}
	}
	return buf.Bytes(), nil
}
