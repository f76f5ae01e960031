package resolver

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// State is an immutable, fully verified view of one GUN's trust data. It is safe to share
// between goroutines and to keep after later Updates. An Update that finds nothing changed
// returns the same *State.
type State struct {
	gun string
	// base is the earliest expiry of root, timestamp and snapshot; expires adds targets.
	base, expires time.Time
	roles         map[string]*roleState // only roles that verified (skipped delegations are absent)
	// rootSigners are the root certificate key IDs whose signatures the trusted root carries:
	// the IDs an operator writes into trust_pinning.certs to stop trusting on first use.
	rootSigners []string
	// versions are the version floors after the verification that made the state: for every
	// role that verified, its version.
	versions map[string]int
	// size estimates the bytes the State holds (see Size).
	size int64
	// index holds the lookup indexes, built once per set of accepted roles. States whose roles
	// are the same (a re-signed timestamp over the same snapshot) share it.
	index *indexes
	// checked is when the trust server was asked for the timestamp this state verified; zero
	// = during the Update that returned it.
	checked time.Time
	// views holds what users derived from this State (Memo); nil = nothing is kept.
	views *views
}

// views are the values Memo keeps for one State.
type views struct {
	mu sync.Mutex
	m  map[string]any
}

func newViews() *views { return &views{m: map[string]any{}} }

// Memo returns the value kept on s under key, calling build to make it if there is none. A value
// lives exactly as long as s: it may refer to s (a view of s under some policy) without keeping s
// reachable after everyone else has let go of it, as a cache keyed by State would. At most
// maxIndexes keys are kept (all are dropped to make room).
func (s *State) Memo(key string, build func() any) any {
	if s.views == nil {
		return build()
	}
	s.views.mu.Lock()
	defer s.views.mu.Unlock()
	if v, ok := s.views.m[key]; ok {
		return v
	}
	v := build()
	if len(s.views.m) >= maxIndexes {
		clear(s.views.m)
	}
	s.views.m[key] = v
	return v
}

// roleState is one verified targets role. It is immutable and shared by every State in which
// the role's bytes, keys and delegation chain are unchanged.
type roleState struct {
	name     string
	targets  map[string]target
	signers  []string
	expires  time.Time  // earliest expiry of this role and of the delegation chain above it
	children []walkRole // valid delegations, paths already restricted by this role's paths
	size     int64      // estimated bytes held
}

// Estimated heap bytes (State.Size) per entry of a targets role (swiss-table slot of a string key
// and a target, control byte and load factor, the name's allocation), per index entry (owner
// slot, sorted slice element; only the latter, bytesPerSortedName, for an index of a single
// role), per role, and per repository whatever its targets (the trusted root raw and parsed,
// timestamp, snapshot, floors, HTTP client). Calibrated against BenchmarkScaleMemory and
// BenchmarkScaleRepos (cache/).
const (
	bytesPerTarget     = 96
	bytesPerIndexEntry = 48
	bytesPerSortedName = 16
	bytesPerRole       = 512
	bytesPerRepository = 16 << 10
)

// newRoleState builds the roleState of a role whose file (rawLen bytes, which the resolver keeps
// too) verified as tg.
func newRoleState(name string, tg *targetsSigned, rawLen int64, signers []string, expires time.Time) *roleState {
	rs := &roleState{name: name, targets: tg.Targets, signers: signers, expires: expires,
		size: bytesPerRole + max(rawLen, 0) + int64(len(tg.Targets))*bytesPerTarget}
	for n := range tg.Targets {
		rs.size += int64(len(n))
	}
	return rs
}

