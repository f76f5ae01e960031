package resolver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"
)

// pass is one timestamp→snapshot→targets→delegations run. Like notary's tryLoadRemote, each
// role is committed (and persisted) as soon as it verifies, so its version floor holds even
// if a later step of the same pass fails.
type pass struct {
	c   *Client
	g   *gunState
	now time.Time
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// verifiedRole is what one role's bytes verified to, kept so that the same bytes under the same
// keys are not verified again: their checksums, the fingerprint of the keys they verified
// against, and the parsed content. Signatures and structure depend on nothing else; version
// floors and expiry do, and are checked on every use.
type verifiedRole struct {
	sha256  [32]byte
	sha512  []byte // nil unless a parent listed a sha512 when the bytes were verified
	keys    [32]byte
	sc      signedCommon
	signers []string
	ts      *timestampSigned
	snap    *snapshotSigned
	tg      *targetsSigned
}

// matches reports whether meta describes exactly these bytes: every supported hash it lists
// is known and equal, and it lists at least one.
func (v *verifiedRole) matches(meta fileMeta) bool {
	n := 0
	for alg, want := range meta.Hashes {
		switch alg {
		case "sha256":
			if !bytes.Equal(v.sha256[:], want) {
				return false
			}
		case "sha512":
			if v.sha512 == nil || !bytes.Equal(v.sha512, want) {
				return false
			}
		default:
			continue
		}
		n++
	}
	return n > 0
}

// verifyRole returns role's verified content. raw is the bytes when the caller has them (the
// timestamp); otherwise meta (from the parent) names them and they are fetched only if they
// are not the ones verified last time under the same keys. fresh is nil when nothing was
// verified (the caller need not accept anything).
//
// Verification runs notary's per-role order: signatures, structure (parse), version, expiry —
// except that a delegation is parsed and version-checked before its signatures
// (builder.go loadDelegation), which decides whether a broken delegation is fatal or skipped:
// a rollback is fatal even when the signatures would not verify.
func (p *pass) verifyRole(ctx context.Context, role string, raw []byte, meta *fileMeta, ks keySet) (v *verifiedRole, fresh []byte, err error) {
	gun := p.g.remote.gun
	fp := ks.fingerprint()
	if prev := p.g.verified[role]; prev != nil && prev.keys == fp {
		if (meta != nil && prev.matches(*meta)) || (meta == nil && sha256.Sum256(raw) == prev.sha256) {
			if err := checkVersion(prev.sc, p.g.versions[role], gun, role); err != nil {
				return nil, nil, err
			}
			if err := checkExpiry(prev.sc, p.now, gun, role); err != nil {
				return nil, nil, err
			}
			return prev, nil, nil
		}
	}
	if meta != nil {
		if raw, err = p.c.fetchChecked(ctx, p.g, role, *meta); err != nil {
			return nil, nil, err
		}
	}
	if isDelegation(role) {
		if err := checkDelegationCerts(ks); err != nil {
			return nil, nil, fmt.Errorf("%s %s: %w", gun, role, err)
		}
	}
	v = &verifiedRole{sha256: sha256.Sum256(raw), keys: fp}
	if meta != nil {
		if _, ok := meta.Hashes["sha512"]; ok {
			s := sha512.Sum512(raw)
			v.sha512 = s[:]
		}
	}
	env, err := parseEnvelope(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", gun, role, err)
	}
	parse := func() error {
		switch role {
		case roleTimestamp:
			v.ts, err = parseTimestamp(env)
			if err == nil {
				v.sc = v.ts.signedCommon
			}
		case roleSnapshot:
			v.snap, err = parseSnapshot(env)
			if err == nil {
				v.sc = v.snap.signedCommon
			}
		default:
			v.tg, err = parseTargets(env, role)
			if err == nil {
				v.sc = v.tg.signedCommon
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", gun, err)
		}
		return checkVersion(v.sc, p.g.versions[role], gun, role)
	}
	parseFirst := isDelegation(role)
	if parseFirst {
		if err := parse(); err != nil {
			return nil, nil, err
		}
	}
	p.c.verifications.Add(1)
	if v.signers, err = verifySignatures(env, ks); err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", gun, role, err)
	}
	if !parseFirst {
		if err := parse(); err != nil {
			return nil, nil, err
		}
	}
	if err := checkExpiry(v.sc, p.now, gun, role); err != nil {
		return nil, nil, err
	}
	return v, raw, nil
}

// accept commits a role that verified: it becomes the cached copy and its version the floor,
// persisted before the pass goes on to use it. A failed write fails the pass closed. Only then
// is the verification remembered, so bytes whose acceptance failed are accepted again next
// time.
func (p *pass) accept(role string, raw []byte, v *verifiedRole) error {
	g := p.g
	if p.parents(role, v) && !bytes.Equal(g.files[role], raw) {
		g.recheck = true
	}
	g.files[role] = raw
	g.versions[role] = max(v.sc.Version, g.versions[role])
	if err := p.c.persist(g, []string{role}); err != nil {
		return err
	}
	g.verified[role] = v
	return nil
}

// parents reports whether role, about to be accepted as v, is or was the parent of a cached
// role: only then can its new bytes make a cached floor stale (staleFloors). A role that is
// accepted was itself just verified under the keys its parent (or root) lists now, so its own
// new bytes cannot; root changes are rechecked by commitRoot, and a load by Update.
func (p *pass) parents(role string, v *verifiedRole) bool {
	if v.tg == nil {
		return false
	}
	if len(v.tg.Delegations.Roles) > 0 {
		return true
	}
	prefix := role + "/"
	for r := range p.g.versions {
		if strings.HasPrefix(r, prefix) {
			return true
		}
	}
	for r := range p.g.files {
		if strings.HasPrefix(r, prefix) {
			return true
		}
	}
	return false
}

// forgetUndelegated drops the floor and cached file of every delegation under parent that
// parent, just verified, no longer lists (and of everything below such a delegation). A
// removed delegation that is added again starts over at version 1, which notary accepts: its
// old builder cannot load the cached file once the cached parent stops listing it. Only a
// verified parent can do this, so a replayed or forged parent cannot reset a floor; a parent
// that was skipped (expired, under threshold) forgets nothing.
func (p *pass) forgetUndelegated(parent string, tg *targetsSigned) error {
	g := p.g
	listed := map[string]bool{}
	for _, d := range tg.Delegations.Roles {
		listed[d.Name] = true
	}
	known := map[string]bool{}
	for role := range g.versions {
		known[role] = true
	}
	for role := range g.files {
		known[role] = true
	}
	var gone []string
	for role := range known {
		rest, ok := strings.CutPrefix(role, parent+"/")
		if !ok {
			continue
		}
		child, _, _ := strings.Cut(rest, "/")
		if !listed[parent+"/"+child] {
			gone = append(gone, role)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	slices.Sort(gone)
	p.c.log.Info("delegation no longer listed by its parent, forgetting its version floor",
		"gun", g.remote.gun, "parent", parent, "roles", gone)
	return p.c.forgetRoles(g, gone)
}

// staleFloors returns the cached roles whose floors notary's old builder would no longer load,
// judged from the cached files alone (each written only once verified):
//   - a top-level role whose cached file the cached root's keys for it did not sign (its keys
//     or threshold were rotated, e.g. to recover from a fast-forwarded timestamp);
//   - a delegation that its cached parent no longer lists (see forgetRoles), or lists under
//     keys that did not sign its cached file, or whose parent delegation is not cached at all;
//   - everything below a stale delegation.
//
// Unlike notary, whose old builder loads no delegation once it cannot load targets, a stale
// targets leaves the delegations' floors alone: they are judged by the keys the cached targets
// lists for them, so an update that fails after a targets key rotation cannot open them to a
// rollback.
//
// "Did not sign" is judged by key IDs, not by verifying signatures: a rotation changes the key
// IDs, a damaged file does not, and a file that does not parse decides nothing, so damage on
// disk never drops a floor.
func staleFloors(files map[string][]byte, versions map[string]int) []string {
	known := map[string]bool{}
	for role := range versions {
		known[role] = true
	}
	for role := range files {
		known[role] = true
	}
	gone := map[string]bool{} // top-level roles here do not make their children stale
	if env, err := parseEnvelope(files[roleRoot]); err == nil {
		if rs, err := parseRoot(env); err == nil {
			root := &trustedRoot{signed: rs}
			for _, role := range []string{roleTimestamp, roleSnapshot, roleTargets} {
				if raw, ok := files[role]; ok && !signedByKeyIDs(raw, root.keySet(role)) {
					gone[role] = true
				}
			}
		}
	}
	// parents holds each cached parent parsed once; nil: missing or unparseable. A parent sorts
	// before its children.
	parents := map[string]*targetsSigned{}
	for _, role := range slices.Sorted(maps.Keys(known)) {
		if !isDelegation(role) {
			continue
		}
		parent := path.Dir(role)
		if parent != roleTargets && (gone[parent] || !known[parent]) {
			gone[role] = true
			continue
		}
		tg, ok := parents[parent]
		if !ok {
			if env, err := parseEnvelope(files[parent]); err == nil {
				tg, _ = parseTargets(env, parent)
			}
			parents[parent] = tg
		}
		if tg == nil {
			continue
		}
		i := slices.IndexFunc(tg.Delegations.Roles, func(d delegationRole) bool { return d.Name == role })
		if i < 0 {
			gone[role] = true
			continue
		}
		if raw, ok := files[role]; ok {
			d := tg.Delegations.Roles[i]
			ks := keySet{name: role, keys: map[string]tufKey{}, threshold: d.Threshold}
			for _, id := range d.KeyIDs {
				ks.keys[id] = tg.Delegations.Keys[id]
			}
			gone[role] = !signedByKeyIDs(raw, ks)
		}
	}
	var out []string
	for role, g := range gone {
		if g && known[role] {
			out = append(out, role)
		}
	}
	slices.Sort(out)
	return out
}

// signedByKeyIDs reports whether raw carries signatures by at least a threshold of distinct
// key IDs of ks, or does not parse (and so cannot be judged).
func signedByKeyIDs(raw []byte, ks keySet) bool {
	env, err := parseEnvelope(raw)
	if err != nil {
		return true
	}
	ids := map[string]bool{}
	for _, sig := range env.Signatures {
		if _, ok := ks.keys[sig.KeyID]; ok {
			ids[sig.KeyID] = true
		}
	}
	return len(ids) >= ks.threshold
}

// updatePass verifies the current trust data, committing each role as it verifies. Bytes
// verified before under the same keys are not verified again (only their version floor and
// expiry are checked), and a timestamp identical to the one the last State rests on returns
// that State itself.
func (c *Client) updatePass(ctx context.Context, g *gunState, now time.Time) (*State, error) {
	p := &pass{c: c, g: g, now: now}
	gun := g.remote.gun
	root := g.root
	nextRoot := g.nextRoot
	g.nextRoot = nil // only a snapshot verified in this pass may name the next root

	// 1. timestamp: always fetched; on network/status failure a still-valid cached one
	// stands in (notary's downloadTimestamp).
	raw, err := c.timestamp(ctx, g)
	if err != nil {
		cached, ok := g.files[roleTimestamp]
		if !outage(err) || !ok {
			return nil, err
		}
		if _, _, verr := p.verifyRole(ctx, roleTimestamp, cached, nil, root.keySet(roleTimestamp)); verr != nil {
			return nil, fmt.Errorf("%w; cached timestamp unusable: %w", err, verr)
		}
		c.log.Warn("trust server unavailable, using cached timestamp", "gun", gun, "err", err)
		raw = cached
	}
	tv, fresh, err := p.verifyRole(ctx, roleTimestamp, raw, nil, root.keySet(roleTimestamp))
	if err != nil {
		return nil, err
	}
	last := g.last
	if last != nil && fresh == nil && g.lastRoot == root && tv.sha256 == g.lastTS && now.Before(g.lastUntil) {
		// The timestamp the last State rests on, under the same root, with everything it
		// vouches for still unexpired: the same snapshot, so the same State.
		g.nextRoot = nextRoot
		return last, nil
	}
	g.last = nil
	if fresh != nil {
		if err := p.accept(roleTimestamp, fresh, tv); err != nil {
			return nil, err
		}
	}
	ts := tv.ts
	base := minTime(root.signed.Expires, ts.Expires)

	// 2. snapshot, by the hash the timestamp pins.
	meta := ts.Meta[roleSnapshot]
	sv, fresh, err := p.verifyRole(ctx, roleSnapshot, nil, &meta, root.keySet(roleSnapshot))
	if err != nil {
		return nil, err
	}
	snap := sv.snap
	rootMeta := snap.Meta[roleRoot]
	g.nextRoot = &rootMeta
	if err := checkHashes(root.raw, roleRoot, rootMeta.Hashes); err != nil {
		return nil, fmt.Errorf("%s: trusted root differs from the snapshot's: %w", gun, err)
	}
	if fresh != nil {
		if err := p.accept(roleSnapshot, fresh, sv); err != nil {
			return nil, err
		}
	}
	base = minTime(base, snap.Expires)

	// 3. targets (fatal on any failure), then 4. delegations in pre-order. A role whose bytes,
	// keys and parent are unchanged keeps its roleState from the last State.
	var prevRoles map[string]*roleState
	if last != nil {
		prevRoles = last.roles
	}
	st := &State{gun: gun, base: base, roles: map[string]*roleState{}, rootSigners: root.signers, views: newViews()}
	until := base
	type item struct {
		w         walkRole
		ks        keySet
		expires   time.Time // of the delegation chain above
		parentOld bool      // the parent's roleState is the last State's
	}
	reused := 0
	queue := []item{{w: walkRole{name: roleTargets, paths: []string{""}}, ks: root.keySet(roleTargets), parentOld: true}}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		name := it.w.name
		top := name == roleTargets
		meta, ok := snap.Meta[name]
		if !ok {
			c.log.Debug("skipping role not listed in snapshot", "gun", gun, "role", name)
			continue
		}
		v, fresh, err := p.verifyRole(ctx, name, nil, &meta, it.ks)
		if err != nil {
			if !top && skippable(err) {
				c.log.Warn("skipping delegation", "gun", gun, "role", name, "err", err)
				continue
			}
			return nil, err
		}
		tg := v.tg
		if fresh != nil {
			if err := p.accept(name, fresh, v); err != nil {
				return nil, err
			}
			if err := p.forgetUndelegated(name, tg); err != nil {
				return nil, err
			}
		}
		rs := prevRoles[name]
		old := fresh == nil && it.parentOld && rs != nil
		if old {
			reused++
		} else {
			expires := tg.Expires
			if !top {
				expires = minTime(it.expires, tg.Expires)
			}
			rs = newRoleState(name, tg, meta.Length, v.signers, expires)
			for _, d := range tg.Delegations.Roles {
				rs.children = append(rs.children, walkRole{name: d.Name, paths: restrictPaths(it.w.paths, d.Paths)})
			}
		}
		until = minTime(until, rs.expires)
		if top {
			st.expires = minTime(base, rs.expires)
		}
		var children []item
		for i, d := range tg.Delegations.Roles {
			ks := keySet{name: d.Name, keys: map[string]tufKey{}, threshold: d.Threshold}
			for _, id := range d.KeyIDs {
				ks.keys[id] = tg.Delegations.Keys[id]
			}
			children = append(children, item{w: rs.children[i], ks: ks, expires: rs.expires, parentOld: old})
		}
		st.roles[name] = rs
		queue = append(children, queue...)
	}
	st.versions = maps.Clone(g.versions)
	if last != nil && reused == len(st.roles) && len(st.roles) == len(last.roles) {
		st.index = last.index
	} else {
		st.index = &indexes{byRoles: map[string]*tagIndex{}}
		// The role sets the last State was asked about (policies that name their own roles) are
		// indexed here too, so the first request after a refresh does not index every tag while
		// the others wait for it.
		if last != nil {
			for _, roles := range last.index.roleSets() {
				st.indexFor(roles)
			}
		}
	}
	// Built here, off the request path when the cache refreshes.
	ix := st.indexFor(DefaultRoles)
	st.size = bytesPerRepository + ix.size()
	for _, rs := range st.roles {
		st.size += rs.size
	}
	g.last, g.lastRoot, g.lastTS, g.lastUntil = st, root, tv.sha256, until
	return st, nil
}

// outage is downloadTimestamp's rule for when a cached timestamp may stand in: the server
// could not be reached or answered 404 or a status other than 200 and 400 (ErrMetaNotFound,
// ErrServerUnavailable, NetworkError). A 400, an over-long or cut-short body, or bytes that
// do not verify are not outages.
func outage(err error) bool {
	return errors.Is(err, ErrUnavailable) && !errors.Is(err, errBodyCut)
}

// skippable is notary's downloadTargets rule: an expired delegation or one below its
// threshold is ignored (its tags are simply not found); anything else is fatal.
func skippable(err error) bool {
	return errors.Is(err, ErrExpired) || (errors.Is(err, ErrThreshold) && !errors.Is(err, errNoSignatures))
}

// checkDelegationCerts mirrors Repo.GetDelegationRole: a delegation key that holds a
// certificate must be a sane one (validity window, no SHA-1, RSA ≥ 2048); its expiry is not
// checked, TUF expiry governs.
func checkDelegationCerts(ks keySet) error {
	for id, k := range ks.keys {
		c := firstCert(k.Value.Public)
		if c == nil {
			continue
		}
		if err := validateCertificate(c, false, time.Time{}); err != nil {
			return fmt.Errorf("%w: delegation key %s: %v", ErrInvalid, id, err)
		}
	}
	return nil
}

// firstCert is utils.LoadCertFromPEM: the first parseable header-less CERTIFICATE block.
func firstCert(b []byte) *x509.Certificate {
	for len(b) > 0 {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil
		}
		if block.Type != "CERTIFICATE" || len(block.Headers) != 0 {
			continue
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			return c
		}
	}
	return nil
}

// restrictPaths is RestrictDelegationPathPrefixes: a child keeps only paths that extend one
// of its parent's.
func restrictPaths(parent, child []string) []string {
	var out []string
	for _, c := range child {
		for _, p := range parent {
			if len(c) >= len(p) && c[:len(p)] == p {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
