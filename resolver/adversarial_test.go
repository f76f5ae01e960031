package resolver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/resolver"
)

// The adversarial suite serves attacker-shaped trust data (made by tuftest, or real
// notary-made fixtures altered byte by byte) and requires the resolver to refuse it with the
// error kind a caller branches on. Where notary's own behaviour decides the kind, the comment
// on the case cites it (notary v0.7.0, see /work/shared/research/notary.md).

const advGUN = "example.com/team/app"

func advKey(t *testing.T) *tuftest.Key { return tuftest.NewKey(t, tuftest.ECDSA) }

// advBasic signs "v1" in targets and "v2" in targets/releases, both of which resolve.
func advBasic(t *testing.T, r *tuftest.Repo) (v1, v2 string) {
	v1 = r.AddTarget("targets", "v1", []byte("manifest v1"))
	r.AddDelegation("targets/releases", []*tuftest.Key{advKey(t)}, nil, 1)
	v2 = r.AddTarget("targets/releases", "v2", []byte("manifest v2"))
	return v1, v2
}

func advClient(t *testing.T, url string, mod ...func(*resolver.Config)) *resolver.Client {
	t.Helper()
	cfg := resolver.Config{ServerURL: url}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := resolver.NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

// lookup runs one Update and Lookup with a deadline, so a resolver that hangs on an endless
// body fails the test instead of the run.
func lookup(t *testing.T, c *resolver.Client, gun, tag string) (resolver.Target, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := c.Update(ctx, gun)
	if err != nil {
		if ctx.Err() != nil {
			t.Fatalf("Update did not return before the deadline: %v", err)
		}
		return resolver.Target{}, err
	}
	return st.Lookup(tag, resolver.DefaultRoles)
}

// wantErr requires err to be one of the kinds in want and, unless ErrTagNotSigned or
// ErrNoTrustData is wanted, to not look like "unsigned" (which would turn an attack into a 404).
func wantErr(t *testing.T, err error, want ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("resolved, want one of %v", want)
	}
	t.Logf("refused: %v", err)
	for _, w := range want {
		if errors.Is(err, w) {
			if w != resolver.ErrTagNotSigned && w != resolver.ErrNoTrustData && resolver.IsNotSigned(err) {
				t.Fatalf("error %q is both %v and 'not signed'", err, w)
			}
			return
		}
	}
	t.Fatalf("error %q (%T), want one of %v", err, err, want)
}

func past() time.Time { return time.Now().Add(-time.Hour) }

