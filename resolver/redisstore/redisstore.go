// Package redisstore is resolver.SharedStore on Redis (or Valkey): the trust_dir that several
// trustgate replicas share.
package redisstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/trustgate/trustgate/resolver"
)

// Store is a resolver.SharedStore in Redis (or Valkey): the trust_dir of several replicas. Each GUN is
// one hash, <prefix>tuf/<GUN>, with fields
//
//	f:<role>   raw verified metadata      fv:<role>  its signed.version
//	v:<role>   version floor              fh:<role>  sha256 of f:<role>
//	checked    when a trustgate last fetched and verified the timestamp (Redis clock, ms)
//
// and its refresh lease is <prefix>lock/<GUN>. Every rule is one Lua script, so replicas writing
// at once cannot interleave: a file is never replaced by a lower version, floors only rise, and
// a root is first-writer-wins (replaced only by a higher version verified against it). Times are
// Redis's own (TIME), so replicas' clocks need not agree.
type Store struct {
	rdb      redis.UniversalClient
	prefix   string
	lease    time.Duration
	lockWait time.Duration
	maxBytes int64
	metrics  *resolver.StoreMetrics
}

// Options configure a Store.
type Options struct {
	// Prefix starts every key, e.g. "trustgate:docker.io/": one namespace per trust server.
	Prefix string
	// Lease is how long a refresh lease outlives its holder: the holder renews it every third
	// of it while it refreshes, so a crashed holder delays the others by at most this.
	Lease time.Duration
	// LockWait bounds the wait for another process's lease; then this one refreshes on its own.
	LockWait time.Duration
	// MaxBytes bounds what one GUN's hash may hold when it is read (default
	// resolver.DefaultMaxMetadataBytes): a store that returns more is an error, not memory spent.
	MaxBytes int64
	Metrics  *resolver.StoreMetrics // lock waits and errors; nil = not counted
}

// Defaults for Options.
const (
	DefaultLease    = 5 * time.Second
	DefaultLockWait = 10 * time.Second
)

// New returns a store on rdb. It makes no requests.
func New(rdb redis.UniversalClient, opts Options) *Store {
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	if opts.LockWait <= 0 {
		opts.LockWait = DefaultLockWait
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = resolver.DefaultMaxMetadataBytes
	}
	if opts.Metrics == nil {
		opts.Metrics = &resolver.StoreMetrics{}
	}
	return &Store{rdb: rdb, prefix: opts.Prefix, lease: opts.Lease, lockWait: opts.LockWait, maxBytes: opts.MaxBytes, metrics: opts.Metrics}
}

var _ resolver.SharedStore = (*Store)(nil)

func (s *Store) key(gun string) string  { return s.prefix + "tuf/" + gun }
func (s *Store) lock(gun string) string { return s.prefix + "lock/" + gun }

// err counts a failed operation and names the store.
func (s *Store) err(op, gun string, err error) error {
	inc(s.metrics.Errors)
	return fmt.Errorf("redis %s %s: %w", op, gun, err)
}

// loadScript: ARGV max bytes, then role, sha256 pairs of the files the caller holds. Replies
// {fields, age of checked in ms or -1}: every field but the files the caller holds.
var loadScript = redis.NewScript(`
local have = {}
for i = 2, #ARGV, 2 do have[ARGV[i]] = ARGV[i + 1] end
local out, total = {}, 0
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  local role = string.match(f, '^f:(.*)$')
  if not (role and have[role] and redis.call('HGET', KEYS[1], 'fh:' .. role) == have[role]) then
    local v = redis.call('HGET', KEYS[1], f)
    total = total + #v + #f
    if total > tonumber(ARGV[1]) then
      return redis.error_reply('trust state of more than ' .. ARGV[1] .. ' bytes')
    end
    out[#out + 1] = f
    out[#out + 1] = v
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local checked = redis.call('HGET', KEYS[1], 'checked')
local age = -1
if checked then age = now - tonumber(checked) end
return {out, age}
`)

// Load implements Store. Files the caller holds (have) are not sent again.
func (s *Store) Load(ctx context.Context, gun string, have map[string]string) (resolver.Stored, error) {
	args := []any{s.maxBytes}
	for role, sum := range have {
		args = append(args, role, sum)
	}
	res, err := loadScript.Run(ctx, s.rdb, []string{s.key(gun)}, args...).Slice()
	if err != nil {
		return resolver.Stored{}, s.err("load", gun, err)
	}
	st := resolver.Stored{Files: map[string][]byte{}, Versions: map[string]int{}, Hashes: map[string]string{}}
	if len(res) != 2 {
		return resolver.Stored{}, s.err("load", gun, errors.New("unexpected reply"))
	}
	all, _ := res[0].([]any)
	for i := 0; i+1 < len(all); i += 2 {
		field, _ := all[i].(string)
		val, _ := all[i+1].(string)
		switch kind, role, _ := strings.Cut(field, ":"); kind {
		case "f":
			st.Files[role] = []byte(val)
		case "fh":
			st.Hashes[role] = val
		case "v":
			v, err := strconv.Atoi(val)
			if err != nil || v < 0 {
				return resolver.Stored{}, s.err("load", gun, fmt.Errorf("%w: floor of %s is %q", resolver.ErrInvalid, role, val))
			}
			st.Versions[role] = v
		}
	}
	if age, ok := res[1].(int64); ok && age >= 0 {
		st.Checked = time.Now().Add(-time.Duration(age) * time.Millisecond)
	}
	return st, nil
}

