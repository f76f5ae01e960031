package policy

import (
	"fmt"
	"regexp"
	"strings"
)

// A pattern is anchored at both ends, and its wildcards match only characters a repository name
// can hold, so that "docker.io/library/*" can never match
// "evil.example/docker.io/library/x" — an unanchored wildcard was exactly the bypass portieris
// had to fix. '*' stays inside one path segment; '**' spans segments, which is what a user means
// by "everything under team/".
type pattern struct {
	text string
	re   *regexp.Regexp
}

// patternChars are the characters of a repository name (host, port, path) plus '*'. Anything else
// in a pattern is a typo that would silently never match, so it fails start-up instead.
const patternChars = "abcdefghijklmnopqrstuvwxyz0123456789._-:/*"

func compilePattern(text string) (pattern, error) {
	if text == "" {
		return pattern{}, fmt.Errorf("empty pattern")
	}
	if len(text) > 512 {
		return pattern{}, fmt.Errorf("pattern %.32q...: longer than 512 characters", text)
	}
	if i := strings.IndexFunc(text, func(r rune) bool { return !strings.ContainsRune(patternChars, r) }); i >= 0 {
		return pattern{}, fmt.Errorf("pattern %q: character %q is not allowed (lower-case names, '*' and '**' only)", text, text[i])
	}
	if strings.Contains(text, "***") {
		return pattern{}, fmt.Errorf("pattern %q: '***' is ambiguous; use '*' or '**'", text)
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(text); {
		switch {
		case strings.HasPrefix(text[i:], "**"):
			b.WriteString("[a-z0-9._:/-]+")
			i += 2
		case text[i] == '*':
			b.WriteString("[a-z0-9._:-]+")
			i++
		default:
			b.WriteString(regexp.QuoteMeta(text[i : i+1]))
			i++
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	if err != nil {
		return pattern{}, fmt.Errorf("pattern %q: %w", text, err)
	}
	return pattern{text: text, re: re}, nil
}

func (p pattern) match(name string) bool { return p.re.MatchString(name) }
