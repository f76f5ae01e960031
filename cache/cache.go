// Package cache keeps verified trust state in memory so that a warm resolution costs no network,
// while a repository's trust data is re-checked every TTL and never served past its expiry.
// Concurrent resolutions of one repository share one update.
//
// No request waits for a re-check while the state it would be answered from is still within its
// TUF expiry: a request that finds the state older than TTL is answered from it and starts one
// background refresh (detached from the request, shared by everyone who asks meanwhile). What the
// refresh verifies takes effect the moment it is stored, so an answer is at most TTL plus one
// refresh old, and never past the metadata's expiry. A refresh that ends in anything but an
// outage (rollback, invalid or under-threshold signatures, checksum or pin mismatch, a refused
// request, expired metadata) drops the entry, so the next request waits for a fresh update and
// fails closed if it fails again: serving the last good state while the server answers with an
// attack would be a freeze the attacker controls. An outage (resolver.ErrUnavailable alone)
// keeps serving the verified state until its expiry and is retried after another TTL, like
// notary's fallback to its cached timestamp. A repository with no usable state (never
// verified, dropped, or expired) waits for its update.
//
// With Options.SpillDir, a repository evicted past Size or MaxBytes is not forgotten: its verified
// state was written to disk, sealed with a key only this Cache holds, when it was stored, and a
// request that misses reads it back and is answered exactly as if the entry had never been evicted
// (fresh, or stale and refreshed in the background, or expired and updated). Whatever drops an
// entry removes its file too, so a state the cache dropped never comes back from disk.
package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/trustgate/trustgate/resolver"
)

// Updater brings a repository's verified trust state up to date. *resolver.Client implements it.
type Updater interface {
	Update(ctx context.Context, gun string) (*resolver.State, error)
}

// Evicter is an Updater that holds per-repository state of its own, released when the cache
// evicts the repository (*resolver.Client: its verified roles; floors and roots stay on disk),
// so memory is bounded by the cache's Size and MaxBytes rather than by every repository seen.
type Evicter interface {
	Evict(gun string) bool
}

// Options tune a Cache. Zero values select the defaults.
type Options struct {
	// TTL is how long a verified state is used before the timestamp is checked again. Notary's
	// timestamp is what announces a re-signed tag, so TTL bounds how stale an answer can be.
	TTL time.Duration
	// Size is the number of repositories whose state is kept.
	Size int
	// MaxBytes bounds the estimated memory of the kept states (resolver.State.Size); the least
	// recently used are evicted past it (the last one added always stays). 0 = no byte bound.
	MaxBytes int64
	// UpdateTimeout bounds one shared update. It is detached from the request that started it,
	// so one impatient client cannot fail the update for everyone waiting on it.
	UpdateTimeout time.Duration
	// SpillDir is where the Cache creates its own directory (debris.SpillDirPrefix + random, mode
	// 0700) to keep evicted states in, removed by Close; "" keeps nothing on disk. The disk costs
	// one file per repository seen, about the size of its signed targets.
	SpillDir string
	// Logger receives what the spill could not do; nil = slog.Default().
	Logger *slog.Logger
	Now    func() time.Time
}

// Defaults for Options.
const (
	DefaultTTL           = 30 * time.Second
	DefaultSize          = 1024
	DefaultUpdateTimeout = 30 * time.Second
)

// Cache answers resolutions from verified state. It is safe for concurrent use.
type Cache struct {
	updater Updater
	opts    Options
	entries *lru.Cache[string, entry]
	flight  singleflight.Group
	addMu   sync.Mutex // serialises Adds, so bytes accounts for replaced entries exactly
	bytes   atomic.Int64
	bg      sync.WaitGroup // background refreshes

	mu         sync.Mutex
	refreshing map[string]bool // repositories with a background refresh running

	spill *spill // nil: no SpillDir
}

// entry is either a verified state or a remembered "this repository has no trust data", both
// good until checked+TTL. Other failures are not remembered: they are outages or attacks, and the
// next request should try again (coalesced with its peers).
type entry struct {
	state   *resolver.State
	noTrust error
	checked time.Time
	size    int64
	spilled spilled // what the repository's spill file holds
}

