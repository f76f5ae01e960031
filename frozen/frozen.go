// Package frozen is trustgate's frozen trust: Docker Content Trust bindings (tag → digest, size,
// role, signers) exported from verified Notary trust data into a file, so that enforcement goes
// on after the Notary server that held the trust data is retired.
//
// A file is JSON, version 1:
//
//	{
//	  "version": 1,
//	  "frozen_at": "2026-12-03T10:00:00Z",    when trustgate wrote it
//	  "expires": "2027-06-30T00:00:00Z",      the operator's expiry: past it nothing is served from it
//	  "patterns": ["docker.io/myorg/**"],     what the operator asked to freeze
//	  "repositories": [{
//	    "gun": "docker.io/myorg/app",
//	    "source": "notary",                   notary: verified against the server at verified_at
//	                                          trust_dir: cached metadata verified as of verified_at
//	    "server": "https://notary.example",
//	    "verified_at": "2026-12-03T10:00:00Z",
//	    "trust_expires": "2026-12-17T09:00:00Z",  when the Notary metadata itself expires(d)
//	    "roles": ["targets/releases", "targets"], the roles whose signatures were accepted
//	    "root_keys": ["<key ID>"],
//	    "versions": {"root": 1, "snapshot": 3, "targets": 3, "timestamp": 5},
//	    "tags": [{"tag": "v1", "digest": "sha256:…", "size": 528, "role": "targets",
//	              "role_version": 3, "signers": ["<key ID>"]}]
//	  }]
//	}
//
// Notary metadata carries no signing time; a binding's time is its repository's verified_at, and
// the metadata versions say which publication it came from. Repositories and tags are sorted and
// unique, and Marshal writes one canonical form (two-space indent, trailing newline), so the same
// bindings always give the same bytes and the same SHA-256.
//
// The file is not signed: its integrity is the SHA-256 the operator pins in the policy
// (frozen: {file: …, sha256: …}). Load refuses a file whose hash differs, so a file changed after
// it was frozen fails closed.
package frozen

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/trustgate/trustgate/internal/atomicfile"
)

// FormatVersion is the file format this package reads and writes.
const FormatVersion = 1

// MaxFileSize bounds what Load and Parse read (about 200,000 tags).
const MaxFileSize = 64 << 20

// Sources of a repository's bindings.
const (
	// SourceNotary: verified at VerifiedAt against the Notary server (or its cached timestamp
	// while that was still valid), exactly as serve verifies.
	SourceNotary = "notary"
	// SourceTrustDir: the metadata cached in trust_dir, every signature, threshold, checksum and
	// version floor verified, as of VerifiedAt: the last instant it was all unexpired.
	SourceTrustDir = "trust_dir"
)

var (
	// ErrInvalid: the file is not a valid frozen trust file.
	ErrInvalid = errors.New("invalid frozen trust file")
	// ErrChecksum: the file's SHA-256 is not the one pinned in the configuration.
	ErrChecksum = errors.New("frozen trust file does not match its pinned sha256")
	// ErrExpired: the operator's expiry of the frozen trust has passed.
	ErrExpired = errors.New("frozen trust expired")
)

// File is a frozen trust file.
type File struct {
	Version      int          `json:"version"`
	FrozenAt     time.Time    `json:"frozen_at"`
	Expires      time.Time    `json:"expires"`
	Patterns     []string     `json:"patterns"`
	Repositories []Repository `json:"repositories"`
}

// Repository is one repository's frozen bindings.
type Repository struct {
	GUN          string         `json:"gun"`
	Source       string         `json:"source"`
	Server       string         `json:"server"`
	VerifiedAt   time.Time      `json:"verified_at"`
	TrustExpires time.Time      `json:"trust_expires"`
	Roles        []string       `json:"roles"`
	RootKeys     []string       `json:"root_keys"`
	Versions     map[string]int `json:"versions"`
	Tags         []Tag          `json:"tags"`
}

// Tag is one frozen binding.
type Tag struct {
	Tag         string        `json:"tag"`
	Digest      digest.Digest `json:"digest"`
	Size        int64         `json:"size"`
	Role        string        `json:"role"`
	RoleVersion int           `json:"role_version"`
	Signers     []string      `json:"signers"`
}

// Repository returns gun's bindings, if the file has them.
func (f *File) Repository(gun string) (*Repository, bool) {
	i, ok := slices.BinarySearchFunc(f.Repositories, gun, func(r Repository, g string) int { return strings.Compare(r.GUN, g) })
	if !ok {
		return nil, false
	}
	return &f.Repositories[i], true
}

// Lookup returns tag's binding.
func (r *Repository) Lookup(tag string) (Tag, bool) {
	i, ok := slices.BinarySearchFunc(r.Tags, tag, func(t Tag, s string) int { return strings.Compare(t.Tag, s) })
	if !ok {
		return Tag{}, false
	}
	return r.Tags[i], true
}

