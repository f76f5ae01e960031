package fanout

import (
	"testing"
)

func TestParseRange(t *testing.T) {
	const size = 1000
	tests := []struct {
		h          string
		ok         bool // syntactically usable single range
		sat        bool // satisfiable for size
		start, end int64
	}{
		{"bytes=0-", true, true, 0, 999},
		{"bytes=10-19", true, true, 10, 19},
		{"bytes=990-5000", true, true, 990, 999},
		{"bytes=-10", true, true, 990, 999},
		{"bytes=-5000", true, true, 0, 999},
		{"bytes=999-999", true, true, 999, 999},
		{"BYTES=1-2", true, true, 1, 2},
		{" bytes = 1 - 2 ", true, true, 1, 2},
		{"bytes=1000-", true, false, 0, 0},
		{"bytes=-0", true, false, 0, 0},
		{"bytes=9223372036854775807-", true, false, 0, 0},
		{"bytes=9223372036854775808-", false, false, 0, 0},
		{"bytes=5-4", false, false, 0, 0},
		{"bytes=1-2,4-5", false, false, 0, 0},
		{"bytes=", false, false, 0, 0},
		{"bytes=-", false, false, 0, 0},
		{"bytes=--1", false, false, 0, 0},
		{"bytes=+1-", false, false, 0, 0},
		{"bytes=1", false, false, 0, 0},
		{"bytes 1-2", false, false, 0, 0},
		{"items=1-2", false, false, 0, 0},
		{"", false, false, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.h, func(t *testing.T) {
			spec, ok := parseRange(tc.h)
			if ok != tc.ok {
				t.Fatalf("parseRange ok = %v, want %v (%+v)", ok, tc.ok, spec)
			}
			if !ok {
				return
			}
			start, end, sat := spec.resolve(size)
			if sat != tc.sat || (sat && (start != tc.start || end != tc.end)) {
				t.Fatalf("resolve = %d-%d %v, want %d-%d %v", start, end, sat, tc.start, tc.end, tc.sat)
			}
		})
	}
}

// FuzzParseRange checks that no header crashes the parser and that every
// accepted range resolves inside the blob.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-", "bytes=1-2", "bytes=-5", "bytes=1-2,3-4", "bytes=9223372036854775807-", "bytes=-9223372036854775808"} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		spec, ok := parseRange(h)
		if !ok {
			return
		}
		start, end, sat := spec.resolve(size)
		if !sat {
			return
		}
		if start < 0 || start > end || end >= size {
			t.Fatalf("%q on size %d resolved to %d-%d", h, size, start, end)
		}
		if spec.suffix < 0 && start != spec.first {
			t.Fatalf("%q on size %d starts at %d, want %d", h, size, start, spec.first)
		}
	})
}
