package resolver

import (
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// State is an immutable, fully verified view of one GUN's trust data. It is safe to share
// between goroutines and to keep after later Updates.
type State struct {
	gun     string
	expires time.Time
	roles   map[string]*roleState // only roles that verified (skipped delegations are absent)
	// rootSigners are the root certificate key IDs whose signatures the trusted root carries:
	// the IDs an operator writes into trust_pinning.certs to stop trusting on first use.
	rootSigners []string
	// versions are the version floors after the verification that made the state: for every
	// role that verified, its version.
	versions map[string]int
}

// roleState is one verified targets role.
type roleState struct {
	targets  map[string]fileMeta
	signers  []string
	expires  time.Time  // earliest expiry of root, timestamp, snapshot and the chain down to here
	children []walkRole // valid delegations, paths already restricted by this role's paths
}

// walkRole is a delegation as seen from its parent: its paths are intersected with the
// parent's (RestrictDelegationPathPrefixes), so reaching it implies its ancestors allow it.
type walkRole struct {
	name  string
	paths []string
}

// GUN returns the repository the state belongs to.
func (s *State) GUN() string { return s.gun }

// RootKeyIDs returns the key IDs of the root certificates that signed the trusted root, in the
// form trust_pinning.certs expects.
func (s *State) RootKeyIDs() []string { return slices.Clone(s.rootSigners) }

// Expires returns the earliest expiry of root, timestamp, snapshot and targets; past it the
// state must be refreshed before it is used again.
func (s *State) Expires() time.Time { return s.expires }

func (w walkRole) allows(tag string) bool {
	if tag == "" {
		return true
	}
	for _, p := range w.paths {
		if strings.HasPrefix(tag, p) {
			return true
		}
	}
	return false
}

func isAncestor(child, ancestor string) bool {
	return child == ancestor || strings.HasPrefix(child, ancestor+"/")
}

// walk is notary's Repo.WalkTargets: breadth first from targets, descending only through
// roles that lead to rolePath or that are visited (tag within their paths), skipping roles
// listed in skip. visit returns true to stop.
func (s *State) walk(tag, rolePath string, skip []string, visit func(w walkRole, r *roleState) bool) {
	queue := []walkRole{{name: roleTargets, paths: []string{""}}}
	for len(queue) > 0 {
		w := queue[0]
		queue = queue[1:]
		r, ok := s.roles[w.name]
		if !ok {
			continue
		}
		if strings.HasPrefix(rolePath, w.name+"/") {
			queue = append(queue, r.children...)
			continue
		}
		if w.allows(tag) && isAncestor(w.name, rolePath) && !slices.Contains(skip, w.name) {
			if visit(w, r) {
				return
			}
			queue = append(queue, r.children...)
		}
	}
}

func without(roles []string, role string) []string {
	var out []string
	for _, r := range roles {
		if r != role {
			out = append(out, r)
		}
	}
	return out
}

// Lookup answers which digest tag is signed to. It follows docker's rule: notary's
// GetTargetByName over roles in priority order, and the hit is accepted only if the role that
// signed it is itself one of roles (a tag found first in, say, targets/alice is refused, not
// searched further). nil roles means DefaultRoles.
func (s *State) Lookup(tag string, roles []string) (Target, error) {
	if len(roles) == 0 {
		roles = DefaultRoles
	}
	for _, role := range roles {
		var (
			found bool
			hit   string
			meta  fileMeta
		)
		s.walk(tag, role, without(roles, role), func(w walkRole, r *roleState) bool {
			if m, ok := r.targets[tag]; ok {
				found, hit, meta = true, w.name, m
				return true
			}
			return false
		})
		if !found {
			continue
		}
		if !slices.Contains(roles, hit) {
			return Target{}, fmt.Errorf("%w: %s:%s is signed only by %s, which is not an accepted role", ErrTagNotSigned, s.gun, tag, hit)
		}
		sum, ok := meta.Hashes["sha256"]
		if !ok || len(sum) != 32 {
			return Target{}, fmt.Errorf("%w: %s:%s in %s has no valid sha256 hash", ErrInvalid, s.gun, tag, hit)
		}
		r := s.roles[hit]
		return Target{
			GUN:     s.gun,
			Tag:     tag,
			Digest:  digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(sum)),
			Size:    meta.Length,
			Role:    hit,
			Signers: slices.Clone(r.signers),
			Expires: r.expires,
		}, nil
	}
	return Target{}, fmt.Errorf("%w: %s:%s (roles %s)", ErrTagNotSigned, s.gun, tag, strings.Join(roles, ", "))
}

// Tags lists the tags Lookup would accept, sorted: notary's ListTargets priority (first role
// to list a name owns it) filtered to names owned by an accepted role with a sha256 hash.
func (s *State) Tags(roles []string) []string {
	if len(roles) == 0 {
		roles = DefaultRoles
	}
	owner := map[string]string{}
	ok256 := map[string]bool{}
	for _, role := range roles {
		s.walk("", role, without(roles, role), func(w walkRole, r *roleState) bool {
			for name, m := range r.targets {
				if _, seen := owner[name]; seen || !w.allows(name) {
					continue
				}
				owner[name] = w.name
				ok256[name] = len(m.Hashes["sha256"]) == 32
			}
			return false
		})
	}
	var tags []string
	for name, role := range owner {
		if slices.Contains(roles, role) && ok256[name] {
			tags = append(tags, name)
		}
	}
	sort.Strings(tags)
	return tags
}