// Normalize puts f in canonical form: UTC times truncated to seconds, repositories and tags
// sorted. Marshal calls it.
func (f *File) Normalize() {
	utc := func(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }
	f.FrozenAt, f.Expires = utc(f.FrozenAt), utc(f.Expires)
	slices.SortFunc(f.Repositories, func(a, b Repository) int { return strings.Compare(a.GUN, b.GUN) })
	for i := range f.Repositories {
		r := &f.Repositories[i]
		r.VerifiedAt, r.TrustExpires = utc(r.VerifiedAt), utc(r.TrustExpires)
		slices.SortFunc(r.Tags, func(a, b Tag) int { return strings.Compare(a.Tag, b.Tag) })
		if r.Versions == nil {
			r.Versions = map[string]int{}
		}
		for _, s := range []*[]string{&r.Roles, &r.RootKeys} {
			if *s == nil {
				*s = []string{}
			}
		}
		if r.Tags == nil {
			r.Tags = []Tag{}
		}
		for j := range r.Tags {
			if r.Tags[j].Signers == nil {
				r.Tags[j].Signers = []string{}
			}
		}
	}
	if f.Patterns == nil {
		f.Patterns = []string{}
	}
	if f.Repositories == nil {
		f.Repositories = []Repository{}
	}
}

// Marshal returns f's canonical bytes, after checking that Parse would accept them.
func (f *File) Marshal() ([]byte, error) {
	f.Normalize()
	if err := f.validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Parse reads a frozen trust file strictly: unknown fields, a second JSON value, an unknown
// version, and bindings that are malformed, duplicated or out of order are all refused.
func Parse(data []byte) (*File, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, MaxFileSize)
	}
	var probe struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if probe.Version == nil {
		return nil, fmt.Errorf("%w: no version", ErrInvalid)
	}
	if *probe.Version != FormatVersion {
		return nil, fmt.Errorf("%w: version %d; this trustgate reads version %d", ErrInvalid, *probe.Version, FormatVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrInvalid)
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

func (f *File) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
	}
	switch {
	case f.Version != FormatVersion:
		return bad("version %d; this trustgate writes version %d", f.Version, FormatVersion)
	case f.FrozenAt.IsZero():
		return bad("no frozen_at")
	case f.Expires.IsZero():
		return bad("no expires: frozen trust needs an expiry")
	case !f.Expires.After(f.FrozenAt):
		return bad("expires %s is not after frozen_at %s", stamp(f.Expires), stamp(f.FrozenAt))
	}
	for i, r := range f.Repositories {
		if i > 0 && f.Repositories[i-1].GUN >= r.GUN {
			return bad("repositories are not sorted and unique at %q", r.GUN)
		}
		if err := r.validate(); err != nil {
			return bad("repository %q: %v", r.GUN, err)
		}
	}
	return nil
}

var tagPattern = reference.TagRegexp

func (r *Repository) validate() error {
	named, err := reference.ParseNamed(r.GUN)
	if err != nil || named.Name() != r.GUN {
		return fmt.Errorf("not a canonical repository name")
	}
	switch {
	case r.Source != SourceNotary && r.Source != SourceTrustDir:
		return fmt.Errorf("source %q is not %s or %s", r.Source, SourceNotary, SourceTrustDir)
	case r.VerifiedAt.IsZero():
		return fmt.Errorf("no verified_at")
	case len(r.Roles) == 0:
		return fmt.Errorf("no roles")
	}
	for _, role := range r.Roles {
		if !isTargetsRole(role) {
			return fmt.Errorf("role %q is not targets or targets/<name>", role)
		}
	}
	for i, t := range r.Tags {
		if i > 0 && r.Tags[i-1].Tag >= t.Tag {
			return fmt.Errorf("tags are not sorted and unique at %q", t.Tag)
		}
		if len(t.Tag) > 128 || tagPattern.FindString(t.Tag) != t.Tag {
			return fmt.Errorf("tag %q is not a valid tag", t.Tag)
		}
		if d, err := digest.Parse(string(t.Digest)); err != nil || d.Algorithm() != digest.SHA256 {
			return fmt.Errorf("tag %s: digest %q is not a sha256 digest", t.Tag, t.Digest)
		}
		if t.Size < 0 {
			return fmt.Errorf("tag %s: negative size", t.Tag)
		}
		if !slices.Contains(r.Roles, t.Role) {
			return fmt.Errorf("tag %s: role %q is not one of the repository's roles", t.Tag, t.Role)
		}
	}
	return nil
}

func isTargetsRole(role string) bool {
	return role == "targets" || (strings.HasPrefix(role, "targets/") && len(role) > len("targets/"))
}

// Sum returns the hex SHA-256 of data: what a configuration pins.
func Sum(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// Load reads path and parses it if its SHA-256 is wantSHA256 (lower-case hex).
func Load(path, wantSHA256 string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if got := Sum(data); got != wantSHA256 {
		return nil, fmt.Errorf("%w: %s has sha256 %s, the configuration pins %s", ErrChecksum, path, got, wantSHA256)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// WriteFile writes f canonically to path atomically (a temporary file in the same directory,
// fsync, rename, fsync of the directory) and returns its SHA-256.
func WriteFile(path string, f *File) (string, error) {
	data, err := f.Marshal()
	if err != nil {
		return "", err
	}
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if err := atomicfile.Replace(dir, name, "."+name+".tmp-*", data, 0o644); err != nil {
		return "", err
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return "", err
	}
	return Sum(data), nil
}

// Describe is how a decision made from the file is named in the decision log.
func (f *File) Describe(path string) string {
	return fmt.Sprintf("frozen: %s (frozen at %s, expires %s)", path, stamp(f.FrozenAt), stamp(f.Expires))
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
