package policy

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/trustgate/trustgate/sigverify"
)

type stubChecker struct{ name string }

func (stubChecker) Verify(context.Context, sigverify.Fetcher, sigverify.Subject, []sigverify.Artifact) (sigverify.Result, error) {
	return sigverify.Result{}, sigverify.ErrNotSigned
}

var stubLoaders = Loaders{
	Cosign: func(c CosignConfig) (sigverify.Checker, error) {
		if len(c.Keys) > 0 && c.Keys[0] == "bad.pub" {
			return nil, errors.New("keys[0] (bad.pub): not a PEM public key")
		}
		return stubChecker{"cosign"}, nil
	},
	Notation: func(NotationConfig) (sigverify.Checker, error) { return stubChecker{"notation"}, nil },
}

func TestVerifiers(t *testing.T) {
	cos := &CosignConfig{Keys: []string{"k.pub"}}
	not := &NotationConfig{TrustPolicy: "p.json", TrustStore: "ts"}
	p, err := NewWith(Config{
		Default: RuleConfig{Mode: Enforce},
		Rules: []RuleConfig{
			{Match: "r.example/cosign/**", Mode: Enforce, Verifiers: &VerifiersConfig{Cosign: cos}},
			{Match: "r.example/all/**", Mode: Warn, Verifiers: &VerifiersConfig{Require: All, Cosign: cos, Notation: not}},
			{Match: "r.example/mix/**", Mode: Enforce, Notary: &NotaryConfig{Roles: []string{"targets/ci"}}, Verifiers: &VerifiersConfig{Cosign: cos}},
			{Match: "r.example/inner/**", Mode: Enforce, Verifiers: &VerifiersConfig{Notary: &NotaryConfig{}, Notation: not}},
			{Match: "r.example/plain/**", Mode: Enforce},
		},
	}, stubLoaders)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		want    []string
		require Require
		roles   []string
	}{
		{"r.example/cosign/app", []string{"cosign"}, Any, nil},
		{"r.example/all/app", []string{"cosign", "notation"}, All, nil},
		{"r.example/mix/app", []string{"notary", "cosign"}, Any, []string{"targets/ci"}},
		{"r.example/inner/app", []string{"notary", "notation"}, Any, DefaultRoles()},
		{"r.example/plain/app", []string{"notary"}, "", DefaultRoles()}, // the original form, unchanged
		{"elsewhere/app", []string{"notary"}, "", DefaultRoles()},
	} {
		d := p.Decide(c.name)
		if got := d.Verifiers(); !reflect.DeepEqual(got, c.want) || d.Require != c.require {
			t.Errorf("%s: verifiers %v require %q; want %v %q", c.name, got, d.Require, c.want, c.require)
		}
		if c.roles != nil && (d.Notary == nil || !reflect.DeepEqual(d.Notary.Roles, c.roles)) {
			t.Errorf("%s: notary %+v, want roles %v", c.name, d.Notary, c.roles)
		}
		if d.Cosign != nil && d.Cosign.Checker == nil {
			t.Errorf("%s: cosign rule without a checker", c.name)
		}
	}
}

func TestVerifiersInherited(t *testing.T) {
	p, err := NewWith(Config{
		Default: RuleConfig{Mode: Enforce, Verifiers: &VerifiersConfig{Cosign: &CosignConfig{Keys: []string{"k.pub"}}}},
		Rules:   []RuleConfig{{Match: "a/**", Mode: Warn}, {Match: "b/**", Mode: Off}},
	}, stubLoaders)
	if err != nil {
		t.Fatal(err)
	}
	if v := p.Decide("a/x").Verifiers(); !reflect.DeepEqual(v, []string{"cosign"}) {
		t.Errorf("warn rule did not inherit the default's verifiers: %v", v)
	}
	if v := p.Decide("b/x").Verifiers(); v != nil {
		t.Errorf("off rule has verifiers %v", v)
	}
}

func TestVerifiersInvalid(t *testing.T) {
	cos := &CosignConfig{Keys: []string{"k.pub"}}
	for _, c := range []struct {
		rule RuleConfig
		ld   Loaders
		want string
	}{
		{RuleConfig{Match: "a/**", Mode: Enforce, Verifiers: &VerifiersConfig{}}, stubLoaders, "policy.rules[0] (a/**): verifiers: names no verifier"},
		{RuleConfig{Match: "a/**", Mode: Enforce, Verifiers: &VerifiersConfig{Require: "most", Cosign: cos}}, stubLoaders, `verifiers.require: "most"`},
		{RuleConfig{Match: "a/**", Mode: Enforce, Notary: &NotaryConfig{}, Verifiers: &VerifiersConfig{Notary: &NotaryConfig{}}}, stubLoaders, "notary: given both"},
		{RuleConfig{Match: "a/**", Mode: Off, Verifiers: &VerifiersConfig{Cosign: cos}}, stubLoaders, "verifies nothing"},
		{RuleConfig{Match: "a/**", Mode: Enforce, Verifiers: &VerifiersConfig{Cosign: &CosignConfig{Keys: []string{"bad.pub"}}}}, stubLoaders,
			"policy.rules[0] (a/**): verifiers.cosign: keys[0] (bad.pub): not a PEM public key"},
		{RuleConfig{Match: "a/**", Mode: Enforce, Verifiers: &VerifiersConfig{Cosign: cos}}, Loaders{}, "verifiers.cosign: not supported"},
		{RuleConfig{Match: "a/**", Mode: Enforce, Verifiers: &VerifiersConfig{Notary: &NotaryConfig{Roles: []string{"x"}}}}, stubLoaders, "notary.roles"},
	} {
		_, err := NewWith(Config{Rules: []RuleConfig{c.rule}}, c.ld)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want %q", c.rule, err, c.want)
		}
	}
}

// TestVerifiersFrozen: a frozen trust file answers in place of Notary, so it goes with rules that
// require Notary (inherited only by those) and is an error beside verifiers that do not name it.
func TestVerifiersFrozen(t *testing.T) {
	fz := &FrozenConfig{File: "frozen.json", SHA256: strings.Repeat("ab", 32)}
	cos := &CosignConfig{Keys: []string{"k.pub"}}
	p, err := NewWith(Config{
		Default: RuleConfig{Mode: Enforce, Frozen: fz},
		Rules: []RuleConfig{
			{Match: "a/**", Mode: Enforce, Verifiers: &VerifiersConfig{Cosign: cos}},
			{Match: "b/**", Mode: Enforce, Verifiers: &VerifiersConfig{Notary: &NotaryConfig{}, Cosign: cos}},
		},
	}, stubLoaders)
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Decide("a/x"); d.Frozen != nil || d.Notary != nil {
		t.Errorf("cosign-only rule got %+v", d)
	}
	if d := p.Decide("b/x"); d.Frozen == nil || d.Notary == nil || d.Cosign == nil {
		t.Errorf("notary+cosign rule got %+v", d)
	}
	if d := p.Decide("c/x"); d.Frozen == nil || d.Notary == nil {
		t.Errorf("default got %+v", d)
	}
	_, err = NewWith(Config{Rules: []RuleConfig{{Match: "a/**", Mode: Enforce, Frozen: fz, Verifiers: &VerifiersConfig{Cosign: cos}}}}, stubLoaders)
	if err == nil || !strings.Contains(err.Error(), "frozen: answers in place of notary") {
		t.Errorf("frozen beside cosign only: %v", err)
	}
}
