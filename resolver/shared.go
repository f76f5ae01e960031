package resolver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Store keeps the verified trust data of one trust server's repositories beyond a Client's
// memory: the file store under TrustDir (the default) and, for several replicas, a shared one
// (package redisstore). Everything in it was verified by a trustgate before it was written, so what it
// returns is trusted as a trust_dir is: a cached root is the anchor of its GUN and every version
// is a floor.
type Store interface {
	// Load returns gun's cached role files and version floors; nothing stored is empty state.
	// have is the sha256 (hex) of the files the caller already holds, by role: a store may leave
	// those out of Stored.Files (Stored.Hashes still names them).
	Load(ctx context.Context, gun string, have map[string]string) (Stored, error)
	// SaveFile stores role's raw verified metadata, whose signed.version is version. It never
	// replaces a file of a higher version: that is a *NewerError. For the root, prev is the
	// sha256 (hex) of the root the new one was verified against ("" when trusted on first use);
	// a shared store refuses a root that is neither the one it holds, nor a rotation from it, nor
	// a first one (ErrRootConflict).
	SaveFile(ctx context.Context, gun, role string, raw []byte, version int, prev string) error
	// SaveVersions records versions as gun's floors. versions holds every floor the caller has,
	// which includes everything it loaded, so no floor falls below what was stored, except that
	// of a role being forgotten.
	SaveVersions(ctx context.Context, gun string, versions map[string]int) error
	// Forget drops roles' files and floors (a verified parent or root no longer vouches for them).
	Forget(ctx context.Context, gun string, roles []string) error
}

// SharedStore is a Store several trustgate processes use at once.
type SharedStore interface {
	Store
	// MarkChecked records that the files of gun now stored were current at the trust server
	// just now (a trustgate fetched and verified the timestamp).
	MarkChecked(ctx context.Context, gun string) error
	// Lease takes gun's refresh lease, so one process at a time asks the trust server. If another
	// holds it, Lease waits (bounded) until it is released; waited says so. release is never
	// nil; after a bounded wait ran out it releases nothing (the caller refreshes on its own).
	Lease(ctx context.Context, gun string) (release func(), waited bool, err error)
}

// Stored is what a Store holds for one GUN.
type Stored struct {
	Files map[string][]byte // raw verified metadata by role
	// Hashes are the sha256 (hex) of stored files, where the store knows them: also of those
	// left out of Files because the caller holds them.
	Hashes   map[string]string
	Versions map[string]int // version floors by role
	// Checked is when a trustgate last fetched and verified the timestamp these files include;
	// zero if unknown.
	Checked time.Time
}

// NewerError: the store holds a file of a higher version than the one offered.
type NewerError struct {
	Role    string
	Version int
	Where   string
}

func (e *NewerError) Error() string {
	return fmt.Sprintf("%s holds %s version %d", e.Where, e.Role, e.Version)
}

// ErrRootConflict: a shared store holds a different root for the GUN that the offered one does
// not rotate from: another trustgate trusted another root first.
var ErrRootConflict = errors.New("another trustgate trusted a different root first")

// Counter is the part of a Prometheus counter StoreMetrics use.
type Counter interface{ Inc() }

// StoreMetrics count a shared store's use; nil counters are not counted.
type StoreMetrics struct {
	Hits      Counter // updates answered from state another process checked within the TTL
	Misses    Counter // updates that asked the trust server
	LockWaits Counter // waits for another process's refresh lease
	Errors    Counter // failed store operations
}

func inc(c Counter) {
	if c != nil {
		c.Inc()
	}
}

// sharedTimeout bounds one shared-store write. It is detached from the request: a floor being
// recorded is not abandoned because the client that caused it went away.
const sharedTimeout = 5 * time.Second

