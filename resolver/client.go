package resolver

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trustgate/trustgate/credscope"
)

// Config configures a Client for one Notary server.
type Config struct {
	ServerURL          string            // Notary server base URL, e.g. http://127.0.0.1:4443
	Transport          http.RoundTripper // TLS etc.; nil = http.DefaultTransport
	Username, Password string            // optional credentials for the token flow
	TrustDir           string            // persistent verified state; "" = in memory only
	Pinning            TrustPinning
	Now                func() time.Time // nil = time.Now
	Logger             *slog.Logger

	// TokenRealms are origins (https://auth.example.com[:port]) besides the server's own host
	// that may receive the credentials as a token realm (see package credscope).
	TokenRealms []string
	// Limiter bounds memory (shared by all Clients given the same Limiter) and first-contact
	// concurrency (per Client); share one among all Clients of a process. nil = a Limiter of
	// this Client's own with the default Limits.
	Limiter *Limiter

	// Shared, if set, is the trust store this Client shares with other trustgate processes
	// (replicas). TrustDir still holds a copy of everything (written through), so a restart
	// without the shared store keeps its floors; a role's floor is the highest of both.
	Shared SharedStore
	// SharedFresh is how long a timestamp another process fetched and verified is current enough
	// to be used without asking the trust server again: the trust TTL. 0 = never.
	SharedFresh time.Duration
	// StoreMetrics counts the shared store's hits and misses; nil = not counted.
	StoreMetrics *StoreMetrics
}

// Client is a Notary v1 reader that verifies like the notary v0.7.0 client. It is safe for
// concurrent use; Updates of the same GUN are serialised, different GUNs run in parallel.
type Client struct {
	base      *url.URL
	transport http.RoundTripper
	user      string
	pass      string
	creds     *credscope.Scope // where user/pass and tokens may be sent
	limits    *Limiter
	pin       TrustPinning
	now       func() time.Time
	log       *slog.Logger
	store     store
	// pinCerts are the certificates of the trust pinning's CA bundles, whose validity bounds
	// how long a root validation stands.
	pinCerts []*x509.Certificate
	// verifications counts signature checks of roles and roots (tests assert what a re-check
	// does not repeat).
	verifications atomic.Int64

	shared      SharedStore // nil = none
	sharedFresh time.Duration
	metrics     StoreMetrics

	mu      sync.Mutex
	guns    map[string]*gunState
	tick    uint64 // Update starts, for gunState.used
	maxIdle int    // maxIdleRepositories, or a test's
}

// maxIdleRepositories is how many repositories' verified state a Client with a trust dir keeps in
// memory while no Update uses it; the rest is read back from the trust dir when next needed.
const maxIdleRepositories = 1024

// gunState is everything known about one GUN; lock serialises its Updates.
type gunState struct {
	lock chan struct{} // a mutex that a cancelled context can stop waiting for

	// Guarded by Client.mu, for release: refs counts the Updates holding or waiting for lock
	// (a state is only dropped at 0, so one GUN never has two states at once), used orders
	// their starts, and trusted and keep say whether the last Update ended with a trusted
	// root and with a floor only in memory (such a state is never dropped).
	refs          int
	used          uint64
	trusted, keep bool

	// Guarded by lock.
	unsaved  bool // the last persist failed: some floor is only in memory
	loaded   bool
	remote   *remote
	root     *trustedRoot
	files    map[string][]byte // verified (or cached-from-disk) raw metadata by role
	versions map[string]int    // highest version verified per role (rollback floor)
	onDisk   map[string]string // sha256 of what store holds, to skip rewriting

	// The shared store (Client.shared), if any. onShared is what it holds as far as this process
	// knows; sharedSeen says it has been read for this GUN; sharedDirty that a write to it failed
	// (everything is written again); sharedChecked that this Update verifies the stored timestamp
	// another process checked then; fetched when this Update fetched the timestamp itself; rootFrom
	// the sha256 of the root the newest one was verified against ("" on first use).
	onShared      map[string]string
	sharedSeen    bool
	sharedDirty   bool
	sharedDown    bool // the shared store failed during this Update: not asked again in it
	sharedChecked time.Time
	fetched       time.Time
	rootFrom      string
	// nextRoot is snapshot.meta.root from the last snapshot that verified: the checksum a
	// root update fetches by (root.<sha256>.json), as notary's builder remembers it.
	nextRoot *fileMeta
	// recheck says a cached file changed (or was loaded) since staleFloors last ran.
	recheck bool
	// root was last validated at rootChecked and its validity cannot change before
	// rootUntil (its expiry, or a certificate's or pinned CA's validity bound): in between it
	// is not validated again.
	rootChecked, rootUntil time.Time
	// verified is, per role, the bytes that last verified and what they verified to.
	verified map[string]*verifiedRole
	// last is the State the last complete pass returned, built on lastRoot and the timestamp
	// whose sha256 is lastTS; nothing it rests on expires before lastUntil.
	last      *State
	lastRoot  *trustedRoot
	lastTS    [32]byte
	lastUntil time.Time
}

