package proxy

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/gorilla/mux"
)

type tagList struct {
	Name string   `json:"name"`
	Tags []string `json:"tags"`
}

// maxTagListBytes bounds an upstream tag list trustgate relays (warn/off).
const maxTagListBytes = 16 << 20

// handleTags serves GET /v2/<name>/tags/list. In enforce mode the list is the signed tags, because
// those are the only tags a client can pull; warn and off relay the upstream's list (see judge).
func (s *Server) handleTags(w http.ResponseWriter, r *http.Request) {
	rec := &decisionRecord{start: time.Now(), method: r.Method}
	ref, err := s.locate(r, mux.Vars(r)["name"])
	if err != nil {
		writeError(w, r, err)
		return
	}
	rec.upstream, rec.repo = ref.up.cfg.Name, ref.gun
	q := r.URL.Query()
	n := -1
	if v := q.Get("n"); v != "" {
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			writeError(w, r, newError(errcode.ErrorCodePaginationNumberInvalid, "invalid n=%s", echo(v)))
			return
		}
	}
	subj := subject{gun: ref.gun, upstream: ref.up.cfg.Name, kind: kindTags}
	v := s.judge(r.Context(), ref, subj)
	announce(w.Header(), rec, v)
	defer s.logDecision(r.Context(), rec, slog.LevelInfo)
	if v.err != nil {
		writeError(w, r, v.err)
		return
	}
	// Signed tags come sorted and unique from the verified state's index (shared: not modified
	// here), so a page costs O(log N + n); an upstream's list is sorted here.
	tags := v.tags
	if v.upstream {
		if tags, err = s.upstreamTags(r, ref); err != nil {
			rec.decision, rec.reason = decisionError, err.Error()
			writeError(w, r, clientError(err, subj))
			return
		}
		sort.Strings(tags)
		tags = slices.Compact(tags)
	}
	page, more := paginate(tags, q.Get("last"), n)
	if more {
		next := url.URL{Path: r.URL.Path, RawQuery: url.Values{"n": {strconv.Itoa(n)}, "last": {page[len(page)-1]}}.Encode()}
		if ns := q.Get("ns"); ns != "" {
			next.RawQuery += "&" + url.Values{"ns": {ns}}.Encode()
		}
		w.Header().Set("Link", "<"+next.String()+`>; rel="next"`)
	}
	body, _ := json.Marshal(tagList{Name: mux.Vars(r)["name"], Tags: page})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// paginate applies the spec's n/last: tags sorting after last, at most n of them (n < 0: all).
func paginate(tags []string, last string, n int) (page []string, more bool) {
	if last != "" {
		i, found := slices.BinarySearch(tags, last)
		if found {
			i++
		}
		tags = tags[i:]
	}
	if n >= 0 && len(tags) > n {
		return tags[:n], n > 0
	}
	if tags == nil {
		tags = []string{}
	}
	return tags, false
}

// upstreamTags reads the upstream's whole list (following its Link pages would let the upstream
// keep trustgate busy; one page of up to 16 MiB is relayed, then paginated here).
func (s *Server) upstreamTags(r *http.Request, ref repoRef) ([]string, error) {
	ctx, cancel := ref.up.withTimeout(r.Context())
	defer cancel()
	resp, err := ref.up.request(ctx, http.MethodGet, ref.repo, nil, "tags", "list")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var tl tagList
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxTagListBytes)).Decode(&tl); err != nil {
		return nil, &UpstreamError{Upstream: ref.up.cfg.Name, Op: "GET tags", Err: fmt.Errorf("%w: tag list: %w", errUnusable, err)}
	}
	return tl.Tags, nil
}
