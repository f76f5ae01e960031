package proxy

import (
	"slices"
	"strings"
)

// acceptSet is what a client said it can take for a manifest. trustgate never converts a manifest
// (that would change its digest and break the signature), so the only choices are to serve the
// signed bytes or to refuse.
type acceptSet struct {
	any      bool
	types    map[string]bool
	prefixes []string // "application/" from "application/*"
}

// parseAccept reads every Accept header line: docker's classic client sends one line per media
// type, containerd one comma-separated line with */*. No Accept header at all means anything, as
// in HTTP; distribution's reading of it as "schema1 only" is a historical accident.
func parseAccept(lines []string) acceptSet {
	a := acceptSet{types: map[string]bool{}}
	seen := false
	for _, line := range lines {
		for _, item := range strings.Split(line, ",") {
			mt, params, _ := strings.Cut(item, ";")
			mt = strings.ToLower(strings.TrimSpace(mt))
			if mt == "" {
				continue
			}
			seen = true
			if qZero(params) {
				continue
			}
			switch {
			case mt == "*/*" || mt == "*":
				a.any = true
			case strings.HasSuffix(mt, "/*"):
				a.prefixes = append(a.prefixes, strings.TrimSuffix(mt, "*"))
			default:
				a.types[mt] = true
			}
		}
	}
	if !seen {
		a.any = true
	}
	return a
}

// qZero reports whether the parameters carry q=0, which in HTTP means "not acceptable".
func qZero(params string) bool {
	for _, p := range strings.Split(params, ";") {
		k, v, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		v = strings.TrimSpace(v)
		return strings.Trim(v, "0.") == "" && v != ""
	}
	return false
}

func (a acceptSet) accepts(mediaType string) bool {
	if a.any {
		return true
	}
	mt := strings.ToLower(mediaType)
	if a.types[mt] {
		return true
	}
	for _, p := range a.prefixes {
		if strings.HasPrefix(mt, p) {
			return true
		}
	}
	return false
}

func (a acceptSet) String() string {
	if a.any {
		return "*/*"
	}
	var out []string
	for t := range a.types {
		out = append(out, t)
	}
	for _, p := range a.prefixes {
		out = append(out, p+"*")
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}
