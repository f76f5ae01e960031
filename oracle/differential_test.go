package oracle_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/oracle"
	"github.com/trustgate/trustgate/resolver"
)

const gun = "example.com/team/app"

// verdict is what a docker client (or trustgate) makes of gun:tag: accept at a digest, "not
// signed" (404 in trustgate), or "trust failed" (503).
type verdict struct {
	class  string // "accept", "unsigned", "fail"
	digest string
	detail string
}

func (v verdict) String() string {
	if v.class == "accept" {
		return "accept " + v.digest
	}
	return v.class + " (" + v.detail + ")"
}

func oracleVerdict(r oracle.Result) verdict {
	switch {
	case r.Accepted:
		return verdict{class: "accept", digest: r.Digest}
	case r.NotSigned || r.NoTrustData:
		return verdict{class: "unsigned", detail: fmt.Sprint(r.Err)}
	}
	return verdict{class: "fail", detail: fmt.Sprint(r.Err)}
}

func resolverVerdict(ctx context.Context, c *resolver.Client, gun, tag string) verdict {
	st, err := c.Update(ctx, gun)
	var target resolver.Target
	if err == nil {
		target, err = st.Lookup(tag, resolver.DefaultRoles)
	}
	switch {
	case err == nil:
		return verdict{class: "accept", digest: target.Digest.String()}
	case resolver.IsNotSigned(err):
		return verdict{class: "unsigned", detail: err.Error()}
	}
	return verdict{class: "fail", detail: err.Error()}
}

// diffCase is one repository state both sides judge. setup publishes it; when then is set,
// both sides first resolve tags[0] successfully (so both cache trusted state, as a client
// that pulled before), then then changes the server, and the judgement happens after that.
type diffCase struct {
	name  string
	gun   string // default gun
	tags  []string
	pin   oracle.Pinning
	setup func(t *testing.T, r *tuftest.Repo) map[string][]byte
	opts  []tuftest.Option
	// pull makes both sides pull tag mid-scenario and requires both to accept it.
	then func(t *testing.T, r *tuftest.Repo, srv *tuftest.Server, gun string, pull func(tag string))
	// serve alters the server's answers before anything is resolved.
	serve func(t *testing.T, s *tuftest.Server, gun string)
	// classDiffers, when set, explains a known, justified difference in the kind of refusal
	// (unsigned vs failed); both sides must still refuse.
	classDiffers string
	// pinning, when set, runs before the repository exists: it returns extra repository options
	// (e.g. a CA-issued root key) and the trust pinning for the finished repository.
	pinning func(t *testing.T) ([]tuftest.Option, func(r *tuftest.Repo) oracle.Pinning)
}

func key(t *testing.T) *tuftest.Key { return tuftest.NewKey(t, tuftest.ECDSA) }

func publishWith(f func(t *testing.T, r *tuftest.Repo)) func(t *testing.T, r *tuftest.Repo) map[string][]byte {
	return func(t *testing.T, r *tuftest.Repo) map[string][]byte {
		f(t, r)
		return r.Publish()
	}
}

// basic signs v1 in targets and v2 in targets/releases.
func basic(t *testing.T, r *tuftest.Repo) {
	r.AddTarget("targets", "v1", []byte("manifest v1"))
	r.AddDelegation("targets/releases", []*tuftest.Key{key(t)}, nil, 1)
	r.AddTarget("targets/releases", "v2", []byte("manifest v2"))
}

// edit re-encodes a file after signing (keys sorted, no whitespace changes) with f applied.
func edit(t *testing.T, files map[string][]byte, name string, f func(m map[string]interface{})) {
	files[name] = tuftest.EditJSON(t, files[name], f)
}

func signedOf(m map[string]interface{}) map[string]interface{} {
	return m["signed"].(map[string]interface{})
}

func sigsOf(m map[string]interface{}) []interface{} { return m["signatures"].([]interface{}) }

func past() time.Time { return time.Now().Add(-time.Hour) }

