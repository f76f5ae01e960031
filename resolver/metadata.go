package resolver

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"
)

// Role names as Notary spells them; delegations are "targets/<name>".
const (
	roleRoot      = "root"
	roleTargets   = "targets"
	roleSnapshot  = "snapshot"
	roleTimestamp = "timestamp"
)

// Notary's _type values are capitalised (tuf/data/types.go TUFTypes); anything else is refused.
var tufTypes = map[string]string{
	roleRoot:      "Root",
	roleTargets:   "Targets",
	roleSnapshot:  "Snapshot",
	roleTimestamp: "Timestamp",
}

// envelope is the wire form {"signed": …, "signatures": […]}. The signed part is kept raw
// because signatures are over the canonical form of exactly these bytes, never over a
// re-marshalled struct.
type envelope struct {
	Signed     signedBytes `json:"signed"`
	Signatures []signature `json:"signatures"`
}

// signedBytes is the signed section as it sits in the file: parseEnvelope's json.Unmarshal
// hands UnmarshalJSON a slice of the caller's bytes, which are kept as they are (never
// written to) rather than copied, so a large file is not held twice.
type signedBytes []byte

func (s *signedBytes) UnmarshalJSON(b []byte) error {
	*s = b[:len(b):len(b)]
	return nil
}

func (s signedBytes) MarshalJSON() ([]byte, error) { return json.RawMessage(s).MarshalJSON() }

type signature struct {
	KeyID  string `json:"keyid"`
	Method string `json:"method"`
	Sig    []byte `json:"sig"` // standard base64 on the wire, like every Notary []byte
}

// signedCommon holds the fields every role shares.
type signedCommon struct {
	Type    string    `json:"_type"`
	Expires time.Time `json:"expires"`
	Version int       `json:"version"`
}

type hashes map[string][]byte

type fileMeta struct {
	Length int64  `json:"length"`
	Hashes hashes `json:"hashes"`
}

type tufKey struct {
	Type  string `json:"keytype"`
	Value struct {
		Public []byte `json:"public"`
	} `json:"keyval"`
}

type rootRole struct {
	KeyIDs    []string `json:"keyids"`
	Threshold int      `json:"threshold"`
}

type rootSigned struct {
	signedCommon
	Keys  map[string]tufKey    `json:"keys"`
	Roles map[string]*rootRole `json:"roles"`
}

type timestampSigned struct {
	signedCommon
	Meta map[string]fileMeta `json:"meta"`
}

type snapshotSigned struct {
	signedCommon
	Meta map[string]fileMeta `json:"meta"`
}

type delegationRole struct {
	Name      string   `json:"name"`
	KeyIDs    []string `json:"keyids"`
	Threshold int      `json:"threshold"`
	Paths     []string `json:"paths"`
}

type targetsSigned struct {
	signedCommon
	Targets     targetMap `json:"targets"`
	Delegations struct {
		Keys  map[string]tufKey `json:"keys"`
		Roles []delegationRole  `json:"roles"`
	} `json:"delegations"`
}

// parseEnvelope splits raw metadata into its signed bytes and signatures. Methods are
// lower-cased like Notary's Signature.UnmarshalJSON so "ECDSA" selects the same verifier.
func parseEnvelope(raw []byte) (*envelope, error) {
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("%w: parsing metadata: %v", ErrInvalid, err)
	}
	if len(env.Signed) == 0 || bytes.Equal(bytes.TrimSpace(env.Signed), []byte("null")) {
		return nil, fmt.Errorf("%w: metadata has no signed section", ErrInvalid)
	}
	for i := range env.Signatures {
		env.Signatures[i].Method = strings.ToLower(env.Signatures[i].Method)
	}
	return &env, nil
}

func checkCommon(c signedCommon, role string) error {
	want := tufTypes[role]
	if c.Type != want {
		return fmt.Errorf("%w: %s: _type is %q, want %q", ErrInvalid, role, c.Type, want)
	}
	if c.Version < 1 {
		return fmt.Errorf("%w: %s: version %d is less than 1", ErrInvalid, role, c.Version)
	}
	return nil
}

func decodeSigned(env *envelope, role string, v any) error {
	if err := json.Unmarshal(env.Signed, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, role, err)
	}
	return nil
}

// parseRoot checks the structure Notary requires of a root (tuf/data/root.go
// isValidRootStructure): all four base roles, thresholds ≥ 1, every key ID present.
func parseRoot(env *envelope) (*rootSigned, error) {
	var r rootSigned
	if err := decodeSigned(env, roleRoot, &r); err != nil {
		return nil, err
	}
	if err := checkCommon(r.signedCommon, roleRoot); err != nil {
		return nil, err
	}
	for _, name := range []string{roleRoot, roleTimestamp, roleSnapshot, roleTargets} {
		rr := r.Roles[name]
		if rr == nil {
			return nil, fmt.Errorf("%w: root: missing %s role specification", ErrInvalid, name)
		}
		if err := checkRoleKeys(roleRoot, name, rr.KeyIDs, rr.Threshold, r.Keys); err != nil {
			return nil, err
		}
	}
	return &r, nil
}