// syncShared brings g up to date with the shared store before an Update: newer files and higher
// floors are taken, never lower ones. If the store says another process checked the trust server
// within c.sharedFresh, g.sharedChecked is set and the Update verifies the stored files without
// asking the server. Otherwise it takes gun's refresh lease (waiting for another holder, then
// reading again); release ends it.
//
// A store that cannot be read is an outage of this Update only for a repository this replica has
// never seen — neither read from the store nor holding a trusted root in its trust dir: it could
// have floors there this replica does not know (503). One it has seen keeps going from its own
// verified state and floors (in memory, or in the trust dir after a restart), which never fall.
func (c *Client) syncShared(ctx context.Context, g *gunState) (release func(), err error) {
	release = func() {}
	g.sharedChecked, g.sharedDown = time.Time{}, false
	if c.shared == nil {
		return release, nil
	}
	gun := g.remote.gun
	down := func(err error) (func(), error) {
		inc(c.metrics.Errors)
		if !g.sharedSeen && g.files[roleRoot] == nil {
			return release, fmt.Errorf("%w: %s: shared trust store unreachable and this replica has never seen this repository: %v", ErrUnavailable, gun, err)
		}
		c.log.Warn("shared trust store unreachable, going on from this process's verified state", "gun", gun, "err", err)
		g.sharedDirty, g.sharedDown = true, true
		return release, nil
	}
	read := func() (bool, error) {
		have := make(map[string]string, len(g.files))
		for role, raw := range g.files {
			have[role] = sha256Hex(raw)
		}
		st, err := c.shared.Load(ctx, gun, have)
		if err != nil {
			return false, storeDown{err}
		}
		if err := c.mergeShared(g, st); err != nil {
			return false, err
		}
		g.sharedSeen = true
		// What the store lacks (it lost data, or missed writes while it was down) goes back up.
		var behind []string
		for role, raw := range g.files {
			if g.onShared[role] != sha256Hex(raw) {
				behind = append(behind, role)
			}
		}
		if len(behind) > 0 || g.sharedDirty || g.onShared["\x00versions"] != fmt.Sprint(g.versions) {
			slices.Sort(behind)
			if err := c.persistShared(g, behind); err != nil {
				return false, err
			}
		}
		if !st.Checked.IsZero() && c.now().Sub(st.Checked) < c.sharedFresh && g.files[roleTimestamp] != nil {
			g.sharedChecked = st.Checked
			return true, nil
		}
		return false, nil
	}
	failed := func(err error) (func(), error) {
		var sd storeDown
		if errors.As(err, &sd) {
			return down(sd.err)
		}
		return release, err
	}
	fresh, err := read()
	if err != nil {
		return failed(err)
	}
	if fresh {
		return release, nil
	}
	rel, waited, err := c.shared.Lease(ctx, gun)
	if err != nil {
		return down(err)
	}
	if waited {
		inc(c.metrics.LockWaits)
		if _, err := read(); err != nil {
			rel()
			return failed(err)
		}
	}
	return rel, nil
}

// mergeShared takes from st what is newer than g's: a file of a higher version (or, for the
// root, a different one of no lower version: the shared root is the one every replica trusts),
// and every higher floor. Taken files are written through to the trust dir, so a restart without
// the shared store keeps them and their floors.
func (c *Client) mergeShared(g *gunState, st Stored) error {
	g.onShared = map[string]string{} // exactly what the store holds now
	for role, sum := range st.Hashes {
		g.onShared[role] = sum
	}
	var taken []string
	for _, role := range slices.Sorted(maps.Keys(st.Files)) {
		raw := st.Files[role]
		sum := sha256Hex(raw)
		g.onShared[role] = sum
		mine, ok := g.files[role]
		if ok && sha256Hex(mine) == sum {
			continue
		}
		theirs, _ := fileVersion(raw)
		ours, _ := fileVersion(mine)
		if ok && (theirs < ours || (theirs == ours && role != roleRoot)) {
			continue
		}
		g.files[role] = raw
		if role == roleRoot {
			g.root = nil // validated again by bootstrap, as a cached root is
		}
		taken = append(taken, role)
	}
	raised := false
	for role, v := range st.Versions {
		if v > g.versions[role] {
			g.versions[role], raised = v, true
		}
	}
	g.onShared["\x00versions"] = fmt.Sprint(st.Versions)
	if len(taken) == 0 && !raised {
		return nil
	}
	g.recheck = true
	if c.store.dir == "" {
		return nil
	}
	return c.persistLocal(g, taken)
}

// timestamp returns the timestamp this update verifies: the stored one when another process
// checked it within the TTL (g.sharedChecked), else the trust server's, noting when it was fetched.
func (c *Client) timestamp(ctx context.Context, g *gunState) ([]byte, error) {
	if !g.sharedChecked.IsZero() {
		return g.files[roleTimestamp], nil
	}
	raw, err := g.remote.get(ctx, roleTimestamp, maxTimestampSize, ErrInvalid)
	if err == nil {
		g.fetched = c.now()
	}
	return raw, err
}

