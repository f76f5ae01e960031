// Package policy decides, per repository, what trustgate requires before it serves content and what
// it does when the requirement is not met. It knows nothing about HTTP or about how a verifier
// works: it only maps a full repository name to a Decision.
package policy

import (
	"fmt"
	"strings"
)

// Mode is what happens to a repository's pulls.
type Mode string

const (
	// Enforce serves only content reachable from a verified signature; anything else is refused.
	Enforce Mode = "enforce"
	// Warn verifies, serves unverified content anyway, and marks and logs it. It exists so a
	// policy can be rolled out and watched before it starts refusing pulls.
	Warn Mode = "warn"
	// Off is a plain pull-through: no verification.
	Off Mode = "off"
	// Deny refuses every pull; as the default it turns the rules into an egress allowlist.
	Deny Mode = "deny"
)

func (m Mode) valid() bool {
	switch m {
	case Enforce, Warn, Off, Deny:
		return true
	}
	return false
}

// NotaryRule is the Docker Content Trust (Notary v1) requirement.
type NotaryRule struct {
	// Roles that may sign a tag, in priority order: the first role that lists the tag wins.
	Roles []string
}

// Decision is what the policy says about one repository. Verifier requirements are optional
// pointers so that a second kind (cosign, Notation) is added as another field, and callers that
// don't know it keep working.
type Decision struct {
	Mode Mode
	// Rule is the pattern that matched, or "default"; it goes into logs so an operator can see
	// which line of the config made the call.
	Rule   string
	Notary *NotaryRule
	// Frozen, when set, answers the repositories its file covers in place of Notary (see
	// FrozenRule).
	Frozen *FrozenRule
}

// RuleConfig is one configured rule; the default rule has no Match.
type RuleConfig struct {
	Match  string        `mapstructure:"match"`
	Mode   Mode          `mapstructure:"mode"`
	Notary *NotaryConfig `mapstructure:"notary"`
	Frozen *FrozenConfig `mapstructure:"frozen"`
}

// NotaryConfig configures a NotaryRule.
type NotaryConfig struct {
	Roles []string `mapstructure:"roles"`
}

// Config is the policy section of the configuration file.
type Config struct {
	Default RuleConfig   `mapstructure:"default"`
	Rules   []RuleConfig `mapstructure:"rules"`
}

// DefaultRoles is docker's rule: a tag in targets/releases wins over one in targets, and no other
// delegation counts. A function, not a variable, so no caller can change it for everyone.
func DefaultRoles() []string { return []string{"targets/releases", "targets"} }

type rule struct {
	pattern  pattern
	decision Decision
}

// Policy is an ordered rule list; the first rule whose pattern matches wins.
type Policy struct {
	rules []rule
	def   Decision
}

// New validates cfg. Errors name the offending rule so a bad config fails start-up with a
// message the operator can act on.
func New(cfg Config) (*Policy, error) {
	def := cfg.Default
	if def.Match != "" {
		return nil, fmt.Errorf("policy.default: a default rule has no match (got %q)", def.Match)
	}
	if def.Mode == "" {
		def.Mode = Enforce
	}
	d, err := decision(def, "default")
	if err != nil {
		return nil, fmt.Errorf("policy.default: %w", err)
	}
	p := &Policy{def: d}
	for i, rc := range cfg.Rules {
		pat, err := compilePattern(rc.Match)
		if err != nil {
			return nil, fmt.Errorf("policy.rules[%d].match: %w", i, err)
		}
		if rc.Mode == "" {
			return nil, fmt.Errorf("policy.rules[%d] (%s): mode is required (enforce, warn, off or deny)", i, rc.Match)
		}
		if rc.Notary == nil && def.Notary != nil && (rc.Mode == Enforce || rc.Mode == Warn) {
			rc.Notary = def.Notary // inherit the default's verifier settings
		}
		if rc.Frozen == nil && def.Frozen != nil && (rc.Mode == Enforce || rc.Mode == Warn) {
			rc.Frozen = def.Frozen
		}
		d, err := decision(rc, rc.Match)
		if err != nil {
			return nil, fmt.Errorf("policy.rules[%d] (%s): %w", i, rc.Match, err)
		}
		p.rules = append(p.rules, rule{pattern: pat, decision: d})
	}
	return p, nil
}

func decision(rc RuleConfig, name string) (Decision, error) {
	if !rc.Mode.valid() {
		return Decision{}, fmt.Errorf("mode %q is not one of enforce, warn, off, deny", rc.Mode)
	}
	d := Decision{Mode: rc.Mode, Rule: name}
	if rc.Mode != Enforce && rc.Mode != Warn {
		if rc.Notary != nil {
			return Decision{}, fmt.Errorf("mode %q verifies nothing, so a notary requirement would be ignored", rc.Mode)
		}
		if rc.Frozen != nil {
			return Decision{}, fmt.Errorf("mode %q verifies nothing, so frozen trust would be ignored", rc.Mode)
		}
		return d, nil
	}
	// Notary is the only verifier today, so enforce/warn without one means Notary with docker's
	// roles. When a second verifier exists this becomes "at least one verifier is required".
	roles := DefaultRoles()
	if rc.Notary != nil && len(rc.Notary.Roles) > 0 {
		roles = append([]string(nil), rc.Notary.Roles...)
	}
	seen := map[string]bool{}
	for _, r := range roles {
		if r != "targets" && !strings.HasPrefix(r, "targets/") {
			return Decision{}, fmt.Errorf("notary.roles: %q is not a targets role (targets or targets/<name>)", r)
		}
		if seen[r] {
			return Decision{}, fmt.Errorf("notary.roles: %q listed twice", r)
		}
		seen[r] = true
	}
	d.Notary = &NotaryRule{Roles: roles}
	if rc.Frozen != nil {
		f, err := frozenRule(*rc.Frozen)
		if err != nil {
			return Decision{}, err
		}
		d.Frozen = &f
	}
	return d, nil
}

// Decide returns the decision for a full repository name such as "docker.io/library/alpine".
// The returned Decision shares no memory with the Policy.
func (p *Policy) Decide(name string) Decision {
	for _, r := range p.rules {
		if r.pattern.match(name) {
			return r.decision.clone()
		}
	}
	return p.def.clone()
}

func (d Decision) clone() Decision {
	if d.Notary != nil {
		d.Notary = &NotaryRule{Roles: append([]string(nil), d.Notary.Roles...)}
	}
	if d.Frozen != nil {
		f := *d.Frozen
		d.Frozen = &f
	}
	return d
}