func diffCases() []diffCase {
	return []diffCase{
		// --- real notary-made fixtures ---
		{name: "fixture delegations-and-rotations", gun: "localhost:5000/test/app",
			tags: []string{"v1", "v2", "v3", "v4", "v5"},
			setup: func(t *testing.T, _ *tuftest.Repo) map[string][]byte {
				return tuftest.LoadDir(t, "testdata/delegations-and-rotations")
			}},
		{name: "fixture rsa-root", gun: "docker.io/library/alpine", tags: []string{"latest", "nope"},
			setup: func(t *testing.T, _ *tuftest.Repo) map[string][]byte {
				return tuftest.LoadDir(t, "testdata/rsa-root")
			}},
		{name: "fixture: first contact with root v2, rotate through the real chain", gun: "localhost:5000/test/app",
			tags: []string{"v1", "v3"},
			setup: func(t *testing.T, _ *tuftest.Repo) map[string][]byte {
				f := tuftest.LoadDir(t, "testdata/delegations-and-rotations")
				f["root.json"] = f["2.root.json"]
				return f
			}},
		{name: "fixture: first contact with root v3, chain file 4 missing", gun: "localhost:5000/test/app",
			tags:         []string{"v1"},
			classDiffers: "notary: repository does not exist (404 on 4.root.json); trustgate: root rotation failure",
			setup: func(t *testing.T, _ *tuftest.Repo) map[string][]byte {
				f := tuftest.LoadDir(t, "testdata/delegations-and-rotations")
				f["root.json"] = f["3.root.json"]
				delete(f, "4.root.json")
				return f
			}},
		{name: "fixture flipped digest in targets/releases", gun: "localhost:5000/test/app", tags: []string{"v3", "v1"},
			setup: func(t *testing.T, _ *tuftest.Repo) map[string][]byte {
				f := tuftest.LoadDir(t, "testdata/delegations-and-rotations")
				f["targets/releases.json"] = bytes.Replace(f["targets/releases.json"], []byte(`"/ty6`), []byte(`"/tz6`), 1)
				return f
			}},
		{name: "fixture wrong GUN", gun: "localhost:5000/test/other", tags: []string{"v1"},
			setup: func(t *testing.T, _ *tuftest.Repo) map[string][]byte {
				return tuftest.LoadDir(t, "testdata/delegations-and-rotations")
			}},
		{name: "fixture re-serialized targets", gun: "localhost:5000/test/app", tags: []string{"v1"},
			setup: func(t *testing.T, _ *tuftest.Repo) map[string][]byte {
				f := tuftest.LoadDir(t, "testdata/delegations-and-rotations")
				f["targets.json"] = tuftest.EditJSON(t, f["targets.json"], func(map[string]interface{}) {})
				return f
			}},

		// --- valid generated repositories ---
		{name: "ecdsa basic", tags: []string{"v1", "v2", "v3"}, setup: publishWith(basic)},
		{name: "rsa root, ed25519 keys", tags: []string{"v1", "v2"}, setup: publishWith(basic),
			opts: []tuftest.Option{tuftest.WithRSARoot(), tuftest.WithKeyAlg(tuftest.Ed25519)}},
		{name: "releases wins over targets", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.AddTarget("targets/releases", "v1", []byte("other"))
		})},
		{name: "tag only in another delegation", tags: []string{"v9", "v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.AddDelegation("targets/alice", []*tuftest.Key{key(t)}, nil, 1)
			r.AddTarget("targets/alice", "v9", []byte("alice"))
			r.AddTarget("targets/alice", "v1", []byte("alice v1"))
		})},
		{name: "tag in nested delegation only", tags: []string{"v8"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.AddDelegation("targets/releases/bob", []*tuftest.Key{key(t)}, nil, 1)
			r.AddTarget("targets/releases/bob", "v8", []byte("bob"))
		})},
		{name: "tag in nested delegation and in targets", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.AddDelegation("targets/releases/bob", []*tuftest.Key{key(t)}, nil, 1)
			r.AddTarget("targets/releases/bob", "v1", []byte("bob"))
		})},
		{name: "delegation paths prefix", tags: []string{"v2", "x2"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			r.AddTarget("targets", "x2", []byte("top x2"))
			r.AddDelegation("targets/releases", []*tuftest.Key{key(t)}, []string{"v"}, 1)
			r.AddTarget("targets/releases", "v2", []byte("v2"))
			r.AddTarget("targets/releases", "x2", []byte("outside paths"))
		})},
		{name: "delegation threshold 2 of 2 keys", tags: []string{"v2"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			r.AddDelegation("targets/releases", []*tuftest.Key{key(t), tuftest.NewKey(t, tuftest.Ed25519)}, nil, 2)
			r.AddTarget("targets/releases", "v2", []byte("v2"))
		})},
		{name: "two root keys threshold 2", tags: []string{"v1"}, setup: publishWith(basic),
			opts: []tuftest.Option{tuftest.WithRootKeys(2, 2)}},
		{name: "expires with offset and nanoseconds", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.MutateSigned("targets", func(s map[string]interface{}) {
				s["expires"] = time.Now().AddDate(1, 0, 0).In(time.FixedZone("", 2*3600)).Format(time.RFC3339Nano)
			})
		})},
		{name: "special characters in tag", tags: []string{"a<b>&c\u2028"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			r.AddTarget("targets", "a<b>&c\u2028", []byte("x"))
		})},

		// --- delegations that are skipped, not fatal ---
		{name: "delegation under threshold", tags: []string{"v2", "v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.AddTarget("targets", "v2", []byte("top v2"))
			r.SetThreshold("targets/releases", 2)
		})},
		{name: "delegation expired", tags: []string{"v2", "v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SetExpiry("targets/releases", past())
		})},
		{name: "delegation not in snapshot", tags: []string{"v2", "v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.OmitFromSnapshot("targets/releases")
		})},
		{name: "delegation signed by unlisted key", tags: []string{"v2", "v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SignWith("targets/releases", key(t))
		})},
		{name: "delegation file missing on server", tags: []string{"v2", "v1"}, setup: func(t *testing.T, r *tuftest.Repo) map[string][]byte {
			basic(t, r)
			f := r.Publish()
			delete(f, "targets/releases.json")
			return f
		}},

		// --- fatal failures ---
		{name: "flipped digest in targets", tags: []string{"v1"}, setup: func(t *testing.T, r *tuftest.Repo) map[string][]byte {
			basic(t, r)
			f := r.Publish()
			edit(t, f, "targets.json", func(m map[string]interface{}) {
				tg := signedOf(m)["targets"].(map[string]interface{})["v1"].(map[string]interface{})
				tg["length"] = 999.0
			})
			return f
		}},
		{name: "targets tampered, snapshot re-hashed (signature must catch)", tags: []string{"v1"},
			setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
				basic(t, r)
				r.MutateFile("targets", func(b []byte) []byte { return bytes.Replace(b, []byte(`"length":11`), []byte(`"length":12`), 1) })
			})},
		{name: "targets signed by unlisted key", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SignWith("targets", key(t))
		})},
		{name: "targets threshold 2, one signature", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SetKeys("targets", append(r.Keys("targets"), key(t))...)
			r.SetThreshold("targets", 2)
			r.SignWith("targets", r.Keys("targets")[0])
		})},
		{name: "duplicate signatures by one key counted once", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			k := r.Keys("targets")[0]
			r.SetKeys("targets", k, key(t))
			r.SetThreshold("targets", 2)
			r.SignWith("targets", k, k)
		})},
		{name: "timestamp signed by snapshot key", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SignWith("timestamp", r.Keys("snapshot")...)
		})},
		{name: "ecdsa DER signature", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SignFunc("targets", (*tuftest.Key).SignASN1)
		})},
		{name: "unknown signature method", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SignFunc("snapshot", func(k *tuftest.Key, msg []byte) tuftest.Signature {
				s := k.Sign(msg)
				s.Method = "hmac-sha256"
				return s
			})
		})},
		{name: "method in upper case", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SignFunc("targets", func(k *tuftest.Key, msg []byte) tuftest.Signature {
				s := k.Sign(msg)
				s.Method = strings.ToUpper(s.Method)
				return s
			})
		})},
		{name: "good and bad signature, threshold 1", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			good := r.Keys("targets")[0]
			r.SignFunc("targets", func(k *tuftest.Key, msg []byte) tuftest.Signature {
				if k == good {
					return k.Sign(msg)
				}
				s := good.Sign(msg)
				s.Sig[3] ^= 1
				return s
			})
			r.SignWith("targets", key(t), good)
		})},
		{name: "expired timestamp", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SetExpiry("timestamp", past())
		})},
		{name: "expired snapshot", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SetExpiry("snapshot", past())
		})},
		{name: "expired targets", tags: []string{"v1", "v2"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SetExpiry("targets", past())
		})},
		{name: "expired root", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SetExpiry("root", past())
		})},
		{name: "expired root certificate", tags: []string{"v1"}, setup: publishWith(basic),
			opts: []tuftest.Option{tuftest.WithRootCertValidity(time.Now().AddDate(-2, 0, 0), past())}},
		{name: "root certificate not yet valid", tags: []string{"v1"}, setup: publishWith(basic),
			opts: []tuftest.Option{tuftest.WithRootCertValidity(time.Now().AddDate(0, 0, 3), time.Now().AddDate(1, 0, 0))}},
		{name: "root CN differs from GUN", tags: []string{"v1"}, setup: publishWith(basic),
			opts: []tuftest.Option{tuftest.WithRootCN("example.com/team/other")}},
		{name: "root CN wildcard", tags: []string{"v1"}, setup: publishWith(basic),
			opts: []tuftest.Option{tuftest.WithRootCN("example.com/team/*")}},
		{name: "plain ecdsa root key", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			k := key(t)
			r.SetKeys("root", k)
		})},
		{name: "root threshold 2, one signature", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SignWith("root", r.Keys("root")[0])
		}), opts: []tuftest.Option{tuftest.WithRootKeys(2, 2)}},
		{name: "root role keyid not in keys", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.MutateSigned("root", func(s map[string]interface{}) {
				ts := s["roles"].(map[string]interface{})["timestamp"].(map[string]interface{})
				ts["keyids"] = append(ts["keyids"].([]interface{}), strings.Repeat("ab", 32))
			})
		})},
		{name: "threshold 0", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.MutateSigned("root", func(s map[string]interface{}) {
				s["roles"].(map[string]interface{})["targets"].(map[string]interface{})["threshold"] = int64(0)
			})
		})},
		{name: "wrong _type", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.MutateSigned("targets", func(s map[string]interface{}) { s["_type"] = "targets" })
		})},
		{name: "version 0", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.MutateSigned("targets", func(s map[string]interface{}) { s["version"] = int64(0) })
		})},
		{name: "delegation name not a child", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.MutateSigned("targets", func(s map[string]interface{}) {
				roles := s["delegations"].(map[string]interface{})["roles"].([]interface{})
				roles[0].(map[string]interface{})["name"] = "targets/releases/deep"
			})
		})},
		{name: "target without sha256", tags: []string{"v1", "v2"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SetTargetMeta("targets", "v1", map[string]interface{}{"length": int64(3),
				"hashes": map[string]interface{}{"sha512": "AAAA"}})
		})},
		{name: "target sha256 of wrong length", tags: []string{"v1", "v2"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SetTargetMeta("targets", "v1", map[string]interface{}{"length": int64(3),
				"hashes": map[string]interface{}{"sha256": "AAAA"}})
		})},
		{name: "malformed base64 signature", tags: []string{"v1"}, setup: func(t *testing.T, r *tuftest.Repo) map[string][]byte {
			basic(t, r)
			f := r.Publish()
			edit(t, f, "timestamp.json", func(m map[string]interface{}) {
				sigsOf(m)[0].(map[string]interface{})["sig"] = "!!!not base64"
			})
			return f
		}},
		{name: "malformed JSON timestamp", tags: []string{"v1"}, setup: func(t *testing.T, r *tuftest.Repo) map[string][]byte {
			basic(t, r)
			f := r.Publish()
			f["timestamp.json"] = f["timestamp.json"][:len(f["timestamp.json"])-2]
			return f
		}},
		{name: "no root on server", tags: []string{"v1"}, setup: func(t *testing.T, r *tuftest.Repo) map[string][]byte {
			basic(t, r)
			f := r.Publish()
			delete(f, "root.json")
			return f
		}},
		{name: "no timestamp on server", tags: []string{"v1"}, setup: func(t *testing.T, r *tuftest.Repo) map[string][]byte {
			basic(t, r)
			f := r.Publish()
			delete(f, "timestamp.json")
			return f
		}},
		{name: "trust pinned to the root cert", tags: []string{"v1"}, setup: publishWith(basic),
			pin: oracle.Pinning{DisableTOFU: true}},
		{name: "trust pinned to another cert", tags: []string{"v1"}, setup: publishWith(basic),
			pin: oracle.Pinning{Certs: map[string][]string{gun: {strings.Repeat("cd", 32)}}}},
		{name: "TOFU disabled without pin", tags: []string{"v1"}, setup: publishWith(basic),
			pin: oracle.Pinning{DisableTOFU: true, Certs: map[string][]string{"other.example/*": {strings.Repeat("cd", 32)}}}},

		{name: "signature claims a listed key ID, made by another key", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			listed, other := r.Keys("targets")[0], key(t)
			r.SignFunc("targets", func(_ *tuftest.Key, msg []byte) tuftest.Signature {
				s := other.Sign(msg)
				s.KeyID = listed.ID()
				return s
			})
		})},
		{name: "malformed key material", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.MutateSigned("root", func(s map[string]interface{}) {
				k := s["keys"].(map[string]interface{})[r.Keys("timestamp")[0].ID()].(map[string]interface{})
				k["keyval"].(map[string]interface{})["public"] = "bm90IGEga2V5"
			})
		})},
		{name: "tag outside the delegation's paths", tags: []string{"x2", "v2"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SetPaths("targets/releases", "v", "y")
			r.AddTarget("targets/releases", "x2", []byte("x2"))
		})},
		{name: "timestamp body never ends", tags: []string{"v1"}, setup: publishWith(basic),
			serve: func(t *testing.T, s *tuftest.Server, gun string) {
				s.Override(gun, "timestamp.json", tuftest.Response{Endless: true, Body: []byte(`{"signed":{"_type":"Timestamp","x":"` + strings.Repeat("a", 1<<16))})
			}},
		{name: "endless body starting with the genuine snapshot", tags: []string{"v1"}, setup: publishWith(basic),
			serve: func(t *testing.T, s *tuftest.Server, gun string) {
				snap := s.Files(gun)["snapshot.json"]
				s.Override(gun, "snapshot."+tuftest.SHA256Hex(snap)+".json", tuftest.Response{Endless: true, Body: snap})
			}},
		{name: "Content-Length larger than the body", tags: []string{"v1"}, setup: publishWith(basic),
			serve: func(t *testing.T, s *tuftest.Server, gun string) {
				s.Override(gun, "timestamp.json", tuftest.Response{Body: []byte(`{"signed":`), ContentLength: 500})
			}},
		// Notary's HTTP store uses a bare RoundTripper: a 3xx is a server error, never followed.
		{name: "root.json redirected to its own bytes", tags: []string{"v1"}, setup: publishWith(basic),
			serve: func(t *testing.T, s *tuftest.Server, gun string) {
				s.Override(gun, "root.json", redirectTo(t, s.Files(gun)["root.json"]))
			}},
		{name: "timestamp.json redirected after a pull", tags: []string{"v1"}, setup: publishWith(basic),
			then: func(t *testing.T, r *tuftest.Repo, srv *tuftest.Server, gun string, pull func(tag string)) {
				// an outage for both: the cached timestamp stands in, the target is never read
				srv.Override(gun, "timestamp.json", redirectTo(t, []byte(`{}`)))
			}},
		{name: "snapshot longer than its listed length", tags: []string{"v1"}, setup: func(t *testing.T, r *tuftest.Repo) map[string][]byte {
			basic(t, r)
			f := r.Publish()
			f["snapshot.json"] = append(f["snapshot.json"], bytes.Repeat([]byte(" "), 4<<20)...)
			return f
		}},
		{name: "fixture signature bit flipped in timestamp", gun: "localhost:5000/test/app", tags: []string{"v1"},
			setup: func(t *testing.T, _ *tuftest.Repo) map[string][]byte {
				f := tuftest.LoadDir(t, "testdata/delegations-and-rotations")
				f["timestamp.json"] = bytes.Replace(f["timestamp.json"], []byte(`"sig":"iDn`), []byte(`"sig":"iDm`), 1)
				return f
			}},
		{name: "fixture snapshot bytes changed", gun: "localhost:5000/test/app", tags: []string{"v1"},
			setup: func(t *testing.T, _ *tuftest.Repo) map[string][]byte {
				f := tuftest.LoadDir(t, "testdata/delegations-and-rotations")
				f["snapshot.json"] = bytes.Replace(f["snapshot.json"], []byte(`"version":7`), []byte(`"version":8`), 1)
				return f
			}},

		// --- corners where a hand-written verifier may part from notary ---
		{name: "child paths restricted by parent's, tag also in targets", tags: []string{"x1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SetPaths("targets/releases", "v")
			r.AddDelegation("targets/releases/bob", []*tuftest.Key{key(t)}, []string{"x"}, 1)
			r.AddTarget("targets/releases/bob", "x1", []byte("bob x1"))
			r.AddTarget("targets", "x1", []byte("top x1"))
		})},
		{name: "child inside parent's paths, tag also in targets", tags: []string{"v7"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SetPaths("targets/releases", "v")
			r.AddDelegation("targets/releases/bob", []*tuftest.Key{key(t)}, nil, 1)
			r.AddTarget("targets/releases/bob", "v7", []byte("bob v7"))
			r.AddTarget("targets", "v7", []byte("top v7"))
		})},
		{name: "glob-looking path is a literal prefix", tags: []string{"v1x", "v*1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SetPaths("targets/releases", "v*")
			r.AddTarget("targets/releases", "v1x", []byte("v1x"))
			r.AddTarget("targets/releases", "v*1", []byte("v*1"))
		})},
		{name: "same key listed as ecdsa and ecdsa-x509, threshold 2", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			k := r.Keys("targets")[0]
			r.SetKeys("targets", k, k.WithCert(t, "targets-signer", past(), time.Now().AddDate(1, 0, 0)))
			r.SetThreshold("targets", 2)
		})},
		{name: "wrong sha512 next to a right sha256 in snapshot meta", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.MutateSigned("snapshot", func(s map[string]interface{}) {
				h := s["meta"].(map[string]interface{})["targets"].(map[string]interface{})["hashes"].(map[string]interface{})
				h["sha512"] = base64.StdEncoding.EncodeToString(make([]byte, 64))
			})
		})},
		{name: "snapshot meta for targets without sha256", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.MutateSigned("snapshot", func(s map[string]interface{}) {
				delete(s["meta"].(map[string]interface{})["targets"].(map[string]interface{})["hashes"].(map[string]interface{}), "sha256")
			})
		})},
		{name: "snapshot meta for a delegation with only an unknown hash", tags: []string{"v2", "v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.MutateSigned("snapshot", func(s map[string]interface{}) {
				s["meta"].(map[string]interface{})["targets/releases"].(map[string]interface{})["hashes"] = map[string]interface{}{"md5": "AAAAAAAAAAAAAAAAAAAAAA=="}
			})
		})},
		{name: "timestamp meta for snapshot with only sha512", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.MutateSigned("timestamp", func(s map[string]interface{}) {
				delete(s["meta"].(map[string]interface{})["snapshot"].(map[string]interface{})["hashes"].(map[string]interface{}), "sha256")
			})
		})},
		{name: "timestamp lists a shorter snapshot length", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.MutateSigned("timestamp", func(s map[string]interface{}) {
				m := s["meta"].(map[string]interface{})["snapshot"].(map[string]interface{})
				m["length"] = m["length"].(int64) - 10
			})
		})},
		{name: "timestamp lists a longer snapshot length", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.MutateSigned("timestamp", func(s map[string]interface{}) {
				m := s["meta"].(map[string]interface{})["snapshot"].(map[string]interface{})
				m["length"] = m["length"].(int64) + 1000
			})
		})},
		{name: "unknown fields in signed", tags: []string{"v1", "v2"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			for _, role := range []string{"root", "targets", "targets/releases", "snapshot", "timestamp"} {
				r.MutateSigned(role, func(s map[string]interface{}) { s["x-custom"] = map[string]interface{}{"a": []interface{}{"b"}} })
			}
		})},
		{name: "expires without fraction, +00:00", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.MutateSigned("timestamp", func(s map[string]interface{}) {
				s["expires"] = time.Now().AddDate(0, 0, 3).UTC().Format("2006-01-02T15:04:05") + "+00:00"
			})
		})},
		{name: "expires not RFC 3339", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.MutateSigned("timestamp", func(s map[string]interface{}) {
				s["expires"] = time.Now().AddDate(0, 0, 3).UTC().Format(time.RFC1123)
			})
		})},
		{name: "negative target length", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SetTargetMeta("targets", "v1", map[string]interface{}{"length": int64(-1),
				"hashes": map[string]interface{}{"sha256": base64.StdEncoding.EncodeToString(make([]byte, 32))}})
		})},
		{name: "target with custom data", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SetTargetMeta("targets", "v1", map[string]interface{}{"length": int64(5), "custom": map[string]interface{}{"k": "v"},
				"hashes": map[string]interface{}{"sha256": base64.StdEncoding.EncodeToString(make([]byte, 32))}})
		})},
		{name: "delegation threshold 0", tags: []string{"v2", "v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SetThreshold("targets/releases", 0)
		})},
		{name: "delegation threshold above its key count", tags: []string{"v2", "v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SetThreshold("targets/releases", 3)
		})},
		{name: "delegation lists a key ID without a key", tags: []string{"v2", "v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.MutateSigned("targets", func(s map[string]interface{}) {
				d := s["delegations"].(map[string]interface{})["roles"].([]interface{})[0].(map[string]interface{})
				d["keyids"] = append(d["keyids"].([]interface{}), strings.Repeat("ef", 32))
			})
		})},
		{name: "root lists an unused key under a wrong ID", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.MutateSigned("root", func(s map[string]interface{}) {
				s["keys"].(map[string]interface{})[strings.Repeat("0", 64)] = key(t).JSON()
			})
		})},
		{name: "key with non-null private", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.MutateSigned("root", func(s map[string]interface{}) {
				k := s["keys"].(map[string]interface{})[r.Keys("targets")[0].ID()].(map[string]interface{})
				k["keyval"].(map[string]interface{})["private"] = "AAAA"
			})
		})},
		{name: "eddsa method on an ecdsa key", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SignFunc("targets", func(k *tuftest.Key, msg []byte) tuftest.Signature {
				s := k.Sign(msg)
				s.Method = "eddsa"
				return s
			})
		})},
		{name: "root keyids listed twice, threshold 2", tags: []string{"v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.MutateSigned("root", func(s map[string]interface{}) {
				tg := s["roles"].(map[string]interface{})["targets"].(map[string]interface{})
				tg["keyids"] = append(tg["keyids"].([]interface{}), tg["keyids"].([]interface{})[0])
				tg["threshold"] = int64(2)
			})
		})},

		{name: "delegation with empty paths list", tags: []string{"v2", "v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.SetPaths("targets/releases")
		})},
		{name: "delegation without a paths field", tags: []string{"v2", "v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.MutateSigned("targets", func(s map[string]interface{}) {
				delete(s["delegations"].(map[string]interface{})["roles"].([]interface{})[0].(map[string]interface{}), "paths")
			})
		})},
		{name: "delegation with path_hash_prefixes", tags: []string{"v2", "v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.MutateSigned("targets", func(s map[string]interface{}) {
				d := s["delegations"].(map[string]interface{})["roles"].([]interface{})[0].(map[string]interface{})
				delete(d, "paths")
				d["path_hash_prefixes"] = []interface{}{""}
			})
		})},
		{name: "delegation declared twice", tags: []string{"v2", "v1"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			basic(t, r)
			r.MutateSigned("targets", func(s map[string]interface{}) {
				d := s["delegations"].(map[string]interface{})
				roles := d["roles"].([]interface{})
				dup := map[string]interface{}{}
				for k, v := range roles[0].(map[string]interface{}) {
					dup[k] = v
				}
				dup["paths"] = []interface{}{"x"}
				d["roles"] = append(roles, dup)
			})
		})},
		{name: "delegation key is an expired certificate", tags: []string{"v2"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			r.AddDelegation("targets/releases", []*tuftest.Key{tuftest.NewCertKey(t, tuftest.ECDSA, "signer", time.Now().AddDate(-2, 0, 0), past())}, nil, 1)
			r.AddTarget("targets/releases", "v2", []byte("v2"))
		})},
		{name: "delegation key certificate valid only in the future", tags: []string{"v2"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			r.AddDelegation("targets/releases", []*tuftest.Key{tuftest.NewCertKey(t, tuftest.ECDSA, "signer", time.Now().AddDate(0, 1, 0), time.Now().AddDate(1, 0, 0))}, nil, 1)
			r.AddTarget("targets/releases", "v2", []byte("v2"))
		})},
		{name: "ecdsa P-384 keys everywhere", tags: []string{"v1", "v2"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			r.AddTarget("targets", "v1", []byte("v1"))
			r.AddDelegation("targets/releases", []*tuftest.Key{tuftest.NewKey(t, tuftest.ECDSAP384)}, nil, 1)
			r.AddTarget("targets/releases", "v2", []byte("v2"))
		}), opts: []tuftest.Option{tuftest.WithKeyAlg(tuftest.ECDSAP384), tuftest.WithRootKey(tuftest.NewCertKeyFor(tuftest.ECDSAP384, gun))}},
		{name: "RSA 1024 targets key", tags: []string{"v1"}, setup: publishWith(basic),
			opts: []tuftest.Option{tuftest.WithKeyAlg(tuftest.RSA1024)}},
		{name: "RSA 1024 root certificate", tags: []string{"v1"}, setup: publishWith(basic),
			opts: []tuftest.Option{tuftest.WithRootKey(tuftest.NewCertKeyFor(tuftest.RSA1024, gun))}},
		{name: "ed25519 delegation key", tags: []string{"v2"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			r.AddDelegation("targets/releases", []*tuftest.Key{tuftest.NewKey(t, tuftest.Ed25519)}, nil, 1)
			r.AddTarget("targets/releases", "v2", []byte("v2"))
		})},
		{name: "rsa-x509 delegation key", tags: []string{"v2"}, setup: publishWith(func(t *testing.T, r *tuftest.Repo) {
			r.AddDelegation("targets/releases", []*tuftest.Key{tuftest.NewCertKey(t, tuftest.RSA, "signer", past(), time.Now().AddDate(1, 0, 0))}, nil, 1)
			r.AddTarget("targets/releases", "v2", []byte("v2"))
		})},

		// --- trust pinning: certs (exact, wildcard) and CA ---
		{name: "pin: wildcard certs entry", tags: []string{"v1"}, setup: publishWith(basic),
			pinning: func(t *testing.T) ([]tuftest.Option, func(*tuftest.Repo) oracle.Pinning) {
				return nil, func(r *tuftest.Repo) oracle.Pinning {
					return oracle.Pinning{DisableTOFU: true, Certs: map[string][]string{"example.com/team/*": r.RootKeyIDs()}}
				}
			}},
		{name: "pin: longest wildcard wins", tags: []string{"v1"}, setup: publishWith(basic),
			pinning: func(t *testing.T) ([]tuftest.Option, func(*tuftest.Repo) oracle.Pinning) {
				return nil, func(r *tuftest.Repo) oracle.Pinning {
					return oracle.Pinning{Certs: map[string][]string{"example.com/*": {strings.Repeat("ab", 32)}, "example.com/team/*": r.RootKeyIDs()}}
				}
			}},
		{name: "pin: longest wildcard is wrong", tags: []string{"v1"}, setup: publishWith(basic),
			pinning: func(t *testing.T) ([]tuftest.Option, func(*tuftest.Repo) oracle.Pinning) {
				return nil, func(r *tuftest.Repo) oracle.Pinning {
					return oracle.Pinning{Certs: map[string][]string{"example.com/team/*": {strings.Repeat("ab", 32)}, "example.com/*": r.RootKeyIDs()}}
				}
			}},
		{name: "pin: exact certs entry beats a CA that does not match", tags: []string{"v1"}, setup: publishWith(basic),
			pinning: func(t *testing.T) ([]tuftest.Option, func(*tuftest.Repo) oracle.Pinning) {
				other := tuftest.NewCA(t, "other CA", past(), time.Now().AddDate(1, 0, 0))
				return nil, func(r *tuftest.Repo) oracle.Pinning {
					return oracle.Pinning{Certs: map[string][]string{gun: r.RootKeyIDs()}, CA: map[string]string{"example.com/": string(other.PEM)}}
				}
			}},
		{name: "pin: CA, leaf without extended key usage", tags: []string{"v1"}, setup: publishWith(basic),
			pinning: caPinning(nil, false, true)},
		{name: "pin: CA, leaf with code-signing usage (notary's own template)", tags: []string{"v1"}, setup: publishWith(basic),
			pinning: caPinning([]x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}, false, true)},
		{name: "pin: CA, leaf with server-auth usage", tags: []string{"v1"}, setup: publishWith(basic),
			pinning: caPinning([]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, false, true)},
		{name: "pin: CA, CA certificate bundled after the leaf", tags: []string{"v1"}, setup: publishWith(basic),
			pinning: caPinning(nil, true, true)},
		{name: "pin: another CA", tags: []string{"v1"}, setup: publishWith(basic),
			pinning: caPinning(nil, false, false)},

		// --- with state from an earlier successful pull ---
		{name: "new tag after re-signing", tags: []string{"v1", "v3"}, setup: publishWith(basic),
			then: func(t *testing.T, r *tuftest.Repo, srv *tuftest.Server, gun string, pull func(tag string)) {
				r.AddTarget("targets/releases", "v3", []byte("v3"))
				r.AddTarget("targets", "v1", []byte("v1 again"))
				srv.Set(gun, r.Publish())
			}},
		{name: "replay of an older timestamp", tags: []string{"v1"}, setup: publishWith(basic),
			then: func(t *testing.T, r *tuftest.Repo, srv *tuftest.Server, gun string, pull func(tag string)) {
				// both sides verified the first publish; a second one exists, the client learns
				// it, and then the server replays the first.
				old := srv.Files(gun)
				r.AddTarget("targets", "v1", []byte("v1 new"))
				srv.Set(gun, r.Publish())
				pull("v1")
				srv.Set(gun, old)
			}},
		{name: "rollback of targets version only", tags: []string{"v1"}, setup: func(t *testing.T, r *tuftest.Repo) map[string][]byte {
			basic(t, r)
			r.SetVersion("targets", 5)
			return r.Publish()
		}, then: func(t *testing.T, r *tuftest.Repo, srv *tuftest.Server, gun string, pull func(tag string)) {
			r.SetVersion("targets", 4)
			srv.Set(gun, r.Publish())
		}},
		{name: "rollback of timestamp version only", tags: []string{"v1"}, setup: func(t *testing.T, r *tuftest.Repo) map[string][]byte {
			basic(t, r)
			r.SetVersion("timestamp", 5)
			return r.Publish()
		}, then: func(t *testing.T, r *tuftest.Repo, srv *tuftest.Server, gun string, pull func(tag string)) {
			r.SetVersion("timestamp", 3)
			srv.Set(gun, r.Publish())
		}},
		{name: "mix and match: old snapshot at new snapshot's checksum URL", tags: []string{"v1"}, setup: publishWith(basic),
			then: func(t *testing.T, r *tuftest.Repo, srv *tuftest.Server, gun string, pull func(tag string)) {
				oldSnap := srv.Files(gun)["snapshot.json"]
				r.AddTarget("targets", "v1", []byte("v1 new"))
				files := r.Publish()
				srv.Set(gun, files)
				srv.Override(gun, "snapshot."+tuftest.SHA256Hex(files["snapshot.json"])+".json", tuftest.Response{Body: oldSnap})
			}},
		{name: "root rotated twice", tags: []string{"v1"}, setup: publishWith(basic),
			then: func(t *testing.T, r *tuftest.Repo, srv *tuftest.Server, gun string, pull func(tag string)) {
				r.RotateRoot()
				r.Publish()
				r.RotateRoot()
				r.AddTarget("targets", "v1", []byte("after rotation"))
				srv.Set(gun, r.Publish())
			}},
		{name: "root rotated through an expired intermediate", tags: []string{"v1"}, setup: publishWith(basic),
			then: func(t *testing.T, r *tuftest.Repo, srv *tuftest.Server, gun string, pull func(tag string)) {
				r.RotateRoot()
				r.SetExpiry("root", past())
				r.Publish()
				r.RotateRoot()
				r.SetExpiry("root", time.Now().AddDate(1, 0, 0))
				srv.Set(gun, r.Publish())
			}},
		{name: "root rotated, chain file missing", tags: []string{"v1"}, setup: publishWith(basic),
			// notary's LoadTUFRepo maps any 404 on a root file (here 2.root.json, mid chain
			// walk) to ErrRepositoryNotExist, which docker prints as "does not have trust data";
			// trustgate calls a broken rotation chain a failure (503), never "unsigned" (404).
			classDiffers: "notary: repository does not exist; trustgate: checksum mismatch on root",
			then: func(t *testing.T, r *tuftest.Repo, srv *tuftest.Server, gun string, pull func(tag string)) {
				r.RotateRoot()
				r.Publish()
				r.RotateRoot()
				f := r.Publish()
				delete(f, "2.root.json")
				srv.Set(gun, f)
			}},
		{name: "root rotated to a threshold the new root misses", tags: []string{"v1"}, setup: publishWith(basic),
			then: func(t *testing.T, r *tuftest.Repo, srv *tuftest.Server, gun string, pull func(tag string)) {
				old := r.Keys("root")
				a := tuftest.NewCertKey(t, tuftest.ECDSA, gun, past(), time.Now().AddDate(1, 0, 0))
				b := tuftest.NewCertKey(t, tuftest.ECDSA, gun, past(), time.Now().AddDate(1, 0, 0))
				r.RotateRoot(a, b)
				r.SetThreshold("root", 2)
				r.SignWith("root", append(old, a)...)
				srv.Set(gun, r.Publish())
			}},
		{name: "root rotated, signed by the old key only", tags: []string{"v1"}, setup: publishWith(basic),
			then: func(t *testing.T, r *tuftest.Repo, srv *tuftest.Server, gun string, pull func(tag string)) {
				old := r.Keys("root")
				r.RotateRoot()
				r.SignWith("root", old...)
				srv.Set(gun, r.Publish())
			}},
		{name: "root rotated from threshold 2 with one old signature", tags: []string{"v1"}, setup: publishWith(basic),
			opts: []tuftest.Option{tuftest.WithRootKeys(2, 2)},
			then: func(t *testing.T, r *tuftest.Repo, srv *tuftest.Server, gun string, pull func(tag string)) {
				old := r.Keys("root")
				k := tuftest.NewCertKey(t, tuftest.ECDSA, gun, past(), time.Now().AddDate(1, 0, 0))
				r.RotateRoot(k)
				r.SetThreshold("root", 1)
				r.SignWith("root", k, old[0])
				srv.Set(gun, r.Publish())
			}},
		{name: "timestamp key rotated in a new root", tags: []string{"v1"}, setup: publishWith(basic),
			then: func(t *testing.T, r *tuftest.Repo, srv *tuftest.Server, gun string, pull func(tag string)) {
				r.SetKeys("timestamp", tuftest.NewKey(t, tuftest.Ed25519))
				srv.Set(gun, r.Publish())
			}},
		{name: "old timestamp signed by a key the new root dropped", tags: []string{"v1"}, setup: publishWith(basic),
			then: func(t *testing.T, r *tuftest.Repo, srv *tuftest.Server, gun string, pull func(tag string)) {
				oldKey := r.Keys("timestamp")[0]
				r.SetKeys("timestamp", tuftest.NewKey(t, tuftest.Ed25519))
				srv.Set(gun, r.Publish())
				pull("v1")
				r.SignWith("timestamp", oldKey)
				r.SetVersion("timestamp", r.Version("timestamp")+5)
				srv.Set(gun, r.Publish())
			}},
		{name: "root rotated without the old key's signature", tags: []string{"v1"}, setup: publishWith(basic),
			then: func(t *testing.T, r *tuftest.Repo, srv *tuftest.Server, gun string, pull func(tag string)) {
				k := tuftest.NewCertKey(t, tuftest.ECDSA, gun, past(), time.Now().AddDate(1, 0, 0))
				r.RotateRoot(k)
				r.SignWith("root", k)
				r.AddTarget("targets", "v1", []byte("attacker"))
				srv.Set(gun, r.Publish())
			}},
		{name: "expired timestamp replaces a valid one", tags: []string{"v1"}, setup: publishWith(basic),
			then: func(t *testing.T, r *tuftest.Repo, srv *tuftest.Server, gun string, pull func(tag string)) {
				r.SetExpiry("timestamp", past())
				srv.Set(gun, r.Publish())
			}},
		{name: "timestamp server error after a pull", tags: []string{"v1"}, setup: publishWith(basic),
			then: func(t *testing.T, r *tuftest.Repo, srv *tuftest.Server, gun string, pull func(tag string)) {
				srv.Override(gun, "timestamp.json", tuftest.Response{Status: 500})
			}},
		{name: "timestamp over 1 MiB", tags: []string{"v1"}, setup: func(t *testing.T, r *tuftest.Repo) map[string][]byte {
			basic(t, r)
			f := r.Publish()
			f["timestamp.json"] = append(f["timestamp.json"], bytes.Repeat([]byte(" "), 1<<20)...)
			return f
		}},
	}
}

