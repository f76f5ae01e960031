package oracle_test

import (
	"context"
	"sort"
	"testing"

	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/oracle"
	"github.com/trustgate/trustgate/resolver"
)

// FuzzDifferential replaces one file of the real notary-made fixture with fuzzed bytes and
// requires trustgate's resolver and notary+docker to reach the same verdict on every tag.
// The fixture is fixed (unlike tuftest output), so corpus entries stay meaningful; it is
// judged against the real clock, so after its expiry (2026-12-07) both sides must refuse.
func FuzzDifferential(f *testing.F) {
	const fixtureGUN = "localhost:5000/test/app"
	base := tuftest.LoadDir(f, "testdata/delegations-and-rotations")
	names := make([]string, 0, len(base))
	for name := range base {
		names = append(names, name)
	}
	sort.Strings(names)
	for i, name := range names {
		f.Add(uint8(i), base[name])
	}
	f.Fuzz(func(t *testing.T, which uint8, content []byte) {
		files := make(map[string][]byte, len(base))
		for k, v := range base {
			files[k] = v
		}
		name := names[int(which)%len(names)]
		files[name] = content
		srv := tuftest.Serve(t, fixtureGUN, files)
		ctx := context.Background()
		o := oracle.New(nil, oracle.Pinning{})
		rc, err := resolver.NewClient(resolver.Config{ServerURL: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range []string{"v1", "v3", "v4"} {
			ov := oracleVerdict(o.Resolve(ctx, srv.URL, fixtureGUN, tag))
			rv := resolverVerdict(ctx, rc, fixtureGUN, tag)
			if ov.class != rv.class || ov.digest != rv.digest {
				t.Errorf("%s replaced, %s: disagree: notary+docker %v, trustgate %v", name, tag, ov, rv)
			}
		}
	})
}

// FuzzDifferentialSigned makes the "signed" object of targets/releases whatever the fuzzer
// says and signs it validly (over the canonical form of its decoding, as notary computes it),
// so both sides get past hashes and signatures and must agree on how they read the JSON:
// duplicate keys, key case, escapes, numbers, missing or mistyped fields.
func FuzzDifferentialSigned(f *testing.F) {
	exp := `"expires":"2099-01-01T00:00:00Z"`
	tgt := `"targets":{"v3":{"hashes":{"sha256":"/ty6mHZUMhD+3LqYdlQyEP7cuph2VDIQ/ty6mHZUMhA="},"length":4321}}`
	for _, seed := range []string{
		`{"_type":"Targets","delegations":{"keys":{},"roles":[]},` + exp + `,` + tgt + `,"version":1}`,
		`{"_type":"Targets",` + exp + `,` + tgt + `,"version":1}`,
		`{"_type":"Targets","delegations":{"keys":{},"roles":[]},` + exp + `,` + tgt + `,"version":1,"version":0}`,
		`{"_type":"Targets","Version":3,` + exp + `,` + tgt + `,"version":1}`,
		`{"_type":"Targets",` + exp + `,"targets":{"v3":{"hashes":{"sha256":"/ty6mHZUMhD+3LqYdlQyEP7cuph2VDIQ/ty6mHZUMhA="},"length":4321.0}},"version":1}`,
		`{"_type":"Targets",` + exp + `,"targets":{"v\u0033":{"hashes":{"sha256":"/ty6mHZUMhD+3LqYdlQyEP7cuph2VDIQ/ty6mHZUMhA=","SHA256":"AAAA"},"length":1}},"version":1}`,
		`{"_type":"Targets","expires":"2099-01-01T00:00:00+01:00",` + tgt + `,"version":1e0}`,
		`{"_type":"Targets","expires":null,` + tgt + `,"version":1}`,
		`{"_type":"Targets",` + exp + `,"targets":null,"version":1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, signed []byte) {
		r := tuftest.NewRepo(t, gun)
		basic(t, r)
		r.AddTarget("targets", "v3", []byte("top v3"))
		r.SetSignedRaw("targets/releases", signed)
		srv := tuftest.Serve(t, gun, r.Publish())
		ctx := context.Background()
		o := oracle.New(nil, oracle.Pinning{})
		rc, err := resolver.NewClient(resolver.Config{ServerURL: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range []string{"v3", "v1"} {
			ov := oracleVerdict(o.Resolve(ctx, srv.URL, gun, tag))
			rv := resolverVerdict(ctx, rc, gun, tag)
			if ov.class != rv.class || ov.digest != rv.digest {
				t.Errorf("%s: disagree: notary+docker %v, trustgate %v", tag, ov, rv)
			}
		}
	})
}
