package oracle_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/oracle"
)

// TestNotaryAcceptsTuftest is tuftest's acceptance test: the real notary client must verify
// every key ID, signature scheme, hash and delegation tuftest produces, or the resolver's tests
// built on tuftest would prove nothing about real trust data.
func TestNotaryAcceptsTuftest(t *testing.T) {
	const gun = "example.com/team/app"
	for _, tc := range []struct {
		name  string
		build func(t *testing.T, r *tuftest.Repo) (tag, digest, role string)
		opts  []tuftest.Option
	}{
		{
			name: "ecdsa root, ecdsa keys, tag in targets",
			build: func(t *testing.T, r *tuftest.Repo) (string, string, string) {
				return "v1", r.AddTarget("targets", "v1", []byte("m1")), "targets"
			},
		},
		{
			name: "rsa root, ed25519 keys",
			opts: []tuftest.Option{tuftest.WithRSARoot(), tuftest.WithKeyAlg(tuftest.Ed25519)},
			build: func(t *testing.T, r *tuftest.Repo) (string, string, string) {
				return "latest", r.AddTarget("targets", "latest", []byte("m")), "targets"
			},
		},
		{
			name: "rsa targets key",
			opts: []tuftest.Option{tuftest.WithKeyAlg(tuftest.RSA)},
			build: func(t *testing.T, r *tuftest.Repo) (string, string, string) {
				return "v1", r.AddTarget("targets", "v1", []byte("m")), "targets"
			},
		},
		{
			name: "targets/releases wins over targets",
			build: func(t *testing.T, r *tuftest.Repo) (string, string, string) {
				r.AddTarget("targets", "v1", []byte("old"))
				r.AddDelegation("targets/releases", []*tuftest.Key{tuftest.NewKey(t, tuftest.ECDSA)}, nil, 1)
				return "v1", r.AddTarget("targets/releases", "v1", []byte("new")), "targets/releases"
			},
		},
		{
			name: "delegation with x509 and ed25519 keys, threshold 2, path prefix",
			build: func(t *testing.T, r *tuftest.Repo) (string, string, string) {
				keys := []*tuftest.Key{tuftest.NewCertKey(t, tuftest.ECDSA, "signer", time.Now().Add(-1), time.Now().AddDate(1, 0, 0)), tuftest.NewKey(t, tuftest.Ed25519)}
				r.AddDelegation("targets/releases", keys, []string{"v"}, 2)
				return "v2", r.AddTarget("targets/releases", "v2", []byte("m")), "targets/releases"
			},
		},
		{
			name: "nested delegation under releases",
			build: func(t *testing.T, r *tuftest.Repo) (string, string, string) {
				r.AddDelegation("targets/releases", []*tuftest.Key{tuftest.NewKey(t, tuftest.ECDSA)}, nil, 1)
				r.AddDelegation("targets/releases/bob", []*tuftest.Key{tuftest.NewKey(t, tuftest.ECDSA)}, nil, 1)
				return "v5", r.AddTarget("targets/releases/bob", "v5", []byte("m")), "targets/releases/bob"
			},
		},
		{
			name: "two root keys, threshold 2",
			opts: []tuftest.Option{tuftest.WithRootKeys(2, 2)},
			build: func(t *testing.T, r *tuftest.Repo) (string, string, string) {
				return "v1", r.AddTarget("targets", "v1", []byte("m")), "targets"
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tuftest.NewRepo(t, gun, tc.opts...)
			tag, digest, role := tc.build(t, r)
			srv := tuftest.Serve(t, gun, r.Publish())
			got := oracle.Resolve(context.Background(), srv.URL, gun, tag)
			if strings.Count(role, "/") > 1 {
				// docker's rule refuses tags from any other delegation; still, notary must have
				// loaded the trust data and found the tag there.
				if got.Accepted || !got.NotSigned || got.Role != role {
					t.Fatalf("oracle: %+v, want refusal naming role %s", got, role)
				}
				return
			}
			if !got.Accepted || got.Digest != digest || got.Role != role {
				t.Fatalf("oracle: %+v, want %s from %s", got, digest, role)
			}
		})
	}
}

// TestNotaryFollowsTuftestRotation: a client that trusted root v1 must accept v3 through the
// chain 2.root.json, 3.root.json, each cross-signed by its predecessor.
func TestNotaryFollowsTuftestRotation(t *testing.T) {
	const gun = "example.com/rot"
	r := tuftest.NewRepo(t, gun)
	r.AddTarget("targets", "v1", []byte("a"))
	srv := tuftest.Serve(t, gun, r.Publish())
	c := oracle.New(nil, oracle.Pinning{})
	if got := c.Resolve(context.Background(), srv.URL, gun, "v1"); !got.Accepted {
		t.Fatalf("before rotation: %+v", got)
	}
	r.RotateRoot()
	r.Publish()
	r.RotateRoot()
	want := r.AddTarget("targets", "v1", []byte("b"))
	srv.Set(gun, r.Publish())
	if got := c.Resolve(context.Background(), srv.URL, gun, "v1"); !got.Accepted || got.Digest != want {
		t.Fatalf("after two rotations: %+v, want %s", got, want)
	}
	if srv.Count(gun+"/2.root.json") != 1 {
		t.Errorf("notary did not walk the root chain: %v", srv.Requests())
	}
}

// TestNotaryPinsTuftestRootKeyID: trust pinning names root certificate key IDs; tuftest's must be
// what notary computes.
func TestNotaryPinsTuftestRootKeyID(t *testing.T) {
	const gun = "example.com/pin"
	r := tuftest.NewRepo(t, gun)
	want := r.AddTarget("targets", "v1", []byte("a"))
	srv := tuftest.Serve(t, gun, r.Publish())
	c := oracle.New(nil, oracle.Pinning{Certs: map[string][]string{gun: r.RootKeyIDs()}, DisableTOFU: true})
	if got := c.Resolve(context.Background(), srv.URL, gun, "v1"); !got.Accepted || got.Digest != want {
		t.Fatalf("pinned: %+v", got)
	}
	other := oracle.New(nil, oracle.Pinning{Certs: map[string][]string{gun: {strings.Repeat("ab", 32)}}})
	if got := other.Resolve(context.Background(), srv.URL, gun, "v1"); got.Accepted {
		t.Fatalf("wrong pin accepted: %+v", got)
	}
}
