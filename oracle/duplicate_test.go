package oracle_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/trustgate/trustgate/internal/tuftest"
	"github.com/trustgate/trustgate/oracle"
	"github.com/trustgate/trustgate/resolver"
)

// TestDuplicateKeyInjection is an attack notary v0.7.0 (and so docker) falls for and trustgate
// must not: whoever holds the snapshot key (notary-server, by default) puts a second "targets"
// member before the signed one. Notary's canonical form keeps the last member, so the targets
// key's signature still verifies, but decoding merges the first map into the second: a tag
// nobody signed resolves. Trustgate refuses a signed section that names a key twice; the tags
// that were signed fail too (the file is not what was signed), as for any tampered file.
func TestDuplicateKeyInjection(t *testing.T) {
	const evilDigest = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	for _, tc := range []struct{ role, inject string }{
		{"targets", `"targets":{"evil":{"hashes":{"sha256":"/ty6mHZUMhD+3LqYdlQyEP7cuph2VDIQ/ty6mHZUMhA="},"length":1}},`},
		{"targets/releases", `"targets":{"evil":{"hashes":{"sha256":"/ty6mHZUMhD+3LqYdlQyEP7cuph2VDIQ/ty6mHZUMhA="},"length":1}},`},
		{"targets/releases", `"t\u0061rgets":{"evil":{"hashes":{"sha256":"/ty6mHZUMhD+3LqYdlQyEP7cuph2VDIQ/ty6mHZUMhA="},"length":1}},`},
	} {
		t.Run(tc.role+" "+tc.inject[:12], func(t *testing.T) {
			r := tuftest.NewRepo(t, gun)
			basic(t, r)
			r.MutateFile(tc.role, func(b []byte) []byte {
				return bytes.Replace(b, []byte(`{"signed":{`), []byte(`{"signed":{`+tc.inject), 1)
			})
			srv := tuftest.Serve(t, gun, r.Publish())
			ctx := context.Background()
			ov := oracleVerdict(oracle.New(nil, oracle.Pinning{}).Resolve(ctx, srv.URL, gun, "evil"))
			if ov.class != "accept" || ov.digest != evilDigest {
				t.Fatalf("notary+docker: %v; the attack no longer works on notary, so this test tests nothing", ov)
			}
			rc, err := resolver.NewClient(resolver.Config{ServerURL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			for _, tag := range []string{"evil", "v1", "v2"} {
				if rv := resolverVerdict(ctx, rc, gun, tag); rv.class != "fail" {
					t.Errorf("%s: trustgate %v, want a refusal of the targets file", tag, rv)
				}
			}
		})
	}
}