// target is one entry of a targets role, as little as a lookup needs: the sha256 and length of
// the signed manifest. ok is false when the entry lists no well-formed sha256 (Lookup then
// refuses it as invalid, Tags leaves it out).
type target struct {
	sum  [32]byte
	size int64
	ok   bool
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

// Size estimates the heap bytes the state holds: its roles' targets and its default index.
// States built from the same roles share them, so the sum over several States overstates.
func (s *State) Size() int64 { return s.size }

// Checked returns when the timestamp this state verified was fetched from the trust server
// (by this process or, through a shared store, another); zero means during the Update that
// returned it. Freshness (the trust TTL) counts from then.
func (s *State) Checked() time.Time { return s.checked }

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

// indexes are the tagIndex of each set of accepted roles a State has been asked about.
type indexes struct {
	mu      sync.Mutex
	byRoles map[string]*tagIndex
}

// maxIndexes bounds the role sets indexed per State (policies name a handful).
const maxIndexes = 16

// tagIndex answers Lookup and Tags under one list of accepted roles without walking: the owner
// of each name is the role that owns it (the first role, in priority order and then breadth
// first within the paths it may sign, to list it: what notary's GetTargetByName finds), and
// tags is the sorted names owned by an accepted role with a valid sha256. When a single role
// is reached and may sign every name (a repository without delegations), it owns exactly the
// names it lists: only it is kept, not a map of every name to it.
type tagIndex struct {
	single *roleState
	owners map[string]*roleState
	tags   []string
}

// owner returns the role that owns name.
func (ix *tagIndex) owner(name string) (*roleState, bool) {
	if ix.single != nil {
		_, ok := ix.single.targets[name]
		return ix.single, ok
	}
	r, ok := ix.owners[name]
	return r, ok
}

// size estimates the heap bytes ix holds besides the roles.
func (ix *tagIndex) size() int64 {
	if ix.single != nil {
		return int64(len(ix.tags)) * bytesPerSortedName
	}
	return int64(len(ix.owners)) * bytesPerIndexEntry
}

// roleSets returns the role lists indexed so far.
func (x *indexes) roleSets() [][]string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([][]string, 0, len(x.byRoles))
	for key := range x.byRoles {
		out = append(out, strings.Split(key, "\x00"))
	}
	return out
}

func (s *State) indexFor(roles []string) *tagIndex {
	key := strings.Join(roles, "\x00")
	s.index.mu.Lock()
	defer s.index.mu.Unlock()
	if ix, ok := s.index.byRoles[key]; ok {
		return ix
	}
	ix := s.buildIndex(roles)
	if len(s.index.byRoles) >= maxIndexes {
		clear(s.index.byRoles)
	}
	s.index.byRoles[key] = ix
	return ix
}

// buildIndex is notary's ListTargets priority applied to every name at once.
func (s *State) buildIndex(roles []string) *tagIndex {
	type visit struct {
		w walkRole
		r *roleState
	}
	var visits []visit
	for _, role := range roles {
		s.walk("", role, without(roles, role), func(w walkRole, r *roleState) bool {
			visits = append(visits, visit{w, r})
			return false
		})
	}
	ix := &tagIndex{}
	if len(visits) == 1 && slices.Contains(visits[0].w.paths, "") {
		ix.single = visits[0].r
		if r := ix.single; slices.Contains(roles, r.name) {
			for name, t := range r.targets {
				if t.ok {
					ix.tags = append(ix.tags, name)
				}
			}
		}
	} else {
		ix.owners = map[string]*roleState{}
		for _, v := range visits {
			for name := range v.r.targets {
				if _, seen := ix.owners[name]; seen || !v.w.allows(name) {
					continue
				}
				ix.owners[name] = v.r
			}
		}
		for name, r := range ix.owners {
			if slices.Contains(roles, r.name) && r.targets[name].ok {
				ix.tags = append(ix.tags, name)
			}
		}
	}
	slices.Sort(ix.tags)
	return ix
}

// Lookup answers which digest tag is signed to. It follows docker's rule: notary's
// GetTargetByName over roles in priority order, and the hit is accepted only if the role that
// signed it is itself one of roles (a tag found first in, say, targets/alice is refused, not
// searched further). nil roles means DefaultRoles.
func (s *State) Lookup(tag string, roles []string) (Target, error) {
	if len(roles) == 0 {
		roles = DefaultRoles
	}
	r, found := s.indexFor(roles).owner(tag)
	if !found {
		return Target{}, fmt.Errorf("%w: %s:%s (roles %s)", ErrTagNotSigned, s.gun, tag, strings.Join(roles, ", "))
	}
	if !slices.Contains(roles, r.name) {
		return Target{}, fmt.Errorf("%w: %s:%s is signed only by %s, which is not an accepted role", ErrTagNotSigned, s.gun, tag, r.name)
	}
	t := r.targets[tag]
	if !t.ok {
		return Target{}, fmt.Errorf("%w: %s:%s in %s has no valid sha256 hash", ErrInvalid, s.gun, tag, r.name)
	}
	return Target{
		GUN:     s.gun,
		Tag:     tag,
		Digest:  digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(t.sum[:])),
		Size:    t.size,
		Role:    r.name,
		Signers: slices.Clone(r.signers),
		Expires: minTime(s.base, r.expires),
	}, nil
}

// Tags lists the tags Lookup would accept, sorted: notary's ListTargets priority (first role
// to list a name owns it) filtered to names owned by an accepted role with a sha256 hash. The
// slice is shared: callers must not modify it.
func (s *State) Tags(roles []string) []string {
	if len(roles) == 0 {
		roles = DefaultRoles
	}
	tags := s.indexFor(roles).tags
	return tags[:len(tags):len(tags)]
}
