package resolver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/trustgate/trustgate/internal/atomicfile"
)

// store persists verified trust data so a restart neither repeats TOFU nor forgets the
// versions that rollback protection depends on. Layout under TrustDir:
//
//	tuf/<escaped GUN>/metadata/<escaped role>.json   raw verified metadata, as served
//	tuf/<escaped GUN>/versions.json                   {"<role>": highest verified version}
//
// A role's floor is the highest of every source on disk: versions.json and the version inside
// its metadata file. Each role's file is written as soon as it verifies and versions.json
// after it, so a crash between the two (or a versions.json from an older trustgate) loses no
// floor.
//
// Escaping keeps [A-Za-z0-9._-] and writes every other byte as %XX, so GUNs with '/' and
// ':' become one flat directory name and no GUN can name another's directory or climb out
// of TrustDir. A name longer than maxName once escaped, a dot name, or one that would read
// like a hashed name, is stored as sha256-<hex of the name>;
// load recognises such a role file by the role names versions.json and the cached parents
// list. A cached root.json is the trust anchor for its GUN (no pin is re-applied to
// it), exactly like docker's ~/.docker/trust/tuf/<GUN>/metadata/root.json. Writes are
// atomic: temp file in the same directory, fsync, rename, fsync the directory (and the parent
// of every directory created on the way).
type store struct {
	dir  string                 // "" = keep nothing on disk
	sync func(dir string) error // makes a directory's entries durable; nil = fsync
}

const maxName = 200 // stay well below NAME_MAX (255) after escaping

// hashedPrefix starts the name of a GUN or role whose escaped form is longer than maxName.
const hashedPrefix = "sha256-"

func escapeName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	out := b.String()
	if len(out) > maxName || out == "." || out == ".." || looksHashed(out) {
		sum := sha256.Sum256([]byte(s))
		return hashedPrefix + hex.EncodeToString(sum[:])
	}
	return out
}

// looksHashed reports whether an escaped name has the form escapeName gives a hashed one; such
// a name is hashed itself, so that it cannot share a trust-dir entry with the name it imitates.
func looksHashed(s string) bool {
	h, ok := strings.CutPrefix(s, hashedPrefix)
	if !ok || len(h) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil && strings.ToLower(h) == h
}

func (s store) gunDir(gun string) string {
	return filepath.Join(s.dir, "tuf", escapeName(gun))
}

// load returns the cached files and versions for gun; a missing directory is empty state.
func (s store) load(gun string) (map[string][]byte, map[string]int, error) {
	files, versions := map[string][]byte{}, map[string]int{}
	if s.dir == "" {
		return files, versions, nil
	}
	dir := s.gunDir(gun)
	b, err := readRegular(filepath.Join(dir, "versions.json"))
	switch {
	case errors.Is(err, errOddFile):
		return nil, nil, fmt.Errorf("%w: trust state of %s: %v", ErrInvalid, gun, err)
	case err == nil:
		if err := json.Unmarshal(b, &versions); err != nil {
			return nil, nil, fmt.Errorf("%w: %s: versions.json: %v", ErrInvalid, gun, err)
		}
		if versions == nil { // "null" decodes to a nil map; trustgate never writes it
			return nil, nil, fmt.Errorf("%w: %s: versions.json is not an object", ErrInvalid, gun)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, nil, fmt.Errorf("%w: reading trust state of %s: %v", ErrUnavailable, gun, err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "metadata"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%w: reading trust state of %s: %v", ErrUnavailable, gun, err)
	}
	read := func(role, file string) error {
		b, err := readRegular(filepath.Join(dir, "metadata", file))
		if errors.Is(err, errOddFile) {
			return fmt.Errorf("%w: trust state of %s: %v", ErrInvalid, gun, err)
		}
		if err != nil {
			return fmt.Errorf("%w: reading trust state of %s: %v", ErrUnavailable, gun, err)
		}
		files[role] = b
		if v, ok := fileVersion(b); ok && v > versions[role] {
			versions[role] = v
		}
		return nil
	}
	hashed := map[string]bool{} // file names of roles too long to escape, see escapeName
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		if strings.HasPrefix(name, hashedPrefix) {
			hashed[name] = true
			continue
		}
		role, ok := unescapeName(name)
		if !ok || (role != roleRoot && role != roleTimestamp && role != roleSnapshot && role != roleTargets && !isDelegation(role)) {
			continue
		}
		if err := read(role, e.Name()); err != nil {
			return nil, nil, err
		}
	}
	// A hashed file name cannot be read back, so it is matched against the names that could
	// have written it: every role in versions.json and every delegation a cached file lists
	// (a parent is always written before its children). Repeated for nested long names.
	for found := true; found && len(hashed) > 0; {
		found = false
		var names []string
		for role := range versions {
			names = append(names, role)
		}
		for _, raw := range files {
			names = append(names, listedDelegations(raw)...)
		}
		for _, role := range names {
			name := escapeName(role)
			if !hashed[name] || !isDelegation(role) {
				continue
			}
			delete(hashed, name)
			if err := read(role, name+".json"); err != nil {
				return nil, nil, err
			}
			found = true
		}
	}
	return files, versions, nil
}

// errOddFile marks a trust-dir entry that trustgate did not write: it only ever renames
// regular files of verified metadata into place.
var errOddFile = errors.New("not a file trustgate wrote")

// readRegular reads a file of the trust dir: a regular file (not followed through a symlink,
// never a FIFO or device that could block or never end) of at most maxDownloadSize bytes, the
// most any verified metadata can be.
func readRegular(name string) ([]byte, error) {
	fi, err := os.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: mode %s", name, errOddFile, fi.Mode())
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxDownloadSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxDownloadSize {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes", name, errOddFile, maxDownloadSize)
	}
	return b, nil
}

// listedDelegations returns the delegation names a cached targets file lists (none if it is
// not one).
func listedDelegations(raw []byte) []string {
	var f struct {
		Signed struct {
			Delegations struct {
				Roles []struct {
					Name string `json:"name"`
				} `json:"roles"`
			} `json:"delegations"`
		} `json:"signed"`
	}
	if json.Unmarshal(raw, &f) != nil {
		return nil
	}
	var names []string
	for _, d := range f.Signed.Delegations.Roles {
		names = append(names, d.Name)
	}
	return names
}

// fileVersion reads signed.version of a cached metadata file. Only what trustgate itself
// wrote after verifying it is read here, so the number is trusted as a floor; a file that does
// not parse contributes none (versions.json still does).
func fileVersion(raw []byte) (int, bool) {
	var f struct {
		Signed struct {
			Version int `json:"version"`
		} `json:"signed"`
	}
	if json.Unmarshal(raw, &f) != nil || f.Signed.Version < 1 {
		return 0, false
	}
	return f.Signed.Version, true
}

func unescapeName(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		v, err := hex.DecodeString(s[i+1 : i+3])
		if err != nil {
			return "", false
		}
		b.WriteByte(v[0])
		i += 2
	}
	return b.String(), true
}