// TestDifferential runs trustgate's resolver and the real notary client (with docker's role
// rule) on the same served trust data and requires the same verdict: accept at the same digest,
// "unsigned", or "fail".
func TestDifferential(t *testing.T) {
	seen := map[string]int{} // oracle verdict classes, so agreement cannot be vacuous
	for _, tc := range diffCases() {
		if tc.then == nil {
			t.Run(tc.name, func(t *testing.T) { runDiffCase(t, tc, false, seen) })
			continue
		}
		// State carried from the first pull: in the same resolver, and in a new one that
		// only has what the first persisted to TrustDir (notary keeps its cache either way).
		t.Run(tc.name+"/same client", func(t *testing.T) { runDiffCase(t, tc, false, seen) })
		t.Run(tc.name+"/restarted from TrustDir", func(t *testing.T) { runDiffCase(t, tc, true, seen) })
	}
	if seen["tag lists"] < 30 {
		t.Errorf("only %d tag lists compared", seen["tag lists"])
	}
	for _, class := range []string{"accept", "unsigned", "fail"} {
		if seen[class] < 5 {
			t.Errorf("only %d %q verdicts in the table: %v", seen[class], class, seen)
		}
	}
}

func runDiffCase(t *testing.T, tc diffCase, restart bool, seen map[string]int) {
	g := tc.gun
	if g == "" {
		g = gun
	}
	opts, pinFor := tc.opts, func(*tuftest.Repo) oracle.Pinning { return tc.pin }
	if tc.pinning != nil {
		var more []tuftest.Option
		more, pinFor = tc.pinning(t)
		opts = append(append([]tuftest.Option(nil), opts...), more...)
	}
	r := tuftest.NewRepo(t, g, opts...)
	srv := tuftest.Serve(t, g, tc.setup(t, r))
	if tc.serve != nil {
		tc.serve(t, srv, g)
	}
	pin := pinFor(r)
	if pin.DisableTOFU && pin.Certs == nil && pin.CA == nil {
		pin.Certs = map[string][]string{g: r.RootKeyIDs()}
	}
	ctx := context.Background()
	o := oracle.New(nil, pin)
	cfg := resolver.Config{
		ServerURL: srv.URL,
		Pinning:   resolver.TrustPinning{Certs: pin.Certs, CA: pin.CA, DisableTOFU: pin.DisableTOFU},
	}
	if restart {
		cfg.TrustDir = t.TempDir()
	}
	newClient := func() *resolver.Client {
		rc, err := resolver.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return rc
	}
	rc := newClient()
	if tc.then != nil {
		pull := func(tag string) {
			t.Helper()
			ov, rv := oracleVerdict(o.Resolve(ctx, srv.URL, g, tag)), resolverVerdict(ctx, rc, g, tag)
			if ov.class != "accept" || rv.class != "accept" {
				t.Fatalf("intermediate pull of %s: oracle %v, resolver %v", tag, ov, rv)
			}
		}
		pull(tc.tags[0])
		tc.then(t, r, srv, g, pull)
		if restart {
			rc = newClient()
		}
	}
	// docker pull --all-tags vs State.Tags, whenever both sides load the trust data.
	if otags, err := o.Tags(ctx, srv.URL, g); err == nil {
		if st, err := rc.Update(ctx, g); err == nil {
			rtags := st.Tags(resolver.DefaultRoles)
			seen["tag lists"]++
			if strings.Join(otags, ",") != strings.Join(rtags, ",") {
				t.Errorf("tag lists disagree: notary+docker %q, trustgate %q", otags, rtags)
			}
		}
	}
	for _, tag := range tc.tags {
		ov := oracleVerdict(o.Resolve(ctx, srv.URL, g, tag))
		seen[ov.class]++
		rv := resolverVerdict(ctx, rc, g, tag)
		t.Logf("%s: oracle %v | resolver %v", tag, ov, rv)
		if tc.classDiffers != "" && ov.class != "accept" && rv.class != "accept" {
			if ov.class != rv.class {
				t.Logf("%s: refusal kinds differ as documented: %s", tag, tc.classDiffers)
			}
			continue
		}
		if ov.class != rv.class || ov.digest != rv.digest {
			t.Errorf("%s: disagree: notary+docker %v, trustgate %v", tag, ov, rv)
		}
	}
}

