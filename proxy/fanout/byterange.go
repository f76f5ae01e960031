package fanout

import (
	"strconv"
	"strings"
)

// rangeSpec is one syntactically valid byte-range-spec (RFC 9110 §14.1.1).
// It is parsed before the blob's size is known (the size may still be on
// its way from upstream) and resolved against it afterwards.
type rangeSpec struct {
	first, last int64 // last == -1: open-ended "first-"
	suffix      int64 // >= 0 for "-suffix"; first/last unused then
}

// parseRange parses a Range header value. It accepts exactly one range in
// the bytes unit; everything else (other units, several ranges, bad syntax,
// last < first) reports ok == false, and the caller serves the whole blob
// with 200, which RFC 9110 allows and which containers/image handles for the
// multi-range requests it sends. Docker and containerd only send a single
// "bytes=N-", which is always honoured with 206.
func parseRange(h string) (rangeSpec, bool) {
	unit, set, found := strings.Cut(h, "=")
	if !found || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return rangeSpec{}, false
	}
	set = strings.TrimSpace(set)
	if strings.Contains(set, ",") {
		return rangeSpec{}, false
	}
	a, b, found := strings.Cut(set, "-")
	if !found {
		return rangeSpec{}, false
	}
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if a == "" {
		n, ok := parseDigits(b)
		if !ok {
			return rangeSpec{}, false
		}
		return rangeSpec{first: -1, last: -1, suffix: n}, true
	}
	first, ok := parseDigits(a)
	if !ok {
		return rangeSpec{}, false
	}
	if b == "" {
		return rangeSpec{first: first, last: -1, suffix: -1}, true
	}
	last, ok := parseDigits(b)
	if !ok || last < first {
		return rangeSpec{}, false
	}
	return rangeSpec{first: first, last: last, suffix: -1}, true
}

// parseDigits accepts only 1*DIGIT; strconv alone would also take signs.
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// resolve returns the inclusive byte interval of a blob of the given size,
// or ok == false when the range is unsatisfiable (416).
func (r rangeSpec) resolve(size int64) (start, end int64, ok bool) {
	if size <= 0 {
		return 0, 0, false
	}
	if r.suffix >= 0 {
		if r.suffix == 0 {
			return 0, 0, false
		}
		return max(size-r.suffix, 0), size - 1, true
	}
	if r.first >= size {
		return 0, 0, false
	}
	if r.last < 0 || r.last >= size {
		return r.first, size - 1, true
	}
	return r.first, r.last, true
}