// TestAdversarialGenerated covers attacks on freshly signed metadata (valid against the real
// clock), one repository state per case, first contact (TOFU) unless pinned.
func TestAdversarialGenerated(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []tuftest.Option
		// setup alters the repository before publishing; files alters the published bytes.
		setup func(t *testing.T, r *tuftest.Repo)
		files func(t *testing.T, f map[string][]byte)
		serve func(t *testing.T, s *tuftest.Server)
		cfg   func(r *tuftest.Repo) func(*resolver.Config)
		tag   string
		want  []error
	}{
		{name: "flipped digest in targets", tag: "v1", want: []error{resolver.ErrChecksum},
			files: func(t *testing.T, f map[string][]byte) {
				f["targets.json"] = flipFirst(t, f["targets.json"], `"sha256":"`)
			}},
		{name: "flipped digest in targets/releases", tag: "v2", want: []error{resolver.ErrChecksum},
			files: func(t *testing.T, f map[string][]byte) {
				f["targets/releases.json"] = flipFirst(t, f["targets/releases.json"], `"sha256":"`)
			}},
		{name: "targets re-indented", tag: "v1", want: []error{resolver.ErrChecksum},
			// Longer than snapshot lists: refused on Content-Length before hashing (notary:
			// ErrMaliciousServer); a length the signed snapshot contradicts is ErrChecksum.
			files: func(t *testing.T, f map[string][]byte) {
				var b bytes.Buffer
				if err := json.Indent(&b, f["targets.json"], "", " "); err != nil {
					t.Fatal(err)
				}
				f["targets.json"] = b.Bytes()
			}},
		{name: "targets re-ordered keys", tag: "v1", want: []error{resolver.ErrChecksum},
			files: func(t *testing.T, f map[string][]byte) {
				// encoding/json sorts "signatures" before "signed".
				f["targets.json"] = tuftest.EditJSON(t, f["targets.json"], func(map[string]interface{}) {})
			}},
		{name: "tampered targets re-hashed into snapshot", tag: "v1", want: []error{resolver.ErrThreshold},
			// Snapshot and timestamp vouch for the tampered bytes; only the targets signature
			// (now over different canonical bytes) can catch it. notary: ErrRoleThreshold.
			setup: func(t *testing.T, r *tuftest.Repo) {
				r.MutateFile("targets", func(b []byte) []byte {
					return bytes.Replace(b, []byte(`"length":11`), []byte(`"length":12`), 1)
				})
			}},
		{name: "targets signed by an unlisted key", tag: "v1", want: []error{resolver.ErrThreshold},
			setup: func(t *testing.T, r *tuftest.Repo) { r.SignWith("targets", advKey(t)) }},
		{name: "signature claims a listed key ID, made by another key", tag: "v1", want: []error{resolver.ErrThreshold},
			setup: func(t *testing.T, r *tuftest.Repo) {
				listed := r.Keys("targets")[0]
				other := advKey(t)
				r.SignFunc("targets", func(_ *tuftest.Key, msg []byte) tuftest.Signature {
					s := other.Sign(msg)
					s.KeyID = listed.ID()
					return s
				})
			}},
		{name: "timestamp signed by the snapshot key", tag: "v1", want: []error{resolver.ErrThreshold},
			setup: func(t *testing.T, r *tuftest.Repo) { r.SignWith("timestamp", r.Keys("snapshot")...) }},
		{name: "targets threshold 2 with one signature", tag: "v1", want: []error{resolver.ErrThreshold},
			setup: func(t *testing.T, r *tuftest.Repo) {
				k := r.Keys("targets")[0]
				r.SetKeys("targets", k, advKey(t))
				r.SetThreshold("targets", 2)
				r.SignWith("targets", k)
			}},
		{name: "duplicate signatures by one key count once", tag: "v1", want: []error{resolver.ErrThreshold},
			setup: func(t *testing.T, r *tuftest.Repo) {
				k := r.Keys("targets")[0]
				r.SetKeys("targets", k, advKey(t))
				r.SetThreshold("targets", 2)
				r.SignWith("targets", k, k)
			}},
		{name: "root threshold 2 with one signature", tag: "v1", want: []error{resolver.ErrThreshold},
			opts:  []tuftest.Option{tuftest.WithRootKeys(2, 2)},
			setup: func(t *testing.T, r *tuftest.Repo) { r.SignWith("root", r.Keys("root")[0]) }},
		{name: "ecdsa signature in ASN.1 DER", tag: "v1", want: []error{resolver.ErrThreshold},
			// notary's ecdsa verifier requires raw r||s of exactly 64 bytes; the signature does
			// not count (ErrRoleThreshold).
			setup: func(t *testing.T, r *tuftest.Repo) { r.SignFunc("targets", (*tuftest.Key).SignASN1) }},
		{name: "unknown signature method", tag: "v1", want: []error{resolver.ErrThreshold},
			// notary skips a signature whose method has no verifier (ErrRoleThreshold).
			setup: func(t *testing.T, r *tuftest.Repo) {
				r.SignFunc("snapshot", func(k *tuftest.Key, msg []byte) tuftest.Signature {
					s := k.Sign(msg)
					s.Method = "hmac-sha256"
					return s
				})
			}},
		{name: "expired timestamp", tag: "v1", want: []error{resolver.ErrExpired},
			setup: func(t *testing.T, r *tuftest.Repo) { r.SetExpiry("timestamp", past()) }},
		{name: "expired snapshot", tag: "v1", want: []error{resolver.ErrExpired},
			setup: func(t *testing.T, r *tuftest.Repo) { r.SetExpiry("snapshot", past()) }},
		{name: "expired targets", tag: "v2", want: []error{resolver.ErrExpired},
			setup: func(t *testing.T, r *tuftest.Repo) { r.SetExpiry("targets", past()) }},
		{name: "expired root", tag: "v1", want: []error{resolver.ErrExpired},
			setup: func(t *testing.T, r *tuftest.Repo) { r.SetExpiry("root", past()) }},
		{name: "expired root certificate", tag: "v1", want: []error{resolver.ErrExpired},
			opts: []tuftest.Option{tuftest.WithRootCertValidity(time.Now().AddDate(-2, 0, 0), past())}},
		{name: "root certificate CN is another GUN", tag: "v1", want: []error{resolver.ErrInvalid},
			// notary: ErrValidationFail "unable to retrieve valid leaf certificates".
			opts: []tuftest.Option{tuftest.WithRootCN("example.com/team/other")}},
		{name: "root key is not a certificate", tag: "v1", want: []error{resolver.ErrInvalid},
			setup: func(t *testing.T, r *tuftest.Repo) { r.SetKeys("root", advKey(t)) }},
		{name: "pinned to another certificate", tag: "v1", want: []error{resolver.ErrPinMismatch},
			cfg: func(r *tuftest.Repo) func(*resolver.Config) {
				return func(c *resolver.Config) {
					c.Pinning.Certs = map[string][]string{advGUN: {strings.Repeat("ab", 32)}}
				}
			}},
		{name: "pinned to a CA the root certificate does not chain to", tag: "v1", want: []error{resolver.ErrPinMismatch},
			cfg: func(r *tuftest.Repo) func(*resolver.Config) {
				return func(c *resolver.Config) {
					ca := tuftest.NewCA(t, "other CA", past(), time.Now().AddDate(1, 0, 0))
					c.Pinning.CA = map[string]string{"example.com/": string(ca.PEM)}
				}
			}},
		{name: "TOFU disabled and no pin applies", tag: "v1", want: []error{resolver.ErrPinMismatch},
			cfg: func(r *tuftest.Repo) func(*resolver.Config) {
				return func(c *resolver.Config) { c.Pinning.DisableTOFU = true }
			}},
		{name: "tag outside the delegation's paths", tag: "x2", want: []error{resolver.ErrTagNotSigned},
			// notary: plain prefix match of the tag against the delegation's paths.
			setup: func(t *testing.T, r *tuftest.Repo) {
				r.SetPaths("targets/releases", "v", "y")
				r.AddTarget("targets/releases", "x2", []byte("x2"))
			}},
		{name: "tag only in another delegation", tag: "v9", want: []error{resolver.ErrTagNotSigned},
			setup: func(t *testing.T, r *tuftest.Repo) {
				r.AddDelegation("targets/alice", []*tuftest.Key{advKey(t)}, nil, 1)
				r.AddTarget("targets/alice", "v9", []byte("v9"))
			}},
		{name: "delegation expired is skipped", tag: "v2", want: []error{resolver.ErrTagNotSigned},
			setup: func(t *testing.T, r *tuftest.Repo) { r.SetExpiry("targets/releases", past()) }},
		{name: "delegation under threshold is skipped", tag: "v2", want: []error{resolver.ErrTagNotSigned},
			setup: func(t *testing.T, r *tuftest.Repo) { r.SetThreshold("targets/releases", 2) }},
		{name: "delegation signed by an unlisted key is skipped", tag: "v2", want: []error{resolver.ErrTagNotSigned},
			setup: func(t *testing.T, r *tuftest.Repo) { r.SignWith("targets/releases", advKey(t)) }},
		{name: "delegation missing from snapshot is skipped", tag: "v2", want: []error{resolver.ErrTagNotSigned},
			setup: func(t *testing.T, r *tuftest.Repo) { r.OmitFromSnapshot("targets/releases") }},
		{name: "malformed JSON", tag: "v1", want: []error{resolver.ErrInvalid},
			files: func(t *testing.T, f map[string][]byte) {
				f["timestamp.json"] = f["timestamp.json"][:len(f["timestamp.json"])-3]
			}},
		{name: "malformed base64 signature", tag: "v1", want: []error{resolver.ErrInvalid},
			files: func(t *testing.T, f map[string][]byte) {
				f["timestamp.json"] = tuftest.EditJSON(t, f["timestamp.json"], func(m map[string]interface{}) {
					m["signatures"].([]interface{})[0].(map[string]interface{})["sig"] = "!!not base64"
				})
			}},
		{name: "malformed key material", tag: "v1", want: []error{resolver.ErrInvalid},
			setup: func(t *testing.T, r *tuftest.Repo) {
				r.MutateSigned("root", func(s map[string]interface{}) {
					id := r.Keys("timestamp")[0].ID()
					k := s["keys"].(map[string]interface{})[id].(map[string]interface{})
					k["keyval"].(map[string]interface{})["public"] = "bm90IGEga2V5"
				})
			}},
		{name: "root lists a key ID without a key", tag: "v1", want: []error{resolver.ErrInvalid},
			setup: func(t *testing.T, r *tuftest.Repo) {
				r.MutateSigned("root", func(s map[string]interface{}) {
					ts := s["roles"].(map[string]interface{})["timestamp"].(map[string]interface{})
					ts["keyids"] = append(ts["keyids"].([]interface{}), strings.Repeat("ab", 32))
				})
			}},
		{name: "threshold 0", tag: "v1", want: []error{resolver.ErrInvalid},
			setup: func(t *testing.T, r *tuftest.Repo) {
				r.MutateSigned("root", func(s map[string]interface{}) {
					s["roles"].(map[string]interface{})["targets"].(map[string]interface{})["threshold"] = int64(0)
				})
			}},
		{name: "wrong _type", tag: "v1", want: []error{resolver.ErrInvalid},
			setup: func(t *testing.T, r *tuftest.Repo) {
				r.MutateSigned("targets", func(s map[string]interface{}) { s["_type"] = "Snapshot" })
			}},
		{name: "delegation that is not a direct child", tag: "v1", want: []error{resolver.ErrInvalid},
			setup: func(t *testing.T, r *tuftest.Repo) {
				r.MutateSigned("targets", func(s map[string]interface{}) {
					roles := s["delegations"].(map[string]interface{})["roles"].([]interface{})
					roles[0].(map[string]interface{})["name"] = "targets/releases/deep"
				})
			}},
		{name: "target hash is not 32 bytes", tag: "v1", want: []error{resolver.ErrInvalid},
			setup: func(t *testing.T, r *tuftest.Repo) {
				r.SetTargetMeta("targets", "v1", map[string]interface{}{"length": int64(3),
					"hashes": map[string]interface{}{"sha256": "AAAA"}})
			}},
		{name: "timestamp over 1 MiB", tag: "v1", want: []error{resolver.ErrInvalid},
			// notary: Content-Length over MaxTimestampSize → ErrMaliciousServer.
			files: func(t *testing.T, f map[string][]byte) {
				f["timestamp.json"] = append(f["timestamp.json"], bytes.Repeat([]byte(" "), 1<<20)...)
			}},
		{name: "timestamp body never ends", tag: "v1", want: []error{resolver.ErrInvalid},
			// Read through a 1 MiB limit, the truncated JSON does not parse (as in notary).
			serve: func(t *testing.T, s *tuftest.Server) {
				s.Override(advGUN, "timestamp.json", tuftest.Response{Endless: true, Body: []byte(`{"signed":{"_type":"Timestamp","x":"` + strings.Repeat("a", 1<<16))})
			}},
		{name: "snapshot longer than its listed length", tag: "v1", want: []error{resolver.ErrChecksum},
			files: func(t *testing.T, f map[string][]byte) {
				f["snapshot.json"] = append(f["snapshot.json"], bytes.Repeat([]byte(" "), 4<<20)...)
			}},
		{name: "Content-Length larger than the body", tag: "v1", want: []error{resolver.ErrUnavailable},
			serve: func(t *testing.T, s *tuftest.Server) {
				s.Override(advGUN, "timestamp.json", tuftest.Response{Body: []byte(`{"signed":`), ContentLength: 500})
			}},
		{name: "root.json body never ends", tag: "v1", want: []error{resolver.ErrInvalid, resolver.ErrUnavailable},
			// No checksum is known at bootstrap; notary caps root at MaxDownloadSize (100 MiB).
			serve: func(t *testing.T, s *tuftest.Server) {
				s.Override(advGUN, "root.json", tuftest.Response{Endless: true, Body: []byte(`{"signed":{"_type":"Root","x":"` + strings.Repeat("a", 1<<16))})
			}},
		{name: "timestamp redirects to itself", tag: "v1", want: []error{resolver.ErrUnavailable},
			serve: func(t *testing.T, s *tuftest.Server) {
				s.Override(advGUN, "timestamp.json", tuftest.Response{Handler: func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, r.URL.Path, http.StatusFound)
				}})
			}},
		{name: "timestamp 401 without a challenge", tag: "v1", want: []error{resolver.ErrUnavailable},
			serve: func(t *testing.T, s *tuftest.Server) {
				s.Override(advGUN, "timestamp.json", tuftest.Response{Status: 401, Body: []byte(`{"errors":[{"code":"UNAUTHORIZED"}]}`)})
			}},
		{name: "timestamp is an HTML error page with 200", tag: "v1", want: []error{resolver.ErrInvalid},
			serve: func(t *testing.T, s *tuftest.Server) {
				s.Override(advGUN, "timestamp.json", tuftest.Response{Body: []byte("<html><body>Service Unavailable</body></html>")})
			}},
		{name: "timestamp 500", tag: "v1", want: []error{resolver.ErrUnavailable},
			serve: func(t *testing.T, s *tuftest.Server) {
				s.Override(advGUN, "timestamp.json", tuftest.Response{Status: 500, Body: []byte("oops")})
			}},
		{name: "timestamp 404", tag: "v1", want: []error{resolver.ErrUnavailable},
			files: func(t *testing.T, f map[string][]byte) { delete(f, "timestamp.json") }},
		{name: "root 404", tag: "v1", want: []error{resolver.ErrNoTrustData},
			files: func(t *testing.T, f map[string][]byte) { delete(f, "root.json") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tuftest.NewRepo(t, advGUN, tc.opts...)
			advBasic(t, r)
			if tc.setup != nil {
				tc.setup(t, r)
			}
			files := r.Publish()
			if tc.files != nil {
				tc.files(t, files)
			}
			srv := tuftest.Serve(t, advGUN, files)
			if tc.serve != nil {
				tc.serve(t, srv)
			}
			var mods []func(*resolver.Config)
			if tc.cfg != nil {
				mods = append(mods, tc.cfg(r))
			}
			_, err := lookup(t, advClient(t, srv.URL, mods...), advGUN, tc.tag)
			wantErr(t, err, tc.want...)
		})
	}
}