// redirectTo answers with a 302 to a server of its own that serves body.
func redirectTo(t *testing.T, body []byte) tuftest.Response {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) }))
	t.Cleanup(target.Close)
	return tuftest.Response{Handler: func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusFound)
	}}
}

// caPinning issues the root key from a fresh CA (with the given extended key usage, the CA
// bundled into the key's PEM or not) and pins "example.com/" to that CA, or to another CA.
func caPinning(eku []x509.ExtKeyUsage, bundle, sameCA bool) func(t *testing.T) ([]tuftest.Option, func(*tuftest.Repo) oracle.Pinning) {
	return func(t *testing.T) ([]tuftest.Option, func(*tuftest.Repo) oracle.Pinning) {
		ca := tuftest.NewCA(t, "test CA", past(), time.Now().AddDate(5, 0, 0))
		k := ca.Issue(t, tuftest.ECDSA, gun, past(), time.Now().AddDate(1, 0, 0), eku, bundle)
		pinned := ca
		if !sameCA {
			pinned = tuftest.NewCA(t, "other CA", past(), time.Now().AddDate(5, 0, 0))
		}
		return []tuftest.Option{tuftest.WithRootKey(k)}, func(*tuftest.Repo) oracle.Pinning {
			return oracle.Pinning{CA: map[string]string{"example.com/": string(pinned.PEM)}, DisableTOFU: true}
		}
	}
}
