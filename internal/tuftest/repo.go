package tuftest

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"

	"github.com/trustgate/trustgate/notaryserve"
)

// Base role names.
const (
	Root      = "root"
	Targets   = "targets"
	Snapshot  = "snapshot"
	Timestamp = "timestamp"
)

// Repo is the signing side of one GUN: it holds every role's keys, contents, versions and
// expiries, and Publish turns them into the files a notary-server would serve. Each role is
// re-signed only when something about it changed, so unchanged files keep their bytes (and
// hashes) across publishes, like a real repository.
type Repo struct {
	t   testing.TB
	gun string
	now func() time.Time

	rootAlg Alg
	// rootKeys signs the current root; oldRootKeys are every earlier root key, still listed in
	// root "keys" (notary never removes them) and used to cross-sign a rotation.
	rootKeys    []*Key
	oldRootKeys []*Key
	prevRoot    []*Key // root-role keys of the previous version, which must sign this one

	roles map[string]*role
	// delegations in the order they were added; a parent lists its children in this order.
	delegations []string

	files       map[string][]byte
	rootHistory map[int][]byte
	published   bool
}

type role struct {
	name      string
	keys      []*Key
	threshold int
	paths     []string
	version   int
	expires   time.Time
	targets   map[string]interface{}

	signWith     []*Key
	signFunc     func(k *Key, msg []byte) Signature
	mutateSigned []func(signed map[string]interface{})
	mutateFile   []func(file []byte) []byte
	rawSigned    []byte
	omit         bool

	dirty         bool
	pinnedVersion bool
}

// Option configures NewRepo.
type Option func(*config)

type config struct {
	now          func() time.Time
	rootAlg      Alg
	rootCN       string
	rootNotAfter time.Time
	rootCertFrom time.Time
	keyAlg       Alg
	rootKeys     int
	rootThresh   int
	rootGiven    []*Key
}

// WithRootKey uses the given root keys (e.g. from CA.Issue) instead of generating them.
func WithRootKey(keys ...*Key) Option {
	return func(c *config) { c.rootGiven, c.rootKeys = keys, len(keys) }
}