// NewClient checks cfg; it makes no requests.
func NewClient(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.ServerURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("resolver: invalid notary server URL %q", cfg.ServerURL)
	}
	c := &Client{
		base:      u,
		transport: cfg.Transport,
		user:      cfg.Username,
		pass:      cfg.Password,
		pin:       cfg.Pinning,
		now:       cfg.Now,
		log:       cfg.Logger,
		store:     store{dir: cfg.TrustDir},
		guns:      map[string]*gunState{},
		maxIdle:   maxIdleRepositories,

		shared:      cfg.Shared,
		sharedFresh: cfg.SharedFresh,
	}
	if cfg.StoreMetrics != nil {
		c.metrics = *cfg.StoreMetrics
	}
	if c.creds, err = credscope.New(cfg.ServerURL, cfg.TokenRealms); err != nil {
		return nil, fmt.Errorf("resolver: %w", err)
	}
	if c.limits = cfg.Limiter; c.limits == nil {
		if c.limits, err = NewLimiter(Limits{}); err != nil {
			return nil, err
		}
	}
	c.limits = c.limits.forClient()
	if c.transport == nil {
		c.transport = http.DefaultTransport
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	for prefix, bundle := range cfg.Pinning.CA {
		certs, err := parseCertBundle([]byte(bundle))
		if err != nil {
			return nil, fmt.Errorf("resolver: trust pinning CA for %q: %w", prefix, err)
		}
		c.pinCerts = append(c.pinCerts, certs...)
	}
	return c, nil
}

// acquire returns gun's state, counted as used until release.
func (c *Client) acquire(gun string) *gunState {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, ok := c.guns[gun]
	if !ok {
		g = &gunState{lock: make(chan struct{}, 1), remote: &remote{
			base: c.base,
			gun:  gun,
			client: &http.Client{Timeout: requestTimeout, CheckRedirect: noRedirects, Transport: &tokenTransport{
				inner:    c.creds.Transport(c.transport),
				scope:    "repository:" + gun + ":pull",
				username: c.user,
				password: c.pass,
				creds:    c.creds,
				now:      c.now,
			}},
			limits: c.limits,
		}}
		c.guns[gun] = g
	}
	c.tick++
	g.refs, g.used = g.refs+1, c.tick
	return g
}

// release ends a use of g. Once nothing uses it, the state of a GUN that never got a trusted
// root is dropped, so requests for arbitrary names (most of them without trust data) cannot
// grow the map without bound; and with a trust dir, so is the least recently used state beyond
// maxIdle, whatever a trust server answers for how many names: it is all on disk, floors
// included, and loaded again when next needed. Memory-only state is never dropped, as its
// floors live nowhere else.
// ran says whether this use ran an Update (rather than giving up waiting for its turn), trusted
// whether that Update ended with a trusted root, and unsaved whether with a floor it could not
// write.
func (c *Client) release(gun string, g *gunState, ran, trusted, unsaved bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ran {
		g.trusted, g.keep = trusted, unsaved
	}
	if g.refs--; g.refs > 0 {
		return
	}
	if !g.trusted && c.guns[gun] == g {
		delete(c.guns, gun)
	}
	if c.store.dir == "" {
		return
	}
	for len(c.guns) > c.maxIdle {
		var oldest string
		for name, s := range c.guns {
			if s.refs == 0 && !s.keep && (oldest == "" || s.used < c.guns[oldest].used) {
				oldest = name
			}
		}
		if oldest == "" {
			return
		}
		delete(c.guns, oldest)
	}
}

