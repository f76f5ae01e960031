package debris

import "testing"

// TestNames: only trustgate's own temporary names match.
func TestNames(t *testing.T) {
	for _, c := range []struct {
		name        string
		spool, temp bool
	}{
		{"fanout-spool-123456", true, false},
		{"fanout-spool-", false, false},
		{"fanout-spool-12a", false, false},
		{"fanout-spool-1/2", false, false},
		{"xfanout-spool-1", false, false},
		{".tmp-versions.json-123", false, true},
		{".tmp-4242", false, true},
		{".tmp-", false, false},
		{"tmp-1", false, false},
		{"versions.json", false, false},
	} {
		if got := Spool(c.name); got != c.spool {
			t.Errorf("Spool(%q) = %v", c.name, got)
		}
		if got := Temp(c.name); got != c.temp {
			t.Errorf("Temp(%q) = %v", c.name, got)
		}
	}
}
