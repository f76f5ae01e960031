package policy

import (
	"fmt"
	"strings"
)

// FrozenRule is frozen trust (package frozen): Docker Content Trust bindings exported into a
// file by `trustgate trust freeze`. For every repository the file holds, it replaces Notary: tags
// are served at the frozen digests and nothing else is signed, whether or not a Notary server
// answers, until the file's expiry, after which those repositories fail closed (503). Repositories
// the file does not hold are verified with Notary as before.
type FrozenRule struct {
	File   string // path of the frozen trust file
	SHA256 string // its pinned hex SHA-256: a file that differs is refused
}

// FrozenConfig configures a FrozenRule: frozen: {file: F, sha256: H}.
type FrozenConfig struct {
	File   string `mapstructure:"file"`
	SHA256 string `mapstructure:"sha256"`
}

func frozenRule(c FrozenConfig) (FrozenRule, error) {
	if c.File == "" {
		return FrozenRule{}, fmt.Errorf("frozen.file is required")
	}
	sum := strings.ToLower(c.SHA256)
	if len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
		return FrozenRule{}, fmt.Errorf("frozen.sha256: %q is not a hex SHA-256 (trustgate trust freeze prints it); it is required, so a changed file is refused", c.SHA256)
	}
	return FrozenRule{File: c.File, SHA256: sum}, nil
}

// Frozen returns every frozen trust file the policy names (default and rules), once each.
func (p *Policy) Frozen() []FrozenRule {
	var out []FrozenRule
	seen := map[FrozenRule]bool{}
	for _, d := range append([]Decision{p.def}, p.decisions()...) {
		if d.Frozen != nil && !seen[*d.Frozen] {
			seen[*d.Frozen] = true
			out = append(out, *d.Frozen)
		}
	}
	return out
}

func (p *Policy) decisions() []Decision {
	out := make([]Decision, len(p.rules))
	for i, r := range p.rules {
		out[i] = r.decision
	}
	return out
}

// Pattern is a repository pattern as rules match them: anchored, '*' within one path segment,
// '**' across segments.
type Pattern struct{ p pattern }

// CompilePattern checks and compiles text.
func CompilePattern(text string) (Pattern, error) {
	p, err := compilePattern(text)
	return Pattern{p}, err
}

// Match reports whether the full repository name matches.
func (p Pattern) Match(name string) bool { return p.p.re != nil && p.p.match(name) }

// Literal reports whether the pattern names exactly one repository (no wildcard).
func (p Pattern) Literal() bool { return !strings.Contains(p.p.text, "*") }

// String returns the pattern as written.
func (p Pattern) String() string { return p.p.text }
