package resolver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Versions returns the version of every role the state was verified with (for roles that did
// not verify in that pass, such as a skipped delegation, the floor kept from before).
func (s *State) Versions() map[string]int { return maps.Clone(s.versions) }

// CachedGUNs lists the repositories whose trust data is cached in trustDir (a Config.TrustDir),
// sorted. Names too long to be kept as a directory name (stored under their hash) cannot be
// listed and are left out.
func CachedGUNs(trustDir string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(trustDir, "tuf"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var guns []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		gun, ok := unescapeName(e.Name())
		if !ok || escapeName(gun) != e.Name() || validateGUN(gun) != nil {
			continue
		}
		guns = append(guns, gun)
	}
	sort.Strings(guns)
	return guns, nil
}

// VerifyCached verifies gun's trust data as cached in cfg.TrustDir, without contacting any
// server: the cached root, then timestamp, snapshot, targets and delegations, with every
// signature, threshold, checksum, certificate and version floor checked exactly as Update checks
// them. Expiry is checked as of the returned instant: now if the cached data is still valid,
// else the last instant at which root, timestamp, snapshot and targets were all unexpired — so
// cached data that has expired since it was verified can still be read, and the caller must say
// so (it is how trust data outlives a retired Notary server). A delegation that was already
// expired at that instant is skipped, as Update skips it.
func VerifyCached(ctx context.Context, cfg Config, gun string) (*State, time.Time, error) {
	if err := validateGUN(gun); err != nil {
		return nil, time.Time{}, err
	}
	if cfg.TrustDir == "" {
		return nil, time.Time{}, fmt.Errorf("%w: %s: no trust_dir to read cached trust data from", ErrNoTrustData, gun)
	}
	now := time.Now
	if cfg.Now != nil {
		now = cfg.Now
	}
	files, _, err := store{dir: cfg.TrustDir}.load(gun)
	if err != nil {
		return nil, time.Time{}, err
	}
	at := now()
	for _, role := range []string{roleRoot, roleTimestamp, roleSnapshot, roleTargets} {
		raw, ok := files[role]
		if !ok {
			return nil, time.Time{}, fmt.Errorf("%w: %s: trust_dir holds no cached %s.json", ErrNoTrustData, gun, role)
		}
		// Unverified here: it only picks the instant; Update verifies everything as of it.
		var f struct {
			Signed signedCommon `json:"signed"`
		}
		if err := json.Unmarshal(raw, &f); err != nil {
			return nil, time.Time{}, fmt.Errorf("%w: %s: cached %s: %v", ErrInvalid, gun, role, err)
		}
		if f.Signed.Expires.Before(at) {
			at = f.Signed.Expires
		}
	}
	cfg.Now = func() time.Time { return at }
	cfg.Transport = offline{}
	c, err := NewClient(cfg)
	if err != nil {
		return nil, time.Time{}, err
	}
	st, err := c.Update(ctx, gun)
	if err != nil {
		return nil, time.Time{}, err
	}
	return st, at, nil
}

// offline is a transport that reaches no server, so Update uses only what is cached.
type offline struct{}

func (offline) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("offline: reading cached trust data only")
}