// New returns a Cache over u.
func New(u Updater, opts Options) (*Cache, error) {
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	if opts.Size <= 0 {
		opts.Size = DefaultSize
	}
	if opts.UpdateTimeout <= 0 {
		opts.UpdateTimeout = DefaultUpdateTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Cache{updater: u, opts: opts, refreshing: map[string]bool{}}
	if opts.SpillDir != "" {
		// The spill only saves re-verification: a cache that cannot have one runs without it
		// rather than refuse to serve.
		sp, err := newSpill(opts.SpillDir, opts.Logger)
		if err != nil {
			opts.Logger.Warn("evicted trust states are not spilled to disk: an evicted repository is verified again from trust_dir", "err", err)
		}
		c.spill = sp
	}
	ev, _ := u.(Evicter)
	entries, err := lru.NewWithEvict(opts.Size, func(gun string, e entry) {
		c.bytes.Add(-e.size)
		if ev != nil {
			ev.Evict(gun)
		}
	})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("cache: %w", err)
	}
	c.entries = entries
	return c, nil
}

// Close removes the spilled states from disk. The Cache must not be used after; a background
// refresh still running stores nothing on disk.
func (c *Cache) Close() error {
	if c.spill == nil {
		return nil
	}
	return c.spill.close()
}

// Resolve returns the verified target for gun:tag under roles.
func (c *Cache) Resolve(ctx context.Context, gun, tag string, roles []string) (resolver.Target, error) {
	s, err := c.State(ctx, gun)
	if err != nil {
		return resolver.Target{}, err
	}
	return s.Lookup(tag, roles)
}

// Tags lists the tags of gun signed under roles, sorted. The slice is the verified state's own:
// callers must not modify it.
func (c *Cache) Tags(ctx context.Context, gun string, roles []string) ([]string, error) {
	s, err := c.State(ctx, gun)
	if err != nil {
		return nil, err
	}
	return s.Tags(roles), nil
}

// State returns gun's verified state. A state younger than TTL is returned as is; an older one
// that has not expired is returned too, and refreshed in the background; otherwise the caller
// waits for an update. Concurrent callers share one update, and a caller that missed the cache
// while an update was finishing gets that update's result: the cache is consulted again inside
// the shared flight, so a fresh entry is never fetched twice.
func (c *Cache) State(ctx context.Context, gun string) (*resolver.State, error) {
	e, ok := c.entries.Get(gun)
	if ok {
		now := c.opts.Now()
		switch {
		case c.fresh(e, now):
			return e.state, e.noTrust
		case e.state != nil && now.Before(e.state.Expires()):
			c.refresh(ctx, gun)
			return e.state, nil
		}
	}
	ch := c.flight.DoChan(gun, func() (any, error) { return c.get(ctx, gun, true) })
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		g := r.Val.(got)
		if g.reloaded && !c.fresh(g.entry, c.opts.Now()) {
			c.refresh(ctx, gun) // as for an entry older than TTL found in memory
		}
		return g.state, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("resolving trust data for %s: %w", gun, ctx.Err())
	}
}

// refresh starts a background update of gun unless one is running; it joins a foreground
// update of gun that is already running rather than starting another.
func (c *Cache) refresh(ctx context.Context, gun string) {
	c.mu.Lock()
	if c.refreshing[gun] {
		c.mu.Unlock()
		return
	}
	c.refreshing[gun] = true
	c.bg.Add(1)
	c.mu.Unlock()
	go func() {
		defer func() {
			c.mu.Lock()
			delete(c.refreshing, gun)
			c.mu.Unlock()
			c.bg.Done()
		}()
		_, _, _ = c.flight.Do(gun, func() (any, error) { return c.get(ctx, gun, false) })
	}()
}