// TestAdversarialControl is the control for the suite: the untouched repository resolves, so
// every refusal above is caused by its alteration.
func TestAdversarialControl(t *testing.T) {
	r := tuftest.NewRepo(t, advGUN)
	v1, v2 := advBasic(t, r)
	r.AddDelegation("targets/alice", []*tuftest.Key{advKey(t)}, []string{"v"}, 1)
	srv := tuftest.Serve(t, advGUN, r.Publish())
	c := advClient(t, srv.URL, func(c *resolver.Config) {
		c.Pinning = resolver.TrustPinning{Certs: map[string][]string{advGUN: r.RootKeyIDs()}, DisableTOFU: true}
	})
	for tag, want := range map[string]struct{ digest, role string }{"v1": {v1, "targets"}, "v2": {v2, "targets/releases"}} {
		got, err := lookup(t, c, advGUN, tag)
		if err != nil || got.Digest.String() != want.digest || got.Role != want.role {
			t.Errorf("%s: %+v, %v; want %s from %s", tag, got, err, want.digest, want.role)
		}
	}
}

// TestAdversarialAfterPull covers attacks on a client that already trusts the repository:
// rollback, mix-and-match and root rotation need remembered state.
func TestAdversarialAfterPull(t *testing.T) {
	for _, tc := range []struct {
		name string
		// then changes the server after the first successful pull; pull makes the client
		// under test pull again mid-scenario (and requires success).
		then func(t *testing.T, r *tuftest.Repo, s *tuftest.Server, pull func(tag string))
		tag  string
		want []error // nil: must resolve to the digest then returns via wantDigest
	}{
		{name: "replay of an older timestamp", tag: "v1", want: []error{resolver.ErrRollback},
			then: func(t *testing.T, r *tuftest.Repo, s *tuftest.Server, pull func(tag string)) {
				old := s.Files(advGUN)
				r.AddTarget("targets", "v3", []byte("v3"))
				s.Set(advGUN, r.Publish())
				pull("v3") // the client learns the newer timestamp
				s.Set(advGUN, old)
			}},
		{name: "lower targets version under a newer timestamp", tag: "v1", want: []error{resolver.ErrRollback},
			then: func(t *testing.T, r *tuftest.Repo, s *tuftest.Server, pull func(tag string)) {
				r.SetVersion("targets", 5)
				s.Set(advGUN, r.Publish())
				pull("v1") // the client learns targets version 5
				r.SetVersion("targets", 4)
				s.Set(advGUN, r.Publish())
			}},
		{name: "old snapshot under a new timestamp", tag: "v1", want: []error{resolver.ErrChecksum},
			then: func(t *testing.T, r *tuftest.Repo, s *tuftest.Server, pull func(tag string)) {
				oldSnap := s.Files(advGUN)["snapshot.json"]
				r.AddTarget("targets", "v1", []byte("v1 new"))
				files := r.Publish()
				s.Set(advGUN, files)
				s.Override(advGUN, "snapshot."+tuftest.SHA256Hex(files["snapshot.json"])+".json", tuftest.Response{Body: oldSnap})
			}},
		{name: "new root not signed by the trusted root key", tag: "v1", want: []error{resolver.ErrThreshold},
			then: func(t *testing.T, r *tuftest.Repo, s *tuftest.Server, pull func(tag string)) {
				k := tuftest.NewCertKey(t, tuftest.ECDSA, advGUN, past(), time.Now().AddDate(1, 0, 0))
				r.RotateRoot(k)
				r.SignWith("root", k)
				r.AddTarget("targets", "v1", []byte("attacker"))
				s.Set(advGUN, r.Publish())
			}},
		{name: "expired timestamp replaces a valid one", tag: "v1", want: []error{resolver.ErrExpired},
			then: func(t *testing.T, r *tuftest.Repo, s *tuftest.Server, pull func(tag string)) {
				r.SetExpiry("timestamp", past())
				s.Set(advGUN, r.Publish())
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tuftest.NewRepo(t, advGUN)
			advBasic(t, r)
			srv := tuftest.Serve(t, advGUN, r.Publish())
			c := advClient(t, srv.URL)
			if _, err := lookup(t, c, advGUN, "v1"); err != nil {
				t.Fatalf("first pull: %v", err)
			}
			tc.then(t, r, srv, func(tag string) {
				t.Helper()
				if _, err := lookup(t, c, advGUN, tag); err != nil {
					t.Fatalf("intermediate pull of %s: %v", tag, err)
				}
			})
			_, err := lookup(t, c, advGUN, tc.tag)
			wantErr(t, err, tc.want...)
		})
	}
}