// sharedPass is the update pass from stored files alone, when another process checked the trust
// server within the TTL. The state it returns is as old as that check. Any failure leaves the
// Update to ask the server itself.
func (c *Client) sharedPass(ctx context.Context, g *gunState, now time.Time) (*State, bool) {
	if g.sharedChecked.IsZero() {
		if c.shared != nil {
			inc(c.metrics.Misses)
		}
		return nil, false
	}
	checked := g.sharedChecked
	st, err := c.updatePass(ctx, g, now)
	g.sharedChecked = time.Time{}
	if err != nil {
		c.log.Debug("state another process checked did not verify here, asking the trust server", "gun", g.remote.gun, "err", err)
		inc(c.metrics.Misses)
		return nil, false
	}
	inc(c.metrics.Hits)
	return st.withChecked(checked), true
}

// checkedShared records a pass that asked the trust server: the state returned is as old as that
// fetch, and the shared store learns that its files were current then.
func (c *Client) checkedShared(g *gunState, st *State) *State {
	if c.shared == nil || g.fetched.IsZero() {
		return st // no one else to tell, or the cached timestamp stood in for an unreachable server
	}
	st = st.withChecked(g.fetched)
	if g.sharedDirty {
		return st // the files are not all there; the next successful write marks them
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	if err := c.shared.MarkChecked(ctx, g.remote.gun); err != nil {
		inc(c.metrics.Errors)
		c.log.Warn("shared trust store: recording the check", "gun", g.remote.gun, "err", err)
	}
	return st
}

// withChecked returns a copy of s checked at t. s itself is not changed: the update pass may
// return the State of the last Update, which callers may still hold.
func (s *State) withChecked(t time.Time) *State {
	cp := *s
	cp.checked = t
	cp.views = newViews() // views of s refer to s
	return &cp
}

// persistShared writes roles' files and every floor of g to the shared store. A newer file there
// is a rollback and a conflicting root a pin mismatch, both fatal to the Update; an unreachable
// store is not (see syncShared): g is marked and written whole on the next Update that can.
func (c *Client) persistShared(g *gunState, roles []string) error {
	gun := g.remote.gun
	if g.onShared == nil {
		g.onShared = map[string]string{}
	}
	if g.sharedDown {
		return nil // not again in this Update: each try could cost a timeout
	}
	if g.sharedDirty {
		roles = slices.Sorted(maps.Keys(g.files))
		clear(g.onShared)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	fail := func(err error) error {
		inc(c.metrics.Errors)
		c.log.Warn("shared trust store: write failed, keeping the state in this process and the trust dir", "gun", gun, "err", err)
		g.sharedDirty, g.sharedDown = true, true
		return nil
	}
	for _, role := range roles {
		raw, ok := g.files[role]
		if !ok {
			continue
		}
		sum := sha256Hex(raw)
		if g.onShared[role] == sum {
			continue
		}
		ours, _ := fileVersion(raw)
		prev := ""
		if role == roleRoot {
			prev = g.rootFrom
		}
		err := c.shared.SaveFile(ctx, gun, role, raw, ours, prev)
		var ne *NewerError
		switch {
		case errors.As(err, &ne):
			g.versions[role] = max(g.versions[role], ne.Version)
			return fmt.Errorf("%w: %s %s: version %d is lower than %d, which another trustgate verified (%v)", ErrRollback, gun, role, ours, ne.Version, ne)
		case errors.Is(err, ErrRootConflict):
			g.loaded = false // read the shared root on the next Update
			return fmt.Errorf("%w: %s: %w", ErrPinMismatch, gun, err)
		case err != nil:
			return fail(err)
		}
		g.onShared[role] = sum
	}
	vs := fmt.Sprint(g.versions)
	if g.onShared["\x00versions"] != vs {
		if err := c.shared.SaveVersions(ctx, gun, g.versions); err != nil {
			return fail(err)
		}
		g.onShared["\x00versions"] = vs
	}
	g.sharedDirty = false
	return nil
}

// storeDown marks a shared store that could not be read, as opposed to what was read being refused.
type storeDown struct{ err error }

func (e storeDown) Error() string { return e.err.Error() }

// forgetShared drops roles from the shared store; failing, the next Update's staleFloors there
// finishes it.
func (c *Client) forgetShared(g *gunState, roles []string) {
	if c.shared == nil || g.sharedDown {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	if err := c.shared.Forget(ctx, g.remote.gun, roles); err != nil {
		inc(c.metrics.Errors)
		c.log.Warn("shared trust store: forgetting roles", "gun", g.remote.gun, "roles", roles, "err", err)
		return
	}
	for _, role := range roles {
		delete(g.onShared, role)
	}
}
