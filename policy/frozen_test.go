package policy

import (
	"strings"
	"testing"
)

func TestFrozenRule(t *testing.T) {
	const sum = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	fz := &FrozenConfig{File: "/etc/trustgate/frozen.json", SHA256: strings.ToUpper(sum)}
	p, err := New(Config{
		Default: RuleConfig{Mode: Enforce},
		Rules: []RuleConfig{
			{Match: "docker.io/myorg/**", Mode: Enforce, Frozen: fz},
			{Match: "docker.io/other/*", Mode: Warn, Frozen: fz},
			{Match: "docker.io/library/*", Mode: Enforce},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	d := p.Decide("docker.io/myorg/app")
	if d.Frozen == nil || d.Frozen.File != fz.File || d.Frozen.SHA256 != sum || d.Notary == nil {
		t.Fatalf("decision = %+v, want frozen %s (sha256 lower-cased) beside notary", d, fz.File)
	}
	d.Frozen.File = "changed"
	if p.Decide("docker.io/myorg/app").Frozen.File != fz.File {
		t.Error("a Decision shares its FrozenRule with the Policy")
	}
	if d := p.Decide("docker.io/library/alpine"); d.Frozen != nil {
		t.Errorf("a rule without frozen got %+v", d.Frozen)
	}
	if got := p.Frozen(); len(got) != 1 || got[0].File != fz.File {
		t.Errorf("Frozen() = %+v, want the one file once", got)
	}

	// The default's frozen file is inherited by rules that verify, like its notary settings.
	p, err = New(Config{Default: RuleConfig{Mode: Enforce, Frozen: fz}, Rules: []RuleConfig{{Match: "x.io/a", Mode: Warn}, {Match: "x.io/b", Mode: Off}}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Decide("x.io/a").Frozen == nil || p.Decide("x.io/b").Frozen != nil || p.Decide("y.io/c").Frozen == nil {
		t.Error("default frozen trust not inherited by exactly the verifying rules")
	}

	for _, tc := range []struct {
		rc   RuleConfig
		want string
	}{
		{RuleConfig{Match: "a", Mode: Enforce, Frozen: &FrozenConfig{SHA256: sum}}, "frozen.file is required"},
		{RuleConfig{Match: "a", Mode: Enforce, Frozen: &FrozenConfig{File: "f"}}, "frozen.sha256"},
		{RuleConfig{Match: "a", Mode: Enforce, Frozen: &FrozenConfig{File: "f", SHA256: sum[:63] + "g"}}, "frozen.sha256"},
		{RuleConfig{Match: "a", Mode: Off, Frozen: fz}, "verifies nothing"},
		{RuleConfig{Match: "a", Mode: Deny, Frozen: fz}, "verifies nothing"},
	} {
		_, err := New(Config{Rules: []RuleConfig{tc.rc}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.rc.Frozen, err, tc.want)
		}
	}
}

func TestCompilePattern(t *testing.T) {
	p, err := CompilePattern("docker.io/myorg/**")
	if err != nil || p.Literal() || !p.Match("docker.io/myorg/a/b") || p.Match("docker.io/other/a") {
		t.Errorf("docker.io/myorg/**: %v literal=%v", err, p.Literal())
	}
	p, err = CompilePattern("docker.io/library/app")
	if err != nil || !p.Literal() || !p.Match("docker.io/library/app") {
		t.Errorf("docker.io/library/app: %v literal=%v", err, p.Literal())
	}
	if _, err := CompilePattern("Docker.io/x"); err == nil {
		t.Error("upper case accepted")
	}
	if (Pattern{}).Match("x") {
		t.Error("the zero Pattern matches")
	}
}