// get runs in gun's flight: it returns gun's entry if it is fresh (the flight that stored it may
// have ended between the caller's check and this flight), else, if spilled and there is no entry
// at all, the spilled state if it is usable now (fresh, or stale but not expired: the caller then
// refreshes it), else what an update finds. The entry's noTrust is returned as the error.
func (c *Cache) get(ctx context.Context, gun string, spilled bool) (got, error) {
	now := c.opts.Now()
	e, ok := c.entries.Get(gun)
	if ok && c.fresh(e, now) {
		return got{entry: e}, e.noTrust
	}
	if !ok && spilled && c.spill != nil {
		if st, checked, sp, ok := c.spill.load(gun); ok && now.Before(st.Expires()) {
			if checked.After(now) {
				// Read from disk, checked has no monotonic reading: after the wall clock
				// stepped back it would keep the state fresh for the length of the step.
				// It is stale instead, refreshed by the caller.
				checked = time.Time{}
			}
			e := entry{state: st, checked: checked, size: st.Size(), spilled: sp}
			c.add(gun, e)
			return got{entry: e, reloaded: true}, nil
		}
	}
	e, err := c.update(ctx, gun)
	return got{entry: e}, err
}

// got is what a flight returns: the entry, and whether it was read back from the spill.
type got struct {
	entry
	reloaded bool
}

// Wait blocks until every background refresh started so far has ended (for shutdown and tests).
func (c *Cache) Wait() { c.bg.Wait() }

// fresh reports whether e is an answer now without a re-check: younger than TTL, and either a
// remembered "no trust data" or a state before its expiry. Expiry is checked on every use, not
// only on update: a state verified a second before its timestamp expired must not be served for
// another TTL.
func (c *Cache) fresh(e entry, now time.Time) bool {
	if now.Sub(e.checked) >= c.opts.TTL {
		return false
	}
	return e.noTrust != nil || now.Before(e.state.Expires())
}

// update runs one update of gun, detached from the request that started it, and stores what it
// finds. It runs in gun's flight, and so does everything that reads or writes gun's spill file.
func (c *Cache) update(ctx context.Context, gun string) (entry, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.UpdateTimeout)
	defer cancel()
	s, err := c.updater.Update(ctx, gun)
	now := c.opts.Now()
	switch {
	case errors.Is(err, resolver.ErrNoTrustData):
		c.unspill(gun)
		e := entry{noTrust: err, checked: now}
		c.add(gun, e)
		return e, err
	case err != nil:
		// Keep no entry that could outlive this failure: a stale state is only served by the
		// resolver itself, which knows whether its cached timestamp is still valid.
		c.drop(gun)
		return entry{}, err
	case !now.Before(s.Expires()):
		c.drop(gun)
		return entry{}, fmt.Errorf("trust data for %s expired at %s: %w", gun, s.Expires().UTC().Format(time.RFC3339), resolver.ErrExpired)
	}
	// A state checked earlier (by another replica, through a shared store) is as fresh as that
	// check, not as this update.
	checked := now
	if t := s.Checked(); !t.IsZero() && t.Before(now) {
		checked = t
	}
	e := entry{state: s, checked: checked, size: s.Size()}
	if c.spill != nil {
		var prev spilled
		if old, ok := c.entries.Peek(gun); ok {
			prev = old.spilled
		}
		e.spilled = c.spill.store(gun, s, checked, prev)
	}
	c.add(gun, e)
	return e, nil
}

// drop forgets gun, on disk first.
func (c *Cache) drop(gun string) {
	c.unspill(gun)
	c.entries.Remove(gun)
}

func (c *Cache) unspill(gun string) {
	if c.spill != nil {
		c.spill.remove(gun)
	}
}

// add stores e for gun, then evicts the least recently used entries while the states kept are
// over MaxBytes.
func (c *Cache) add(gun string, e entry) {
	c.addMu.Lock()
	defer c.addMu.Unlock()
	if old, ok := c.entries.Peek(gun); ok {
		c.bytes.Add(-old.size) // Add replaces it without the eviction callback
	}
	c.bytes.Add(e.size)
	c.entries.Add(gun, e)
	for c.opts.MaxBytes > 0 && c.bytes.Load() > c.opts.MaxBytes && c.entries.Len() > 1 {
		c.entries.RemoveOldest()
	}
}

// Bytes returns the estimated memory of the states kept.
func (c *Cache) Bytes() int64 { return c.bytes.Load() }