// saveFile writes one role's raw metadata.
func (s store) saveFile(gun, role string, raw []byte) error {
	if s.dir == "" {
		return nil
	}
	return s.writeAtomic(filepath.Join(s.gunDir(gun), "metadata"), escapeName(role)+".json", raw)
}

// fileVersion returns the version in the cached file of role, if there is one that parses.
func (s store) fileVersion(gun, role string) (int, bool) {
	if s.dir == "" {
		return 0, false
	}
	b, err := readRegular(filepath.Join(s.gunDir(gun), "metadata", escapeName(role)+".json"))
	if err != nil {
		return 0, false
	}
	return fileVersion(b)
}

// removeFile deletes one role's cached metadata; a file already gone is not an error.
func (s store) removeFile(gun, role string) error {
	if s.dir == "" {
		return nil
	}
	err := os.Remove(filepath.Join(s.gunDir(gun), "metadata", escapeName(role)+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (s store) saveVersions(gun string, versions map[string]int) error {
	if s.dir == "" {
		return nil
	}
	b, err := json.Marshal(versions)
	if err != nil {
		return err
	}
	return s.writeAtomic(s.gunDir(gun), "versions.json", b)
}

// writeAtomic puts data at dir/name by a synced temporary file renamed into place, then syncs
// dir; directories it has to create are synced into their parents, up to and including the
// trust dir.
func (s store) writeAtomic(dir, name string, data []byte) error {
	if err := s.mkdirAll(dir); err != nil {
		return err
	}
	if err := atomicfile.Replace(dir, name, ".tmp-"+name+"-*", data, 0); err != nil {
		return err
	}
	return s.syncDir(dir)
}

// mkdirAll creates dir and syncs the parent of every directory it creates.
func (s store) mkdirAll(dir string) error {
	var created []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || !errors.Is(err, fs.ErrNotExist) || filepath.Dir(d) == d {
			break
		}
		created = append(created, d)
	}
	if len(created) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for i := len(created) - 1; i >= 0; i-- {
		if err := s.syncDir(filepath.Dir(created[i])); err != nil {
			return err
		}
	}
	return nil
}

func (s store) syncDir(dir string) error {
	if s.sync != nil {
		return s.sync(dir)
	}
	return atomicfile.SyncDir(dir)
}

// The file store as a Store: what Client does with its trust dir, for other code and tests that
// hold stores by the interface.
var _ Store = store{}

// Load implements Store.
func (s store) Load(_ context.Context, gun string, _ map[string]string) (Stored, error) {
	files, versions, err := s.load(gun)
	return Stored{Files: files, Versions: versions}, err
}

// SaveFile implements Store. Another process sharing the trust dir (trustgate resolve beside
// serve) may have written a newer version: that file stays. Roots are not compared (prev is
// unused): the trust dir's root is replaced by whichever root its process verified last.
func (s store) SaveFile(_ context.Context, gun, role string, raw []byte, version int, _ string) error {
	if theirs, ok := s.fileVersion(gun, role); ok && theirs > version {
		return &NewerError{Role: role, Version: theirs, Where: s.dir}
	}
	return s.saveFile(gun, role, raw)
}

// SaveVersions implements Store: versions.json is the whole map.
func (s store) SaveVersions(_ context.Context, gun string, versions map[string]int) error {
	return s.saveVersions(gun, versions)
}

// Forget implements Store. versions.json no longer lists roles once the caller has saved its
// floors without them; their files are removed here.
func (s store) Forget(_ context.Context, gun string, roles []string) error {
	for _, role := range roles {
		if err := s.removeFile(gun, role); err != nil {
			return err
		}
	}
	return nil
}
