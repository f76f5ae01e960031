// Package cache keeps verified trust state in memory so that a warm resolution costs no network,
// while a repository's trust data is still re-checked at most every TTL and never served past its
// expiry. Concurrent resolutions of one repository share one update.
package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/trustgate/trustgate/resolver"
)

// Updater brings a repository's verified trust state up to date. *resolver.Client implements it.
type Updater interface {
	Update(ctx context.Context, gun string) (*resolver.State, error)
}

// Options tune a Cache. Zero values select the defaults.
type Options struct {
	// TTL is how long a verified state is used before the timestamp is checked again. Notary's
	// timestamp is what announces a re-signed tag, so TTL bounds how stale an answer can be.
	TTL time.Duration
	// Size is the number of repositories whose state is kept.
	Size int
	// UpdateTimeout bounds one shared update. It is detached from the request that started it,
	// so one impatient client cannot fail the update for everyone waiting on it.
	UpdateTimeout time.Duration
	Now           func() time.Time
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
}

// entry is either a verified state or a remembered "this repository has no trust data", both
// good until checked+TTL. Other failures are not remembered: they are outages or attacks, and the
// next request should try again (coalesced with its peers).
type entry struct {
	state   *resolver.State
	noTrust error
	checked time.Time
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
	entries, err := lru.New[string, entry](opts.Size)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return &Cache{updater: u, opts: opts, entries: entries}, nil
}

// Resolve returns the verified target for gun:tag under roles.
func (c *Cache) Resolve(ctx context.Context, gun, tag string, roles []string) (resolver.Target, error) {
	s, err := c.State(ctx, gun)
	if err != nil {
		return resolver.Target{}, err
	}
	return s.Lookup(tag, roles)
}

// Tags lists the tags of gun signed under roles.
func (c *Cache) Tags(ctx context.Context, gun string, roles []string) ([]string, error) {
	s, err := c.State(ctx, gun)
	if err != nil {
		return nil, err
	}
	return s.Tags(roles), nil
}

// State returns gun's verified state, updating it first when it is older than TTL or expired.
// Concurrent callers share one update, and a caller that missed the cache while an update was
// finishing gets that update's result: the cache is consulted again inside the shared flight, so
// a fresh entry is never fetched twice.
func (c *Cache) State(ctx context.Context, gun string) (*resolver.State, error) {
	if e, ok := c.fresh(gun); ok {
		return e.state, e.noTrust
	}
	ch := c.flight.DoChan(gun, func() (any, error) {
		// The flight that stored the entry may have ended between the check above and DoChan.
		if e, ok := c.fresh(gun); ok {
			return e.state, e.noTrust
		}
		return c.update(ctx, gun)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*resolver.State), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("resolving trust data for %s: %w", gun, ctx.Err())
	}
}

// fresh returns gun's entry if it is an answer now: younger than TTL, and either a remembered "no
// trust data" or a state before its expiry. Expiry is checked on every use, not only on update: a
// state verified a second before its timestamp expired must not be served for another TTL.
func (c *Cache) fresh(gun string) (entry, bool) {
	e, ok := c.entries.Get(gun)
	if !ok {
		return entry{}, false
	}
	now := c.opts.Now()
	if now.Sub(e.checked) >= c.opts.TTL {
		return entry{}, false
	}
	if e.noTrust == nil && !now.Before(e.state.Expires()) {
		return entry{}, false
	}
	return e, true
}

func (c *Cache) update(ctx context.Context, gun string) (*resolver.State, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.UpdateTimeout)
	defer cancel()
	s, err := c.updater.Update(ctx, gun)
	now := c.opts.Now()
	switch {
	case errors.Is(err, resolver.ErrNoTrustData):
		c.entries.Add(gun, entry{noTrust: err, checked: now})
		return nil, err
	case err != nil:
		// Keep no entry that could outlive this failure: a stale state is only served by the
		// resolver itself, which knows whether its cached timestamp is still valid.
		c.entries.Remove(gun)
		return nil, err
	case !now.Before(s.Expires()):
		c.entries.Remove(gun)
		return nil, fmt.Errorf("trust data for %s expired at %s: %w", gun, s.Expires().UTC().Format(time.RFC3339), resolver.ErrExpired)
	}
	c.entries.Add(gun, entry{state: s, checked: now})
	return s, nil
}
