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
	base := loadFixture(f, "testdata/delegations-and-rotations")
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
