package policy

import (
	"reflect"
	"strings"
	"testing"
)

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern string
		name    string
		want    bool
	}{
		{"docker.io/library/*", "docker.io/library/alpine", true},
		{"docker.io/library/*", "docker.io/library/a/b", false},
		{"docker.io/library/*", "docker.io/library/", false},
		{"docker.io/library/*", "evil.example/docker.io/library/alpine", false},
		{"docker.io/library/*", "docker.io/library/alpine/../x", false},
		{"registry.example.com/team/**", "registry.example.com/team/app", true},
		{"registry.example.com/team/**", "registry.example.com/team/a/b/c", true},
		{"registry.example.com/team/**", "registry.example.com/team", false},
		{"registry.example.com/team/**", "registry.example.com/teammate/app", false},
		{"docker.io/library/al*", "docker.io/library/alpine", true},
		{"docker.io/library/al*", "docker.io/library/busybox", false},
		{"localhost:5000/app", "localhost:5000/app", true},
		{"localhost:5000/app", "localhost:5000/apps", false},
		{"a.b/c", "aXb/c", false}, // '.' is literal, not a regexp wildcard
		{"**", "anything/at/all", true},
	}
	for _, tt := range tests {
		p, err := compilePattern(tt.pattern)
		if err != nil {
			t.Fatalf("compilePattern(%q): %v", tt.pattern, err)
		}
		if got := p.match(tt.name); got != tt.want {
			t.Errorf("%q matches %q = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestPatternInvalid(t *testing.T) {
	for _, p := range []string{"", "Docker.io/x", "a/b?", "a/[bc]", "a/***", "a b", strings.Repeat("a", 513)} {
		if _, err := compilePattern(p); err == nil {
			t.Errorf("compilePattern(%q) succeeded, want error", p)
		}
	}
}

func TestDecide(t *testing.T) {
	p, err := New(Config{
		Default: RuleConfig{Mode: Deny},
		Rules: []RuleConfig{
			{Match: "docker.io/library/debug*", Mode: Warn},
			{Match: "docker.io/library/*", Mode: Enforce},
			{Match: "registry.example.com/team/**", Mode: Enforce, Notary: &NotaryConfig{Roles: []string{"targets/ci"}}},
			{Match: "registry.example.com/**", Mode: Off},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want Decision
	}{
		{"docker.io/library/alpine", Decision{Mode: Enforce, Rule: "docker.io/library/*", Notary: &NotaryRule{Roles: []string{"targets/releases", "targets"}}}},
		{"docker.io/library/debugger", Decision{Mode: Warn, Rule: "docker.io/library/debug*", Notary: &NotaryRule{Roles: []string{"targets/releases", "targets"}}}},
		{"registry.example.com/team/x/y", Decision{Mode: Enforce, Rule: "registry.example.com/team/**", Notary: &NotaryRule{Roles: []string{"targets/ci"}}}},
		{"registry.example.com/other", Decision{Mode: Off, Rule: "registry.example.com/**"}},
		{"quay.io/x/y", Decision{Mode: Deny, Rule: "default"}},
	}
	for _, tt := range tests {
		if got := p.Decide(tt.name); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Decide(%q) = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestDecideReturnsCopies(t *testing.T) {
	p, err := New(Config{Default: RuleConfig{Mode: Enforce}})
	if err != nil {
		t.Fatal(err)
	}
	d := p.Decide("x/y")
	d.Notary.Roles[0] = "targets/evil"
	if got := p.Decide("x/y").Notary.Roles[0]; got != "targets/releases" {
		t.Fatalf("a caller's change leaked into the policy: %q", got)
	}
}

func TestDefaultModeIsEnforce(t *testing.T) {
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Decide("docker.io/library/alpine"); d.Mode != Enforce || d.Notary == nil {
		t.Fatalf("empty config decided %+v, want enforce with notary", d)
	}
}

func TestNewErrorsNameTheRule(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Default: RuleConfig{Mode: "strict"}}, `policy.default: mode "strict"`},
		{Config{Default: RuleConfig{Match: "x"}}, "policy.default: a default rule has no match"},
		{Config{Rules: []RuleConfig{{Match: "a/*", Mode: "nope"}}}, "policy.rules[0] (a/*): mode"},
		{Config{Rules: []RuleConfig{{Match: "a/*"}}}, "policy.rules[0] (a/*): mode is required"},
		{Config{Rules: []RuleConfig{{Match: "A/*", Mode: Off}}}, "policy.rules[0].match"},
		{Config{Rules: []RuleConfig{{Match: "a/*", Mode: Enforce, Notary: &NotaryConfig{Roles: []string{"releases"}}}}}, `"releases" is not a targets role`},
		{Config{Rules: []RuleConfig{{Match: "a/*", Mode: Enforce, Notary: &NotaryConfig{Roles: []string{"targets", "targets"}}}}}, "listed twice"},
		{Config{Rules: []RuleConfig{{Match: "a/*", Mode: Off, Notary: &NotaryConfig{}}}}, "would be ignored"},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want error containing %q", tt.cfg, err, tt.want)
		}
	}
}

// FuzzPattern checks that no pattern or name, however malformed, panics, and that a compiled
// pattern never matches a name containing a character patterns cannot express.
func FuzzPattern(f *testing.F) {
	for _, s := range []string{"docker.io/library/*", "registry.example.com/team/**", "**", "*", "a**b", "localhost:5000/x"} {
		f.Add(s, "docker.io/library/alpine")
	}
	f.Fuzz(func(t *testing.T, pat, name string) {
		p, err := compilePattern(pat)
		if err != nil {
			return
		}
		if p.match(name) && strings.IndexFunc(name, func(r rune) bool { return r == '*' || !strings.ContainsRune(patternChars, r) }) >= 0 {
			t.Fatalf("%q matched %q", pat, name)
		}
	})
}
