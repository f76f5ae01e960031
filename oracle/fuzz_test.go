package oracle_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
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
		`{"_type":"Targets",` + exp + `,"targets":{"v1":{"hashes":{"sha256":"/ty6mHZUMhD+3LqYdlQyEP7cuph2VDIQ/ty6mHZUMhA="},"length":1}},` + tgt + `,"version":1}`,
		`{"_type":"Targets",` + exp + `,"t\u0061rgets":{"v1":{"hashes":{"sha256":"/ty6mHZUMhD+3LqYdlQyEP7cuph2VDIQ/ty6mHZUMhA="},"length":1}},` + tgt + `,"version":1}`,
		`{"_type":"Targets",` + exp + `,"targets":{"v3":{"hashes":{"sha256":"/ty6mHZUMhD+3LqYdlQyEP7cuph2VDIQ/ty6mHZUMhA="},"length":9007199254740993}},"version":1}`,
		`{"_type":"Targets",` + exp + `,"targets":{"v3":{"hashes":{"sha256":"/ty6mHZUMhD+3LqYdlQyEP7cuph2VDIQ/ty6mHZUMhA="},"length":-0,"custom":{"n":-0,"m":20000000000000007}}},"version":1}`,
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
		refused := refusedByChoice(signed)
		for _, tag := range []string{"v3", "v1"} {
			ov := oracleVerdict(o.Resolve(ctx, srv.URL, gun, tag))
			rv := resolverVerdict(ctx, rc, gun, tag)
			if refused != "" {
				if rv.class != "fail" {
					t.Errorf("%s: signed section has %s: trustgate %v, want a refusal (notary+docker %v)", tag, refused, rv, ov)
				}
				continue
			}
			if ov.class != rv.class || ov.digest != rv.digest {
				t.Errorf("%s: disagree: notary+docker %v, trustgate %v", tag, ov, rv)
			}
		}
	})
}

// refusedByChoice names what trustgate refuses in a signed section that notary may accept,
// because its canonical form (what is signed) does not decide what decoding it gives: a key
// twice in one object (notary merges an earlier map into the later, signed one), an integer that
// a float64 does not hold exactly (signed as the float64, decoded exactly). "" if neither.
func refusedByChoice(signed []byte) string {
	if !json.Valid(signed) {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(signed))
	dec.UseNumber()
	var walk func() string
	walk = func() string {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		switch tok := tok.(type) {
		case json.Number:
			if strings.ContainsAny(string(tok), ".eE") {
				return ""
			}
			f, _ := strconv.ParseFloat(string(tok), 64)
			if n, err := strconv.ParseInt(string(tok), 10, 64); err != nil || f != float64(n) || f >= 1<<63 || int64(f) != n {
				return "the inexact integer " + string(tok)
			}
		case json.Delim:
			seen := map[string]bool{}
			for dec.More() {
				if tok == '{' {
					k, _ := dec.Token()
					if seen[k.(string)] {
						return fmt.Sprintf("the key %q twice", k)
					}
					seen[k.(string)] = true
				}
				if why := walk(); why != "" {
					return why
				}
			}
			_, _ = dec.Token()
		}
		return ""
	}
	return walk()
}