// TestAdversarialLegitimateChanges: the other side of rollback protection — rotations, re-signed
// content and a trust server outage with a still-valid cached timestamp must keep working.
func TestAdversarialLegitimateChanges(t *testing.T) {
	r := tuftest.NewRepo(t, advGUN)
	advBasic(t, r)
	srv := tuftest.Serve(t, advGUN, r.Publish())
	c := advClient(t, srv.URL)
	if _, err := lookup(t, c, advGUN, "v1"); err != nil {
		t.Fatal(err)
	}
	r.RotateRoot()
	r.Publish()
	r.RotateRoot()
	want := r.AddTarget("targets", "v1", []byte("after two rotations"))
	srv.Set(advGUN, r.Publish())
	got, err := lookup(t, c, advGUN, "v1")
	if err != nil || got.Digest.String() != want {
		t.Fatalf("after root rotation: %+v, %v; want %s", got, err, want)
	}
	srv.Override(advGUN, "timestamp.json", tuftest.Response{Status: 503})
	got, err = lookup(t, c, advGUN, "v1")
	if err != nil || got.Digest.String() != want {
		t.Fatalf("trust server down, cached timestamp valid: %+v, %v", got, err)
	}
}

// --- real notary-made fixtures, altered ---

const fixtureGUN = "localhost:5000/test/app"