// Evict releases what is held in memory for gun (cache.Cache calls it when it evicts gun). With a
// trust dir the state is dropped: floors and the trusted root are on disk, so the next Update
// loads them again — no new trust on first use, no rollback accepted — and requests only the
// timestamp (verifying the cached files once). Without a trust dir, or while a floor could not be
// written, the state stays, reduced to what it cannot lose: the trusted root, the timestamp (the
// outage fallback) and the version floors; the verified roles, the last State and the other
// cached files are released, and fetched again by checksum when next needed. A GUN that an
// Update holds or waits for is left alone (false).
func (c *Client) Evict(gun string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, ok := c.guns[gun]
	if !ok {
		return true
	}
	if g.refs > 0 {
		return false
	}
	if c.store.dir != "" && !g.keep {
		delete(c.guns, gun)
		return true
	}
	// refs is 0 under c.mu: no Update holds or waits for g.lock, and none can start without c.mu.
	for role := range g.files {
		if role != roleRoot && role != roleTimestamp {
			delete(g.files, role)
		}
	}
	g.verified = map[string]*verifiedRole{}
	g.last, g.lastRoot = nil, nil
	return true
}

// Update brings the verified state of gun up to date (timestamp always; more only if it
// changed) and returns an immutable snapshot. Offline/5xx on timestamp with a still-valid
// cached timestamp → cached state.
//
// Like notary's tufClient.Update, a failure of the timestamp→snapshot→targets pass leads to a
// root update (which is how root rotations are noticed) and one more pass; unlike it, not when
// the failure is ErrUnavailable (the verdict is the same 503, without the extra root fetch).
func (c *Client) Update(ctx context.Context, gun string) (*State, error) {
	if err := validateGUN(gun); err != nil {
		return nil, err
	}
	g := c.acquire(gun)
	select {
	case g.lock <- struct{}{}:
	case <-ctx.Done():
		c.release(gun, g, false, false, false)
		return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, gun, ctx.Err())
	}
	defer func() {
		trusted, unsaved := g.root != nil, g.unsaved
		<-g.lock
		c.release(gun, g, true, trusted, unsaved)
	}()
	if !g.loaded {
		files, versions, err := c.store.load(gun)
		if err != nil {
			return nil, err
		}
		g.files, g.versions, g.onDisk, g.verified = files, versions, map[string]string{}, map[string]*verifiedRole{}
		for role, raw := range files {
			g.onDisk[role] = sha256Hex(raw)
		}
		g.loaded, g.recheck = true, true
	}
	releaseLease, err := c.syncShared(ctx, g)
	if err != nil {
		return nil, err
	}
	defer releaseLease()
	g.fetched = time.Time{}
	// Floors are what the cached files say under the trust of the last Update, as notary
	// rebuilds them from its cache on every load: a role whose keys a verified root or parent
	// has since rotated sets no floor, and a forget that was interrupted is finished.
	if g.recheck {
		if gone := staleFloors(g.files, g.versions); len(gone) > 0 {
			c.log.Info("cached roles no longer signed or listed as the cached root and parents say, forgetting their version floors",
				"gun", gun, "roles", gone)
			if err := c.forgetRoles(g, gone); err != nil {
				return nil, err
			}
		}
		g.recheck = false
	}
	now := c.now()
	// Re-established on every Update, as notary does on every load: the trusted root is
	// re-validated once any certificate it rests on may have expired (or become valid), and,
	// if its metadata has expired, replaced by a successor it vouches for.
	pinned, err := c.bootstrap(ctx, g, now)
	if err != nil {
		return nil, err
	}
	if st, ok := c.sharedPass(ctx, g, now); ok {
		return st, nil
	}
	st, err := c.updatePass(ctx, g, now)
	if err == nil {
		return c.checkedShared(g, st), nil
	}
	if ctx.Err() != nil {
		return nil, err
	}
	if errors.Is(err, ErrUnavailable) {
		// An outage is not a rotation: a new root cannot make the server answer. Without this,
		// each request for a warm repository re-fetches root.json while the server is down or
		// fails timestamp.json on purpose.
		return nil, err
	}
	c.log.Debug("trust update failed, updating root", "gun", gun, "err", err)
	if rerr := c.updateRoot(ctx, g, now, pinned); rerr != nil {
		if errors.Is(rerr, ErrUnavailable) {
			// The root could not even be fetched: the first failure says more.
			return nil, err
		}
		return nil, rerr
	}
	if st, err = c.updatePass(ctx, g, now); err != nil {
		return nil, err
	}
	return c.checkedShared(g, st), nil
}