// saveFileScript: ARGV role, raw, version, prev (sha256 of the root verified against, or ""),
// sha256 of raw. Replies {"ok"}, {"newer", version} or {"conflict"}.
var saveFileScript = redis.NewScript(`
local role, v = ARGV[1], tonumber(ARGV[3])
local cur = tonumber(redis.call('HGET', KEYS[1], 'fv:' .. role) or '0')
if role == 'root' then
  local have = redis.call('HGET', KEYS[1], 'fh:root')
  if have then
    if have == ARGV[5] then return {'ok'} end
    if cur > v then return {'newer', cur} end
    if cur == v or have ~= ARGV[4] then return {'conflict'} end
  end
elseif cur > v then
  return {'newer', cur}
end
redis.call('HSET', KEYS[1], 'f:' .. role, ARGV[2], 'fv:' .. role, v, 'fh:' .. role, ARGV[5])
local floor = tonumber(redis.call('HGET', KEYS[1], 'v:' .. role) or '0')
if v > floor then redis.call('HSET', KEYS[1], 'v:' .. role, v) end
return {'ok'}
`)

// SaveFile implements Store. The file's version also raises its floor.
func (s *Store) SaveFile(ctx context.Context, gun, role string, raw []byte, version int, prev string) error {
	res, err := saveFileScript.Run(ctx, s.rdb, []string{s.key(gun)}, role, raw, version, prev, sha256Hex(raw)).Slice()
	if err != nil {
		return s.err("save "+role+" of", gun, err)
	}
	switch res[0] {
	case "ok":
		return nil
	case "newer":
		v, _ := res[1].(int64)
		return &resolver.NewerError{Role: role, Version: int(v), Where: "the shared trust store"}
	case "conflict":
		return resolver.ErrRootConflict
	}
	return s.err("save "+role+" of", gun, fmt.Errorf("unexpected reply %v", res))
}

// raiseScript: ARGV role, version pairs; each floor becomes the higher of the two.
var raiseScript = redis.NewScript(`
for i = 1, #ARGV, 2 do
  local f = 'v:' .. ARGV[i]
  local v = tonumber(ARGV[i + 1])
  if v > tonumber(redis.call('HGET', KEYS[1], f) or '0') then redis.call('HSET', KEYS[1], f, v) end
end
return 1
`)

// SaveVersions implements Store: compare-and-raise, floors never fall.
func (s *Store) SaveVersions(ctx context.Context, gun string, versions map[string]int) error {
	if len(versions) == 0 {
		return nil
	}
	args := make([]any, 0, 2*len(versions))
	for role, v := range versions {
		args = append(args, role, v)
	}
	if err := raiseScript.Run(ctx, s.rdb, []string{s.key(gun)}, args...).Err(); err != nil {
		return s.err("save versions of", gun, err)
	}
	return nil
}

// Forget implements Store. The root is never forgotten.
func (s *Store) Forget(ctx context.Context, gun string, roles []string) error {
	var fields []string
	for _, role := range roles {
		if role != "root" {
			fields = append(fields, "f:"+role, "fv:"+role, "fh:"+role, "v:"+role)
		}
	}
	if len(fields) == 0 {
		return nil
	}
	if err := s.rdb.HDel(ctx, s.key(gun), fields...).Err(); err != nil {
		return s.err("forget roles of", gun, err)
	}
	return nil
}

var markScript = redis.NewScript(`
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], 'checked', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
return 1
`)

// MarkChecked implements SharedStore.
func (s *Store) MarkChecked(ctx context.Context, gun string) error {
	if err := markScript.Run(ctx, s.rdb, []string{s.key(gun)}).Err(); err != nil {
		return s.err("mark checked", gun, err)
	}
	return nil
}

// releaseScript deletes the lease only if it is still the caller's (compare-and-delete): a
// lease that expired and was taken by another process is not the caller's to end.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// renewScript extends the lease only if it is still the caller's.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`)

// Lease implements SharedStore: SET NX PX with a random token, renewed while held, polled while
// another holds it. After a holder crashes, its lease expires within s.lease and one waiter takes
// it over.
func (s *Store) Lease(ctx context.Context, gun string) (func(), bool, error) {
	var tok [16]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return func() {}, false, err
	}
	token := hex.EncodeToString(tok[:])
	key := s.lock(gun)
	deadline := time.Now().Add(s.lockWait)
	waited := false
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		ok, err := s.rdb.SetNX(ctx, key, token, s.lease).Result()
		if err != nil {
			return func() {}, waited, s.err("lease", gun, err)
		}
		if ok {
			stop, stopped := make(chan struct{}), make(chan struct{})
			go s.renew(key, token, stop, stopped)
			return func() {
				close(stop)
				<-stopped
				ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
				defer cancel()
				if err := releaseScript.Run(ctx, s.rdb, []string{key}, token).Err(); err != nil {
					_ = s.err("release lease", gun, err) // it expires on its own
				}
			}, waited, nil
		}
		waited = true
		if time.Now().After(deadline) {
			return func() {}, true, nil
		}
		select {
		case <-ctx.Done():
			return func() {}, true, fmt.Errorf("%w: waiting for the refresh of %s by another trustgate: %w", resolver.ErrUnavailable, gun, ctx.Err())
		case <-time.After(delay):
		}
	}
}

// renew keeps the lease key (ours while it holds token) alive until stop is closed.
func (s *Store) renew(key, token string, stop <-chan struct{}, stopped chan<- struct{}) {
	defer close(stopped)
	t := time.NewTicker(s.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), s.lease/3)
			err := renewScript.Run(ctx, s.rdb, []string{key}, token, s.lease.Milliseconds()).Err()
			cancel()
			if err != nil {
				inc(s.metrics.Errors) // the lease may lapse: at worst a second refresh runs
			}
		}
	}
}

// opTimeout bounds a lease release, which runs detached from any request.
const opTimeout = 5 * time.Second

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func inc(c resolver.Counter) {
	if c != nil {
		c.Inc()
	}
}