// fixtureNow is inside the fixtures' validity (their timestamp expires 2026-12-07).
func fixtureNow() time.Time { return time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC) }

func loadFixture(t *testing.T) map[string][]byte {
	t.Helper()
	return tuftest.LoadDir(t, filepath.Join("testdata", "adversarial", "delegations-and-rotations"))
}

func flipFirst(t *testing.T, b []byte, after string) []byte {
	t.Helper()
	i := bytes.Index(b, []byte(after))
	if i < 0 {
		t.Fatalf("no %q in file", after)
	}
	out := bytes.Clone(b)
	j := i + len(after)
	if out[j] == 'A' {
		out[j] = 'B'
	} else {
		out[j] = 'A'
	}
	return out
}

func TestAdversarialFixtures(t *testing.T) {
	for _, tc := range []struct {
		name  string
		gun   string
		now   time.Time
		files func(t *testing.T, f map[string][]byte)
		tag   string
		want  []error
	}{
		{name: "flipped digest in targets/releases", tag: "v3", want: []error{resolver.ErrChecksum},
			files: func(t *testing.T, f map[string][]byte) {
				f["targets/releases.json"] = flipFirst(t, f["targets/releases.json"], `"sha256":"`)
			}},
		{name: "envelope keys re-ordered in targets (same length)", tag: "v1", want: []error{resolver.ErrChecksum},
			files: func(t *testing.T, f map[string][]byte) {
				f["targets.json"] = tuftest.EditJSON(t, f["targets.json"], func(map[string]interface{}) {})
			}},
		{name: "whitespace in targets", tag: "v1", want: []error{resolver.ErrChecksum},
			files: func(t *testing.T, f map[string][]byte) {
				f["targets.json"] = bytes.Replace(f["targets.json"], []byte(`{"signed":{`), []byte(`{"signed": {`), 1)
			}},
		{name: "signature bit flipped in timestamp", tag: "v1", want: []error{resolver.ErrThreshold},
			files: func(t *testing.T, f map[string][]byte) {
				f["timestamp.json"] = flipFirst(t, f["timestamp.json"], `"sig":"`)
			}},
		{name: "wrong GUN", gun: "localhost:5000/test/other", tag: "v1", want: []error{resolver.ErrInvalid}},
		{name: "after the timestamp expired", now: time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC), tag: "v1", want: []error{resolver.ErrExpired}},
		{name: "tag only in targets/alice", tag: "v4", want: []error{resolver.ErrTagNotSigned}},
		{name: "snapshot replaced by another signed snapshot version", tag: "v1", want: []error{resolver.ErrChecksum},
			files: func(t *testing.T, f map[string][]byte) {
				f["snapshot.json"] = bytes.Replace(f["snapshot.json"], []byte(`"version":7`), []byte(`"version":8`), 1)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := loadFixture(t)
			if tc.files != nil {
				tc.files(t, files)
			}
			gun := fixtureGUN
			if tc.gun != "" {
				gun = tc.gun
			}
			srv := tuftest.Serve(t, gun, files)
			now := fixtureNow()
			if !tc.now.IsZero() {
				now = tc.now
			}
			c := advClient(t, srv.URL, func(c *resolver.Config) { c.Now = func() time.Time { return now } })
			_, err := lookup(t, c, gun, tc.tag)
			wantErr(t, err, tc.want...)
		})
	}

	// Control: the untouched fixture resolves v3 from targets/releases (not targets/alice).
	srv := tuftest.Serve(t, fixtureGUN, loadFixture(t))
	c := advClient(t, srv.URL, func(c *resolver.Config) { c.Now = fixtureNow })
	got, err := lookup(t, c, fixtureGUN, "v3")
	if err != nil || got.Role != "targets/releases" || got.Digest.String() != "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210" {
		t.Fatalf("control: %+v, %v", got, err)
	}
}