// bootstrap establishes the trusted root: the cached one if present (it is the pin and is
// not re-fetched unless it has expired), else root.json validated against the pinning. It
// reports whether the pins also apply to a rotation later in this Update: as in notary's
// bootstrapClient, they do when the root came from the server rather than from the cache.
func (c *Client) bootstrap(ctx context.Context, g *gunState, now time.Time) (pinned bool, err error) {
	gun := g.remote.gun
	if raw, ok := g.files[roleRoot]; ok {
		if g.root != nil && !now.Before(g.rootChecked) && now.Before(g.rootUntil) {
			return c.pin.EveryRoot, nil
		}
		c.verifications.Add(1)
		cached, err := validateRoot(raw, rootCheck{gun: gun, pin: c.pins(false), now: now})
		if err != nil {
			return false, fmt.Errorf("cached root of %s: %w", gun, err)
		}
		if err := checkVersion(cached.signed.signedCommon, g.versions[roleRoot], gun, roleRoot); err != nil {
			return false, err
		}
		if !cached.signed.Expires.Before(now) {
			if g.root == nil || !bytes.Equal(g.root.raw, cached.raw) || !slices.Equal(g.root.signers, cached.signers) {
				g.root = cached
			}
			g.rootChecked, g.rootUntil = now, c.rootUntil(cached, now)
			return c.pin.EveryRoot, nil
		}
		// Expired cached root: it still vouches for its successor, which the pins must match
		// (BootstrapNewBuilderWithNewTrustpin).
		newRaw, err := g.remote.getRoot(ctx, roleRoot)
		if err != nil {
			return false, err
		}
		nr, err := c.acceptRoot(gun, newRaw, cached, now, cached.signed.Version, true, true)
		if err != nil {
			return false, err
		}
		return true, c.commitRoot(g, nr, now)
	}
	release, err := c.limits.bootstrap(ctx, gun)
	if err != nil {
		return false, err
	}
	raw, err := g.remote.getRoot(ctx, roleRoot)
	release()
	if err != nil {
		if errors.Is(err, errNotFound) {
			return false, fmt.Errorf("%w: %s has no trust data for %s", ErrNoTrustData, c.base.Host, gun)
		}
		return false, err
	}
	r, err := c.acceptRoot(gun, raw, nil, now, 1, true, true)
	if err != nil {
		return false, err
	}
	return true, c.commitRoot(g, r, now)
}

// pins is the trust pinning a root is checked against: the configured one when notary would
// apply it (pinned) or when every root must match, else none.
func (c *Client) pins(pinned bool) *TrustPinning {
	if pinned || c.pin.EveryRoot {
		return &c.pin
	}
	return nil
}