func checkRoleKeys(in, role string, ids []string, threshold int, keys map[string]tufKey) error {
	if threshold < 1 {
		return fmt.Errorf("%w: %s: invalid threshold %d for %s", ErrInvalid, in, threshold, role)
	}
	for _, id := range ids {
		if _, ok := keys[id]; !ok {
			return fmt.Errorf("%w: %s: key ID %s for %s has no key", ErrInvalid, in, id, role)
		}
	}
	return nil
}

func parseTimestamp(env *envelope) (*timestampSigned, error) {
	var t timestampSigned
	if err := decodeSigned(env, roleTimestamp, &t); err != nil {
		return nil, err
	}
	if err := checkCommon(t.signedCommon, roleTimestamp); err != nil {
		return nil, err
	}
	if err := checkMetaHashes(roleTimestamp, t.Meta, roleSnapshot); err != nil {
		return nil, err
	}
	return &t, nil
}

func parseSnapshot(env *envelope) (*snapshotSigned, error) {
	var s snapshotSigned
	if err := decodeSigned(env, roleSnapshot, &s); err != nil {
		return nil, err
	}
	if err := checkCommon(s.signedCommon, roleSnapshot); err != nil {
		return nil, err
	}
	if err := checkMetaHashes(roleSnapshot, s.Meta, roleRoot, roleTargets); err != nil {
		return nil, err
	}
	return &s, nil
}

// checkMetaHashes mirrors Notary's rule that the named entries carry a sha256 and only
// well-formed hashes (tuf/data/snapshot.go, timestamp.go).
func checkMetaHashes(in string, meta map[string]fileMeta, required ...string) error {
	for _, name := range required {
		m := meta[name]
		if _, ok := m.Hashes["sha256"]; !ok {
			return fmt.Errorf("%w: %s: missing %s sha256 checksum", ErrInvalid, in, name)
		}
		if err := checkHashStructure(m.Hashes); err != nil {
			return fmt.Errorf("%w: %s: %s: %v", ErrInvalid, in, name, err)
		}
	}
	return nil
}

func checkHashStructure(h hashes) error {
	n := 0
	for alg, v := range h {
		switch alg {
		case "sha256":
			if len(v) != sha256.Size {
				return fmt.Errorf("sha256 checksum has wrong length")
			}
			n++
		case "sha512":
			if len(v) != sha512.Size {
				return fmt.Errorf("sha512 checksum has wrong length")
			}
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("at least one supported hash needed")
	}
	return nil
}

// delegationName is Notary's whitelist (tuf/data/roles.go IsDelegation).
var delegationName = regexp.MustCompile(`^[-a-z0-9_/]+$`)

func isDelegation(name string) bool {
	return strings.HasPrefix(name, roleTargets+"/") && delegationName.MatchString(name) &&
		len(name) < 256 && path.Clean(name) == name
}

// parseTargets checks a targets or delegation file for role: every delegation it declares
// must be a direct child with a sane name and a threshold its keys can meet in principle.
func parseTargets(env *envelope, role string) (*targetsSigned, error) {
	var t targetsSigned
	if err := decodeSigned(env, role, &t); err != nil {
		return nil, err
	}
	if err := checkCommon(t.signedCommon, roleTargets); err != nil {
		return nil, fmt.Errorf("%s: %w", role, err)
	}
	seen := map[string]bool{}
	for _, d := range t.Delegations.Roles {
		// notary refuses to load a role twice, which fails the whole update; say so here.
		if seen[d.Name] {
			return nil, fmt.Errorf("%w: %s: delegation %q listed twice", ErrInvalid, role, d.Name)
		}
		seen[d.Name] = true
		if !isDelegation(d.Name) || path.Dir(d.Name) != role {
			return nil, fmt.Errorf("%w: %s: delegation %q is not a valid direct child", ErrInvalid, role, d.Name)
		}
		if err := checkRoleKeys(role, d.Name, d.KeyIDs, d.Threshold, t.Delegations.Keys); err != nil {
			return nil, err
		}
	}
	return &t, nil
}

// checkHashes is Notary's data.CheckHashes: every supported hash listed must match the raw
// bytes (hashes are over bytes as served, not a re-serialisation) and at least one must be
// supported.
func checkHashes(raw []byte, name string, h hashes) error {
	n := 0
	for alg, want := range h {
		var got []byte
		switch alg {
		case "sha256":
			s := sha256.Sum256(raw)
			got = s[:]
		case "sha512":
			s := sha512.Sum512(raw)
			got = s[:]
		default:
			continue
		}
		if subtle.ConstantTimeCompare(got, want) != 1 {
			return fmt.Errorf("%w: %s: %s does not match", ErrChecksum, name, alg)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("%w: %s: no supported checksum listed", ErrChecksum, name)
	}
	return nil
}
