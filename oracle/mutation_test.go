package oracle_test

import (
	"context"
	"fmt"
	"sort"
	"testing"

	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/oracle"
	"github.com/trustgate/trustgate/resolver"
)

// TestDifferentialMutations flips single bits across every published file and requires the
// resolver and notary to agree on each result; whatever the flip, neither may accept a digest
// other than the signed one. It reaches parsing and verification paths no hand-written case
// names (key IDs, base64, numbers, structure keys).
func TestDifferentialMutations(t *testing.T) {
	r := tuftest.NewRepo(t, gun)
	basic(t, r)
	want := map[string]string{}
	files := r.Publish()
	for tag, content := range map[string]string{"v1": "manifest v1", "v2": "manifest v2"} {
		want[tag] = "sha256:" + tuftest.SHA256Hex([]byte(content))
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)

	const perFile = 37 // positions per file, spread over its length
	ctx := context.Background()
	cases, accepted := 0, 0
	for _, name := range names {
		orig := files[name]
		for i := 0; i < perFile; i++ {
			pos := (i*len(orig))/perFile + i%7
			if pos >= len(orig) {
				continue
			}
			mutated := make(map[string][]byte, len(files))
			for k, v := range files {
				mutated[k] = v
			}
			b := append([]byte(nil), orig...)
			b[pos] ^= 1 << (i % 7)
			mutated[name] = b
			// A fresh server per mutation: one that remembered earlier bytes would answer the
			// checksum URL with the original file and hide the flip.
			g := gun
			srv := tuftest.Serve(t, g, mutated)
			label := fmt.Sprintf("%s@%d", name, pos)
			o := oracle.New(nil, oracle.Pinning{})
			rc, err := resolver.NewClient(resolver.Config{ServerURL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			for _, tag := range []string{"v1", "v2"} {
				ov := oracleVerdict(o.Resolve(ctx, srv.URL, g, tag))
				rv := resolverVerdict(ctx, rc, g, tag)
				cases++
				for side, v := range map[string]verdict{"notary": ov, "trustgate": rv} {
					if v.class == "accept" && v.digest != want[tag] {
						t.Errorf("%s %s: %s accepted %s, signed %s", label, tag, side, v.digest, want[tag])
					}
				}
				if ov.class == "accept" {
					accepted++
				}
				if ov.class != rv.class || ov.digest != rv.digest {
					t.Errorf("%s %s: disagree: notary+docker %v, trustgate %v", label, tag, ov, rv)
				}
			}
			srv.Close()
		}
	}
	t.Logf("%d verdicts, %d accepted (flips in 1.root.json, which nobody fetches, change nothing)", cases, accepted)
	if cases < 300 {
		t.Errorf("only %d mutations judged", cases)
	}
}