// WithNow sets the clock expiries are computed from (default time.Now). The real notary client
// always checks against time.Now, so tests shared with the oracle should keep the default.
func WithNow(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithRSARoot makes the root key an rsa-x509 certificate signed with rsapss (default ecdsa-x509).
func WithRSARoot() Option { return func(c *config) { c.rootAlg = RSA } }

// WithRootCN sets the root certificate's CommonName (default: the GUN).
func WithRootCN(cn string) Option { return func(c *config) { c.rootCN = cn } }

// WithRootCertValidity sets the root certificate's validity window (default now-1h … now+10y).
func WithRootCertValidity(notBefore, notAfter time.Time) Option {
	return func(c *config) { c.rootCertFrom, c.rootNotAfter = notBefore, notAfter }
}

// WithKeyAlg sets the algorithm of the targets, snapshot and timestamp keys (default ECDSA;
// notary's local trust service uses Ed25519 for snapshot and timestamp).
func WithKeyAlg(alg Alg) Option { return func(c *config) { c.keyAlg = alg } }

// WithRootKeys makes n root keys with the given threshold (default 1 of 1).
func WithRootKeys(n, threshold int) Option {
	return func(c *config) { c.rootKeys, c.rootThresh = n, threshold }
}

// NewRepo makes a repository for gun with fresh keys and default expiries (root 10 years,
// targets and snapshot 3 years, timestamp 14 days, as notary does).
func NewRepo(t testing.TB, gun string, opts ...Option) *Repo {
	t.Helper()
	c := config{now: time.Now, rootAlg: ECDSA, rootCN: gun, keyAlg: ECDSA, rootKeys: 1, rootThresh: 1}
	for _, o := range opts {
		o(&c)
	}
	now := c.now()
	if c.rootNotAfter.IsZero() {
		c.rootCertFrom, c.rootNotAfter = now.Add(-time.Hour), now.AddDate(10, 0, 0)
	}
	r := &Repo{
		t: t, gun: gun, now: c.now, rootAlg: c.rootAlg,
		roles:       map[string]*role{},
		rootHistory: map[int][]byte{},
	}
	r.rootKeys = c.rootGiven
	for len(r.rootKeys) < c.rootKeys {
		r.rootKeys = append(r.rootKeys, NewCertKey(t, c.rootAlg, c.rootCN, c.rootCertFrom, c.rootNotAfter))
	}
	r.roles[Root] = &role{name: Root, keys: r.rootKeys, threshold: c.rootThresh, expires: now.AddDate(10, 0, 0)}
	r.roles[Targets] = &role{name: Targets, keys: []*Key{NewKey(t, c.keyAlg)}, threshold: 1,
		expires: now.AddDate(3, 0, 0), targets: map[string]interface{}{}}
	r.roles[Snapshot] = &role{name: Snapshot, keys: []*Key{NewKey(t, c.keyAlg)}, threshold: 1, expires: now.AddDate(3, 0, 0)}
	r.roles[Timestamp] = &role{name: Timestamp, keys: []*Key{NewKey(t, c.keyAlg)}, threshold: 1, expires: now.AddDate(0, 0, 14)}
	for _, rl := range r.roles {
		rl.dirty = true
	}
	return r
}

// GUN is the repository's globally unique name.
func (r *Repo) GUN() string { return r.gun }

// Keys returns the keys listed for a role (root: the current root certificates).
func (r *Repo) Keys(name string) []*Key { return slices.Clone(r.role(name).keys) }

// Version returns the version the role had (or will have) in the last (next) publish.
func (r *Repo) Version(name string) int { return r.role(name).version }

// RootKeyIDs returns the key IDs of the current root certificates, what trust pinning names.
func (r *Repo) RootKeyIDs() []string {
	ids := make([]string, 0, len(r.rootKeys))
	for _, k := range r.rootKeys {
		ids = append(ids, k.ID())
	}
	return ids
}

func (r *Repo) role(name string) *role {
	rl, ok := r.roles[name]
	if !ok {
		r.t.Fatalf("tuftest: no role %q", name)
	}
	return rl
}

// AddTarget signs tag in role to the sha256 (and sha512, as `notary add` does) of content and
// returns the digest "sha256:<hex>".
func (r *Repo) AddTarget(roleName, tag string, content []byte) string {
	s256, s512 := sha256.Sum256(content), sha512.Sum512(content)
	r.setTarget(roleName, tag, map[string]interface{}{
		"length": int64(len(content)),
		"hashes": map[string]interface{}{
			"sha256": base64.StdEncoding.EncodeToString(s256[:]),
			"sha512": base64.StdEncoding.EncodeToString(s512[:]),
		},
	})
	return "sha256:" + hex.EncodeToString(s256[:])
}

// AddTargetDigest signs tag in role to a sha256 given as "sha256:<hex>" or bare hex, and size,
// as `notary addhash --sha256` does (no sha512).
func (r *Repo) AddTargetDigest(roleName, tag, digest string, size int64) {
	raw, err := hex.DecodeString(strings.TrimPrefix(digest, "sha256:"))
	if err != nil || len(raw) != sha256.Size {
		r.t.Fatalf("tuftest: bad sha256 digest %q", digest)
	}
	r.setTarget(roleName, tag, map[string]interface{}{
		"length": size,
		"hashes": map[string]interface{}{"sha256": base64.StdEncoding.EncodeToString(raw)},
	})
}

// SetTargetMeta lists tag in role with arbitrary target metadata (for malformed entries).
func (r *Repo) SetTargetMeta(roleName, tag string, meta map[string]interface{}) {
	r.setTarget(roleName, tag, meta)
}

func (r *Repo) setTarget(roleName, tag string, meta map[string]interface{}) {
	rl := r.role(roleName)
	if rl.targets == nil {
		r.t.Fatalf("tuftest: %s is not a targets role", roleName)
	}
	rl.targets[tag] = meta
	rl.dirty = true
}

// RemoveTarget unlists tag from role.
func (r *Repo) RemoveTarget(roleName, tag string) {
	rl := r.role(roleName)
	delete(rl.targets, tag)
	rl.dirty = true
}

// AddDelegation delegates name (e.g. "targets/releases", "targets/releases/bob") from its parent
// to keys with a threshold and path prefixes (nil = [""], all paths, as docker does).
func (r *Repo) AddDelegation(name string, keys []*Key, paths []string, threshold int) {
	parent := path.Dir(name)
	if _, ok := r.roles[parent]; !ok || parent == Root || parent == Snapshot || parent == Timestamp {
		r.t.Fatalf("tuftest: delegation %q: no targets parent %q", name, parent)
	}
	if _, ok := r.roles[name]; ok {
		r.t.Fatalf("tuftest: delegation %q exists", name)
	}
	if paths == nil {
		paths = []string{""}
	}
	r.roles[name] = &role{name: name, keys: keys, threshold: threshold, paths: paths,
		expires: r.now().AddDate(3, 0, 0), targets: map[string]interface{}{}, dirty: true}
	r.delegations = append(r.delegations, name)
	r.roles[parent].dirty = true
}

// RemoveDelegation drops name and every delegation under it from its parent, as `notary
// delegation remove` does; adding name again later starts a new role at version 1.
func (r *Repo) RemoveDelegation(name string) {
	r.role(name)
	var kept []string
	for _, d := range r.delegations {
		if d == name || strings.HasPrefix(d, name+"/") {
			delete(r.roles, d)
			delete(r.files, d+".json")
			continue
		}
		kept = append(kept, d)
	}
	r.delegations = kept
	r.roles[path.Dir(name)].dirty = true
}

// SetPaths changes a delegation's path prefixes (declared in its parent).
func (r *Repo) SetPaths(name string, paths ...string) {
	r.role(name).paths = paths
	r.declarer(name).dirty = true
}

// SetExpiry sets a role's expiry.
func (r *Repo) SetExpiry(name string, t time.Time) {
	rl := r.role(name)
	rl.expires, rl.dirty = t, true
}

// SetVersion fixes a role's version for the next publish instead of incrementing it.
func (r *Repo) SetVersion(name string, v int) {
	rl := r.role(name)
	rl.version, rl.pinnedVersion, rl.dirty = v, true, true
}

// SetThreshold changes a role's threshold (the declaration lives in root or the parent).
func (r *Repo) SetThreshold(name string, n int) {
	rl := r.role(name)
	rl.threshold, rl.dirty = n, true
	r.declarer(name).dirty = true
}

// SetKeys replaces the keys listed for a role (root keeps listing the old ones, as notary does
// for root keys only).
func (r *Repo) SetKeys(name string, keys ...*Key) {
	rl := r.role(name)
	if name == Root {
		r.oldRootKeys = append(r.oldRootKeys, r.rootKeys...)
		r.rootKeys = keys
	}
	rl.keys, rl.dirty = keys, true
	r.declarer(name).dirty = true
}

// SignWith makes a role be signed by exactly these keys, in order: keys not listed for the role,
// a subset below threshold, or the same key twice. Without keys it restores the listed keys.
func (r *Repo) SignWith(name string, keys ...*Key) {
	rl := r.role(name)
	rl.signWith, rl.dirty = keys, true
}

// SignFunc replaces how each signature of a role is made (e.g. Key.SignASN1, a wrong method).
func (r *Repo) SignFunc(name string, f func(k *Key, msg []byte) Signature) {
	rl := r.role(name)
	rl.signFunc, rl.dirty = f, true
}

// MutateSigned edits a role's "signed" object before it is canonicalized and signed, so the
// result is validly signed and hashed: for structural attacks that need to get past signatures.
func (r *Repo) MutateSigned(name string, f func(signed map[string]interface{})) {
	rl := r.role(name)
	rl.mutateSigned, rl.dirty = append(rl.mutateSigned, f), true
}

// MutateFile edits a role's final file bytes before snapshot/timestamp hash them, so parents
// list the tampered bytes and only the signature (or parsing) can catch it.
func (r *Repo) MutateFile(name string, f func(file []byte) []byte) {
	rl := r.role(name)
	rl.mutateFile, rl.dirty = append(rl.mutateFile, f), true
}

// SetSignedRaw makes a role's "signed" exactly raw (any bytes) and signs the canonical form of
// raw decoded into a map, as notary's verifier computes it (raw itself if it does not decode).
// Parents still hash the result, so only parsing and verification can object: for fuzzing
// how the resolver reads validly signed but odd JSON.
func (r *Repo) SetSignedRaw(name string, raw []byte) {
	rl := r.role(name)
	rl.rawSigned, rl.dirty = bytes.Clone(raw), true
}

// OmitFromSnapshot leaves a delegation (or root/targets) out of snapshot meta.
func (r *Repo) OmitFromSnapshot(name string) {
	r.role(name).omit = true
	r.roles[Snapshot].dirty = true
}

// Touch marks a role changed so the next publish re-signs it with the next version.
func (r *Repo) Touch(name string) { r.role(name).dirty = true }

// RotateRoot replaces the root keys with fresh ones (same algorithm and certificate CN as
// before unless keys are given); the new root is signed by the old and the new keys, and the
// old certificates stay listed, as `notary key rotate <gun> root` does.
func (r *Repo) RotateRoot(keys ...*Key) {
	r.t.Helper()
	if len(keys) == 0 {
		for _, k := range r.rootKeys {
			c := k.Cert
			keys = append(keys, NewCertKey(r.t, r.rootAlg, c.Subject.CommonName, r.now().Add(-time.Hour), r.now().AddDate(10, 0, 0)))
		}
	}
	r.prevRoot = r.rootKeys
	r.SetKeys(Root, keys...)
}

// declarer is the role whose file declares name's keys and threshold.
func (r *Repo) declarer(name string) *role {
	switch name {
	case Root, Targets, Snapshot, Timestamp:
		return r.roles[Root]
	}
	return r.roles[path.Dir(name)]
}

// Publish signs whatever changed and returns every file a notary-server would hold, keyed by
// the name in its URL: "root.json", "timestamp.json", "snapshot.json", "targets.json",
// "targets/releases.json", and "<N>.root.json" for every root version published. The map is a
// fresh copy; callers may alter it.
func (r *Repo) Publish() map[string][]byte {
	r.t.Helper()
	if r.files == nil {
		r.files = map[string][]byte{}
	}
	// Delegations deepest first is not needed (parents do not hash children), but their
	// declarations in parents must be current, so sign children before parents anyway.
	order := slices.Clone(r.delegations)
	slices.Reverse(order)
	for _, name := range append(order, Targets, Root) {
		r.sign(name)
	}
	snap := r.roles[Snapshot]
	snapMeta := map[string]interface{}{}
	for _, name := range append([]string{Root, Targets}, r.delegations...) {
		if !r.roles[name].omit {
			snapMeta[name] = fileMeta(r.files[name+".json"])
		}
	}
	if !r.published || !metaEqual(r.lastMeta(Snapshot), snapMeta) {
		snap.dirty = true
	}
	r.sign(Snapshot)
	tsMeta := map[string]interface{}{Snapshot: fileMeta(r.files["snapshot.json"])}
	if !r.published || !metaEqual(r.lastMeta(Timestamp), tsMeta) {
		r.roles[Timestamp].dirty = true
	}
	r.sign(Timestamp)
	r.published = true

	out := make(map[string][]byte, len(r.files)+len(r.rootHistory))
	for k, v := range r.files {
		out[k] = bytes.Clone(v)
	}
	for v, b := range r.rootHistory {
		out[fmt.Sprintf("%d.root.json", v)] = bytes.Clone(b)
	}
	return out
}

// lastMeta is the "meta" of the role's last signed file, nil if none.
func (r *Repo) lastMeta(name string) interface{} {
	b, ok := r.files[name+".json"]
	if !ok {
		return nil
	}
	var f struct {
		Signed struct {
			Meta json.RawMessage `json:"meta"`
		} `json:"signed"`
	}
	if json.Unmarshal(b, &f) != nil {
		return nil
	}
	var m interface{}
	_ = json.Unmarshal(f.Signed.Meta, &m)
	return m
}

func metaEqual(old interface{}, cur map[string]interface{}) bool {
	a, err1 := json.Marshal(old)
	b, err2 := json.Marshal(cur)
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}

func fileMeta(b []byte) map[string]interface{} { return notaryserve.FileMeta(b) }

func (r *Repo) sign(name string) {
	rl := r.roles[name]
	if !rl.dirty {
		return
	}
	if !rl.pinnedVersion {
		rl.version++
	}
	rl.dirty, rl.pinnedVersion = false, false

	var msg, body []byte
	if rl.rawSigned != nil {
		body = rl.rawSigned
		msg = body
		var m interface{}
		if json.Unmarshal(body, &m) == nil {
			if c, err := cjson.EncodeCanonical(m); err == nil {
				msg = c
			}
		}
	} else {
		signed := r.signedObject(rl)
		for _, f := range rl.mutateSigned {
			f(signed)
		}
		var err error
		msg, err = cjson.EncodeCanonical(signed)
		if err != nil {
			r.t.Fatalf("tuftest: canonicalize %s: %v", name, err)
		}
		body = msg
	}
	signers := rl.keys
	if rl.signWith != nil {
		signers = rl.signWith
	} else if name == Root {
		// A rotated root carries signatures of the previous root keys too.
		signers = append(slices.Clone(rl.keys), r.prevRoot...)
	}
	sigs := make([]Signature, 0, len(signers))
	for _, k := range signers {
		if rl.signFunc != nil {
			sigs = append(sigs, rl.signFunc(k, msg))
		} else {
			sigs = append(sigs, k.Sign(msg))
		}
	}
	file := Envelope(body, sigs)
	for _, f := range rl.mutateFile {
		file = f(file)
	}
	r.files[name+".json"] = file
	if name == Root {
		r.rootHistory[rl.version] = file
		r.prevRoot = nil
	}
}

// Envelope wraps canonical signed bytes and signatures into notary's file form:
// {"signed":<bytes as given>,"signatures":[...]}.
func Envelope(signed []byte, sigs []Signature) []byte {
	b, err := notaryserve.Envelope(signed, sigs)
	if err != nil {
		panic("tuftest: " + err.Error())
	}
	return b
}

func expires(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func keyIDs(keys []*Key) []interface{} {
	ids := make([]interface{}, 0, len(keys))
	for _, k := range keys {
		ids = append(ids, k.ID())
	}
	return ids
}

func (r *Repo) signedObject(rl *role) map[string]interface{} {
	switch rl.name {
	case Root:
		keys := map[string]interface{}{}
		for _, k := range r.oldRootKeys {
			keys[k.ID()] = k.JSON()
		}
		roles := map[string]interface{}{}
		for _, name := range []string{Root, Targets, Snapshot, Timestamp} {
			b := r.roles[name]
			for _, k := range b.keys {
				keys[k.ID()] = k.JSON()
			}
			roles[name] = map[string]interface{}{"keyids": keyIDs(b.keys), "threshold": int64(b.threshold)}
		}
		return map[string]interface{}{
			"_type": "Root", "consistent_snapshot": false, "expires": expires(rl.expires),
			"keys": keys, "roles": roles, "version": int64(rl.version),
		}
	case Snapshot:
		meta := map[string]interface{}{}
		for _, name := range append([]string{Root, Targets}, r.delegations...) {
			if !r.roles[name].omit {
				meta[name] = fileMeta(r.files[name+".json"])
			}
		}
		return map[string]interface{}{"_type": "Snapshot", "expires": expires(rl.expires), "meta": meta, "version": int64(rl.version)}
	case Timestamp:
		meta := map[string]interface{}{Snapshot: fileMeta(r.files["snapshot.json"])}
		return map[string]interface{}{"_type": "Timestamp", "expires": expires(rl.expires), "meta": meta, "version": int64(rl.version)}
	}
	keys := map[string]interface{}{}
	roles := []interface{}{}
	for _, name := range r.delegations {
		if path.Dir(name) != rl.name {
			continue
		}
		d := r.roles[name]
		for _, k := range d.keys {
			keys[k.ID()] = k.JSON()
		}
		paths := make([]interface{}, 0, len(d.paths))
		for _, p := range d.paths {
			paths = append(paths, p)
		}
		roles = append(roles, map[string]interface{}{
			"name": name, "keyids": keyIDs(d.keys), "threshold": int64(d.threshold), "paths": paths,
		})
	}
	targets := map[string]interface{}{}
	for tag, m := range rl.targets {
		targets[tag] = m
	}
	return map[string]interface{}{
		"_type":       "Targets",
		"delegations": map[string]interface{}{"keys": keys, "roles": roles},
		"expires":     expires(rl.expires),
		"targets":     targets,
		"version":     int64(rl.version),
	}
}

// Canonical returns the canonical JSON of the "signed" object of a metadata file, the bytes
// its signatures are over, decoding into a map as notary's verifier does.
func Canonical(file []byte) ([]byte, error) {
	var f struct {
		Signed json.RawMessage `json:"signed"`
	}
	if err := json.Unmarshal(file, &f); err != nil {
		return nil, err
	}
	var m interface{}
	if err := json.Unmarshal(f.Signed, &m); err != nil {
		return nil, err
	}
	return cjson.EncodeCanonical(m)
}

// EditJSON decodes a metadata file, lets f change it, and re-encodes it with encoding/json
// (not canonical, keys sorted): for tests that tamper with files after signing.
func EditJSON(t testing.TB, file []byte, f func(m map[string]interface{})) []byte {
	t.Helper()
	var m map[string]interface{}
	if err := json.Unmarshal(file, &m); err != nil {
		t.Fatalf("tuftest: EditJSON: %v", err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("tuftest: EditJSON: %v", err)
	}
	return b
}