// TestAdversarialStalledServer: a trust server that accepts the request and never answers must
// not hold the caller past its context.
func TestAdversarialStalledServer(t *testing.T) {
	r := tuftest.NewRepo(t, advGUN)
	advBasic(t, r)
	srv := tuftest.Serve(t, advGUN, r.Publish())
	srv.Override(advGUN, "timestamp.json", tuftest.Response{Delay: time.Hour})
	c := advClient(t, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Update(ctx, advGUN)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || resolver.IsNotSigned(err) {
			t.Fatalf("stalled server: %v", err)
		}
		if !errors.Is(err, resolver.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("stalled server: %v, want ErrUnavailable or the context's error", err)
		}
		t.Logf("refused: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("Update ignored its context for a minute")
	}
}

// TestAdversarialEndlessGenuinePrefix: an endless body that starts with the genuine snapshot is
// read only up to the length the timestamp lists, as notary does, so it resolves (the bytes
// verified are exactly the signed ones) instead of hanging or failing.
func TestAdversarialEndlessGenuinePrefix(t *testing.T) {
	r := tuftest.NewRepo(t, advGUN)
	v1, _ := advBasic(t, r)
	files := r.Publish()
	srv := tuftest.Serve(t, advGUN, files)
	snap := files["snapshot.json"]
	srv.Override(advGUN, "snapshot."+tuftest.SHA256Hex(snap)+".json", tuftest.Response{Endless: true, Body: snap})
	got, err := lookup(t, advClient(t, srv.URL), advGUN, "v1")
	if err != nil || got.Digest.String() != v1 {
		t.Fatalf("%+v, %v; want %s", got, err, v1)
	}
}

// TestAdversarialConcurrentUpdates: lookups from many goroutines while the repository is
// re-published underneath them (run with -race). Old bytes stay reachable by checksum, as on
// notary-server, so every lookup must succeed with the unchanged digest of v1.
func TestAdversarialConcurrentUpdates(t *testing.T) {
	r := tuftest.NewRepo(t, advGUN)
	v1, _ := advBasic(t, r)
	srv := tuftest.Serve(t, advGUN, r.Publish())
	c := advClient(t, srv.URL)
	errs := make(chan error, 200)
	done := make(chan struct{})
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 20; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				st, err := c.Update(ctx, advGUN)
				cancel()
				if err == nil {
					var got resolver.Target
					got, err = st.Lookup("v1", resolver.DefaultRoles)
					if err == nil && got.Digest.String() != v1 {
						err = errors.New("v1 resolved to " + got.Digest.String())
					}
				}
				if err != nil {
					errs <- err
				}
			}
			done <- struct{}{}
		}()
	}
	for i := 0; i < 10; i++ {
		r.AddTarget("targets/releases", "n"+string(rune('a'+i)), []byte{byte(i)})
		srv.Set(advGUN, r.Publish())
	}
	for g := 0; g < 8; g++ {
		<-done
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestAdversarialFreeze: a server that keeps answering with the last valid metadata (or goes
// dark) cannot keep a client on it past the timestamp's expiry.
func TestAdversarialFreeze(t *testing.T) {
	start := time.Now()
	for _, tc := range []struct {
		name  string
		serve func(s *tuftest.Server)
		want  []error
	}{
		{name: "same metadata served after the timestamp expired", want: []error{resolver.ErrExpired}},
		{name: "server down after the cached timestamp expired", want: []error{resolver.ErrExpired, resolver.ErrUnavailable},
			serve: func(s *tuftest.Server) {
				s.Override(advGUN, "timestamp.json", tuftest.Response{Status: 503})
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := start
			r := tuftest.NewRepo(t, advGUN, tuftest.WithNow(func() time.Time { return start }))
			advBasic(t, r)
			srv := tuftest.Serve(t, advGUN, r.Publish())
			c := advClient(t, srv.URL, func(c *resolver.Config) { c.Now = func() time.Time { return now } })
			if _, err := lookup(t, c, advGUN, "v1"); err != nil {
				t.Fatalf("first pull: %v", err)
			}
			now = start.AddDate(0, 0, 15) // the timestamp lives 14 days
			if tc.serve != nil {
				tc.serve(srv)
			}
			_, err := lookup(t, c, advGUN, "v1")
			wantErr(t, err, tc.want...)
		})
	}
}