// acceptRoot is notary's builder.loadRoot: ValidateRoot, then version, then (for a final
// root) expiry. pinned says whether the trust pinning applies to it.
func (c *Client) acceptRoot(gun string, raw []byte, prev *trustedRoot, now time.Time, minVersion int, final, pinned bool) (*trustedRoot, error) {
	c.verifications.Add(1)
	r, err := validateRoot(raw, rootCheck{gun: gun, prev: prev, pin: c.pins(pinned), now: now})
	if err != nil {
		return nil, err
	}
	if err := checkVersion(r.signed.signedCommon, minVersion, gun, roleRoot); err != nil {
		return nil, err
	}
	if final {
		if err := checkExpiry(r.signed.signedCommon, now, gun, roleRoot); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (c *Client) commitRoot(g *gunState, r *trustedRoot, now time.Time) error {
	if !bytes.Equal(g.files[roleRoot], r.raw) {
		g.recheck = true
		g.rootFrom = ""
		if prev, ok := g.files[roleRoot]; ok {
			g.rootFrom = sha256Hex(prev)
		}
	}
	g.root = r
	g.rootChecked, g.rootUntil = now, c.rootUntil(r, now)
	g.files[roleRoot] = r.raw
	if r.signed.Version > g.versions[roleRoot] {
		g.versions[roleRoot] = r.signed.Version
	}
	return c.persist(g, []string{roleRoot})
}

// updateRoot is notary's tufClient.updateRoot: fetch the root snapshot meta names (or
// root.json), require it be signed by the current root; if only that fails, walk
// N.root.json from current+1 to newest-1, each vouched for by its predecessor (expired
// intermediates allowed), then verify the newest against the last. Every root on the way is
// checked against the pins iff pinned (or EveryRoot).
func (c *Client) updateRoot(ctx context.Context, g *gunState, now time.Time, pinned bool) error {
	gun := g.remote.gun
	cur := g.root
	var raw []byte
	var err error
	if g.nextRoot != nil {
		raw, err = c.fetchChecked(ctx, g, roleRoot, *g.nextRoot)
	} else {
		raw, err = g.remote.getRoot(ctx, roleRoot)
	}
	if err != nil {
		return err
	}
	nr, err := c.acceptRoot(gun, raw, cur, now, max(cur.signed.Version, g.versions[roleRoot]), true, pinned)
	if err == nil {
		return c.commitRoot(g, nr, now)
	}
	if !errors.Is(err, errRotation) {
		return err
	}
	env, perr := parseEnvelope(raw)
	if perr != nil {
		return perr
	}
	newest, perr := parseRoot(env)
	if perr != nil {
		return perr
	}
	prev := cur
	for v := cur.signed.Version + 1; v <= newest.Version-1; v++ {
		vraw, err := g.remote.getRoot(ctx, fmt.Sprintf("%d.%s", v, roleRoot))
		if err != nil {
			return fmt.Errorf("root rotation of %s: %w", gun, err)
		}
		ir, err := c.acceptRoot(gun, vraw, prev, now, v, false, pinned)
		if err != nil {
			return fmt.Errorf("root rotation of %s at version %d: %w", gun, v, err)
		}
		prev = ir
	}
	nr, err = c.acceptRoot(gun, raw, prev, now, newest.Version, true, pinned)
	if err != nil {
		return fmt.Errorf("root rotation of %s: %w", gun, err)
	}
	c.log.Info("root rotated", "gun", gun, "from", cur.signed.Version, "to", nr.signed.Version)
	return c.commitRoot(g, nr, now)
}

// rootUntil is the first instant after now at which validating r could give another answer:
// its expiry, or when one of its certificates or of the pinned CAs expires or enters the
// validity window validateCertificate allows (a day of leeway on NotBefore).
func (c *Client) rootUntil(r *trustedRoot, now time.Time) time.Time {
	until := r.signed.Expires
	bound := func(certs []*x509.Certificate) {
		for _, cert := range certs {
			if nb := cert.NotBefore.AddDate(0, 0, -1); nb.After(now) {
				until = minTime(until, nb)
			}
			if cert.NotAfter.After(now) {
				until = minTime(until, cert.NotAfter)
			}
		}
	}
	for _, k := range r.signed.Keys {
		if certs, err := parseCertBundle(k.Value.Public); err == nil {
			bound(certs)
		}
	}
	bound(c.pinCerts)
	return until
}

func checkVersion(sc signedCommon, min int, gun, role string) error {
	if sc.Version < min {
		return fmt.Errorf("%w: %s %s: version %d is lower than %d verified before", ErrRollback, gun, role, sc.Version, min)
	}
	return nil
}

func checkExpiry(sc signedCommon, now time.Time, gun, role string) error {
	if sc.Expires.Before(now) {
		return fmt.Errorf("%w: %s %s expired at %s", ErrExpired, gun, role, sc.Expires.Format(time.RFC3339))
	}
	return nil
}

// fetchChecked returns the bytes meta describes: the in-memory copy if its hashes match,
// else <role>.<sha256>.json capped at meta's length, hash-checked.
func (c *Client) fetchChecked(ctx context.Context, g *gunState, role string, meta fileMeta) ([]byte, error) {
	if raw, ok := g.files[role]; ok && checkHashes(raw, role, meta.Hashes) == nil {
		return raw, nil
	}
	sum, ok := meta.Hashes["sha256"]
	if !ok {
		return nil, fmt.Errorf("%w: %s %s: no sha256 checksum to fetch by", ErrInvalid, g.remote.gun, role)
	}
	limit, overLimit := meta.Length, ErrChecksum
	if limit < 0 || limit > maxDownloadSize {
		// notary has no ceiling here; 100 MiB is its own bound elsewhere
		limit, overLimit = maxDownloadSize, ErrInvalid
	}
	raw, err := g.remote.get(ctx, role+"."+hex.EncodeToString(sum), limit, overLimit)
	if err != nil {
		return nil, err
	}
	if err := checkHashes(raw, role, meta.Hashes); err != nil {
		return nil, fmt.Errorf("%s: %w", g.remote.gun, err)
	}
	return raw, nil
}

// forgetRoles drops roles from g and from disk: versions.json first, then the cached files. The
// parent that stopped listing them is already on disk, so a forget interrupted at any point is
// finished by the next Update (staleFloors), even if the parent lists the role again by then.
func (c *Client) forgetRoles(g *gunState, roles []string) error {
	g.last = nil // its Versions would name the forgotten floors
	for _, role := range roles {
		delete(g.files, role)
		delete(g.versions, role)
		delete(g.verified, role)
	}
	if err := c.persist(g, nil); err != nil {
		return err
	}
	for _, role := range roles {
		if err := c.store.removeFile(g.remote.gun, role); err != nil {
			return fmt.Errorf("%w: forgetting %s of %s: %v", ErrUnavailable, role, g.remote.gun, err)
		}
		delete(g.onDisk, role)
	}
	c.forgetShared(g, roles)
	return nil
}

// persist writes roles' files and every floor of g to the shared store, then to the trust dir:
// what the shared store refuses (an older file, a root another replica trusted first) never
// reaches the trust dir, where it could stand in for the shared state later.
func (c *Client) persist(g *gunState, roles []string) error {
	if c.shared != nil {
		if err := c.persistShared(g, roles); err != nil {
			return err
		}
	}
	return c.persistLocal(g, roles)
}

func (c *Client) persistLocal(g *gunState, roles []string) error {
	if c.store.dir == "" {
		return nil
	}
	g.unsaved = true // until versions.json (every floor) is known to be on disk
	gun := g.remote.gun
	for _, role := range roles {
		raw := g.files[role]
		sum := sha256Hex(raw)
		if g.onDisk[role] == sum {
			continue
		}
		// Another process sharing the trust_dir (trustgate resolve beside serve) may have
		// verified a newer version since this one loaded: never replace it with an older one.
		ours, _ := fileVersion(raw)
		if theirs, ok := c.store.fileVersion(gun, role); ok && theirs > ours {
			g.versions[role] = max(g.versions[role], theirs)
			return fmt.Errorf("%w: %s %s: version %d is lower than %d, which another trustgate verified into %s",
				ErrRollback, gun, role, ours, theirs, c.store.dir)
		}
		if err := c.store.saveFile(gun, role, raw); err != nil {
			return fmt.Errorf("%w: persisting %s of %s: %v", ErrUnavailable, role, gun, err)
		}
		g.onDisk[role] = sum
	}
	vs := fmt.Sprint(g.versions) // fmt sorts map keys, so this is a stable fingerprint
	if g.onDisk["\x00versions"] != vs {
		if err := c.store.saveVersions(gun, g.versions); err != nil {
			return fmt.Errorf("%w: persisting versions of %s: %v", ErrUnavailable, gun, err)
		}
		g.onDisk["\x00versions"] = vs
	}
	g.unsaved = false
	return nil
}
