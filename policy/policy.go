// Package policy decides, per repository, what trustgate requires before it serves content and what
// it does when the requirement is not met. It knows nothing about HTTP or about how a verifier
// works: it only maps a full repository name to a Decision.
package policy

import (
	"fmt"
	"strings"

	"github.com/trustgate/trustgate/sigverify"
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

// Require is how a rule's verifiers combine.
type Require string

const (
	// Any: content is served if one of the rule's verifiers verifies it.
	Any Require = "any"
	// All: every one of the rule's verifiers must verify it, at the same digest.
	All Require = "all"
)

// DigestRule is a requirement of a system that signs digests rather than tags (cosign, Notation):
// a loaded, immutable checker, built when the policy is.
type DigestRule struct {
	Checker sigverify.Checker
}

// Decision is what the policy says about one repository. Verifier requirements are optional
// pointers so that another kind is added as another field, and callers that don't know it keep
// working.
type Decision struct {
	Mode Mode
	// Rule is the pattern that matched, or "default"; it goes into logs so an operator can see
	// which line of the config made the call.
	Rule   string
	Notary *NotaryRule
	// Frozen, when set, answers the repositories its file covers in place of Notary (see
	// FrozenRule).
	Frozen *FrozenRule
	// Cosign and Notation are set when the rule names them (verifiers.cosign, verifiers.notation).
	Cosign   *DigestRule
	Notation *DigestRule
	// Require says how the verifiers that are set combine; "" means Any.
	Require Require
}

// RuleConfig is one configured rule; the default rule has no Match. Notary at rule level is the
// original form and means verifiers: {notary: ...}.
type RuleConfig struct {
	Match     string           `mapstructure:"match"`
	Mode      Mode             `mapstructure:"mode"`
	Notary    *NotaryConfig    `mapstructure:"notary"`
	Verifiers *VerifiersConfig `mapstructure:"verifiers"`
	Frozen    *FrozenConfig    `mapstructure:"frozen"`
}

// VerifiersConfig names a rule's verifiers and how they combine.
type VerifiersConfig struct {
	Require  Require         `mapstructure:"require"` // any (default) or all
	Notary   *NotaryConfig   `mapstructure:"notary"`
	Cosign   *CosignConfig   `mapstructure:"cosign"`
	Notation *NotationConfig `mapstructure:"notation"`
}

// CosignConfig trusts cosign signatures by public key (PEM files) or by keyless identity
// (certificates from the CAs of a Sigstore trusted_root.json).
type CosignConfig struct {
	Keys             []string         `mapstructure:"keys"`
	Identities       []IdentityConfig `mapstructure:"identities"`
	TrustedRoot      string           `mapstructure:"trusted_root"`
	RequireTlog      bool             `mapstructure:"require_tlog"`
	RequireTimestamp bool             `mapstructure:"require_timestamp"`
}

// IdentityConfig is one keyless signer: issuer or issuer_regex, and subject or subject_regex.
type IdentityConfig struct {
	Issuer       string `mapstructure:"issuer"`
	IssuerRegex  string `mapstructure:"issuer_regex"`
	Subject      string `mapstructure:"subject"`
	SubjectRegex string `mapstructure:"subject_regex"`
}

// NotationConfig trusts Notation signatures under a trust policy document and a trust store
// directory laid out as the notation CLI does (x509/ca/<name>/*.pem).
type NotationConfig struct {
	TrustPolicy string `mapstructure:"trust_policy"`
	TrustStore  string `mapstructure:"trust_store"`
}

// Loaders build digest-signing checkers from configuration; New uses them so this package needs
// no verifier implementation (cmd/trustgate passes the real ones). A nil loader makes a rule that
// names its system invalid.
type Loaders struct {
	Cosign   func(CosignConfig) (sigverify.Checker, error)
	Notation func(NotationConfig) (sigverify.Checker, error)
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
func New(cfg Config) (*Policy, error) { return NewWith(cfg, Loaders{}) }

// NewWith is New with the loaders of digest-signing verifiers.
func NewWith(cfg Config, ld Loaders) (*Policy, error) {
	def := cfg.Default
	if def.Match != "" {
		return nil, fmt.Errorf("policy.default: a default rule has no match (got %q)", def.Match)
	}
	if def.Mode == "" {
		def.Mode = Enforce
	}
	d, err := decision(def, "default", ld)
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
		if rc.Notary == nil && rc.Verifiers == nil && (rc.Mode == Enforce || rc.Mode == Warn) {
			rc.Notary, rc.Verifiers = def.Notary, def.Verifiers // inherit the default's verifier settings
		}
		if rc.Frozen == nil && def.Frozen != nil && (rc.Mode == Enforce || rc.Mode == Warn) &&
			(rc.Notary != nil || rc.Verifiers == nil || rc.Verifiers.Notary != nil) {
			rc.Frozen = def.Frozen // it answers in place of Notary: only where Notary is required
		}
		d, err := decision(rc, rc.Match, ld)
		if err != nil {
			return nil, fmt.Errorf("policy.rules[%d] (%s): %w", i, rc.Match, err)
		}
		p.rules = append(p.rules, rule{pattern: pat, decision: d})
	}
	return p, nil
}

func decision(rc RuleConfig, name string, ld Loaders) (Decision, error) {
	if !rc.Mode.valid() {
		return Decision{}, fmt.Errorf("mode %q is not one of enforce, warn, off, deny", rc.Mode)
	}
	d := Decision{Mode: rc.Mode, Rule: name}
	if rc.Mode != Enforce && rc.Mode != Warn {
		if rc.Notary != nil || rc.Verifiers != nil {
			return Decision{}, fmt.Errorf("mode %q verifies nothing, so a verifier requirement would be ignored", rc.Mode)
		}
		if rc.Frozen != nil {
			return Decision{}, fmt.Errorf("mode %q verifies nothing, so frozen trust would be ignored", rc.Mode)
		}
		return d, nil
	}
	notary := rc.Notary
	if vc := rc.Verifiers; vc != nil {
		if notary != nil && vc.Notary != nil {
			return Decision{}, fmt.Errorf("notary: given both at rule level and under verifiers")
		}
		if notary == nil {
			notary = vc.Notary
		}
		switch vc.Require {
		case "", Any:
			d.Require = Any
		case All:
			d.Require = All
		default:
			return Decision{}, fmt.Errorf("verifiers.require: %q is not any or all", vc.Require)
		}
		var err error
		if vc.Cosign != nil {
			if d.Cosign, err = load(ld.Cosign, *vc.Cosign); err != nil {
				return Decision{}, fmt.Errorf("verifiers.cosign: %w", err)
			}
		}
		if vc.Notation != nil {
			if d.Notation, err = load(ld.Notation, *vc.Notation); err != nil {
				return Decision{}, fmt.Errorf("verifiers.notation: %w", err)
			}
		}
		if notary == nil && d.Cosign == nil && d.Notation == nil {
			return Decision{}, fmt.Errorf("verifiers: names no verifier (notary, cosign, notation)")
		}
		if notary == nil && rc.Frozen != nil {
			return Decision{}, fmt.Errorf("frozen: answers in place of notary, which verifiers does not name")
		}
		if notary == nil {
			return d, nil
		}
	}
	// Enforce/warn without any verifier named means Notary with docker's roles (the original
	// configuration form).
	roles := DefaultRoles()
	if notary != nil && len(notary.Roles) > 0 {
		roles = append([]string(nil), notary.Roles...)
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

func load[C any](f func(C) (sigverify.Checker, error), c C) (*DigestRule, error) {
	if f == nil {
		return nil, fmt.Errorf("not supported by this build")
	}
	ch, err := f(c)
	if err != nil {
		return nil, err
	}
	return &DigestRule{Checker: ch}, nil
}

// Verifiers names the verifiers d requires, in the order they are consulted.
func (d Decision) Verifiers() []string {
	var v []string
	if d.Notary != nil {
		v = append(v, "notary")
	}
	if d.Cosign != nil {
		v = append(v, "cosign")
	}
	if d.Notation != nil {
		v = append(v, "notation")
	}
	return v
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
