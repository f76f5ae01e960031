package main

import (
	"os"
	"strings"
	"testing"
)

// The testdata files are `perf report` output captured from a real profile of trustgate during
// scenario 2 (perf 6.1), so the parsers are checked against the format perf really prints.

func TestParseSelf(t *testing.T) {
	out, err := os.ReadFile("testdata/perf-self.txt")
	if err != nil {
		t.Fatal(err)
	}
	s := parseSelf(out)
	if len(s) == 0 || len(s) > 18 {
		t.Fatalf("%d samples", len(s))
	}
	if s[0].Name != "[k] finish_task_switch.isra.0" || s[0].Percent != 7.56 {
		t.Errorf("first = %+v", s[0])
	}
	for i, x := range s {
		if strings.Contains(x.Name, "  ") || strings.HasSuffix(x.Name, "-") {
			t.Errorf("sample %d keeps perf's trailing columns: %q", i, x.Name)
		}
		if i > 0 && x.Percent > s[i-1].Percent {
			t.Errorf("not in perf's descending order at %d", i)
		}
	}
}

func TestParseInclusive(t *testing.T) {
	out, err := os.ReadFile("testdata/perf-children.txt")
	if err != nil {
		t.Fatal(err)
	}
	s := parseInclusive(out)
	got := map[string]float64{}
	for _, x := range s {
		got[x.Name] = x.Percent
	}
	for name, want := range map[string]float64{
		"proxy.(*Server).ServeHTTP":   37.67,
		"proxy.(*Server).logDecision": 10.12,
		"net/http.(*conn).serve":      79.04,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v (parsed: %v)", name, got[name], want, s)
		}
	}
	for _, x := range s {
		if x.Name == "runtime.goexit.abi0" || strings.HasSuffix(x.Name, "-fm") {
			t.Errorf("kept an uninformative frame %q", x.Name)
		}
	}
}
