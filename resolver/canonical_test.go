package resolver

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
)

// cjsonCanonical is the multi-pass form canonicalSigned replaces: decode into generic values,
// then cjson.EncodeCanonical (which marshals, decodes and encodes again).
func cjsonCanonical(raw []byte) ([]byte, error) {
	var decoded any
	if err := json.Unmarshal(raw, &decoded); err != nil {
		return nil, err
	}
	return cjson.EncodeCanonical(decoded)
}

// FuzzCanonicalSigned: the one-pass canonical form is cjson's, byte for byte, and refuses what
// cjson refuses: a difference would make a signature verify here that notary refuses (or the
// reverse).
func FuzzCanonicalSigned(f *testing.F) {
	for _, s := range []string{
		`{"b":1,"a":[true,false,null]}`, `{"s":"<&>\u2028\u0001é\\\""}`, `{"n":1.0}`, `{"n":1e3}`,
		`{"n":1.5}`, `{"n":-0}`, `{"n":9223372036854775807}`, `{"n":9223372036854775808}`,
		`{"n":1e21}`, `{"n":1e20}`, `{"n":1e-7}`, `{"a":{"z":1,"y":{"b":2,"a":1}}}`, `{"a":1,"a":2}`,
		"{\"\xff\":\"\xfe\"}", `[]`, `"x"`, `null`, `not json`,
		`{"\u0061":1,"a":2,"b\"":3,"b":4}`, ` { "a" : [ 1 , {"c":2,"b":[{"y":1,"x":"\ud800"}]} ] , "\/":0 } `,
		`{"n":123456789012345,"m":1234567890123456,"o":-123456789012345,"p":0,"q":-0.0}`,
		`[[[[{"b":[],"a":{}}]]]]`, `{"a":"x\u0000y","b":"\ud83d\ude00"}`, `{"a":1}x`, `{"a":1e400}`,
	} {
		f.Add([]byte(s))
	}
	for _, path := range []string{dirApp + "/root.json", dirApp + "/targets.json", dirAlpine + "/snapshot.json"} {
		if raw, err := os.ReadFile(path); err == nil {
			if env, err := parseEnvelope(raw); err == nil {
				f.Add([]byte(env.Signed))
			}
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := canonicalSigned(raw)
		want, werr := cjsonCanonical(raw)
		if (err != nil) != (werr != nil) || string(got) != string(want) {
			t.Fatalf("canonicalSigned(%q) = %q, %v; cjson gives %q, %v", raw, got, err, want, werr)
		}
		sum, err := canonicalDigest(raw)
		if (err != nil) != (werr != nil) || werr == nil && sum != sha256.Sum256(want) {
			t.Fatalf("canonicalDigest(%q) = %x, %v; cjson's form hashes to %x, %v", raw, sum, err, sha256.Sum256(want), werr)
		}
	})
}

// TestCanonicalLarge: documents whose arrays and objects are indexed (minSpan and over), nested
// deep, with members out of order and duplicated, hash and write as cjson does.
func TestCanonicalLarge(t *testing.T) {
	var deep strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&deep, `{"z%d":[1,{"b":"%s","a":2}],"y":`, i%7, strings.Repeat("x", i%40))
	}
	deep.WriteString(`null`)
	deep.WriteString(strings.Repeat("}", 3000))
	var wide strings.Builder
	wide.WriteString(`{"targets":{`)
	for i := range 5000 {
		if i > 0 {
			wide.WriteString(",")
		}
		fmt.Fprintf(&wide, `"tag-%d":{"length":%d,"hashes":{"sha256":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},"custom":{"k":[%d]}}`, (i*7919)%5000, i, i)
	}
	wide.WriteString(`},"_type":"Targets","version":1}`)
	for _, raw := range []string{deep.String(), wide.String()} {
		want, err := cjsonCanonical([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		got, err := canonicalSigned([]byte(raw))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("canonicalSigned differs from cjson (%v)", err)
		}
		if sum, err := canonicalDigest([]byte(raw)); err != nil || sum != sha256.Sum256(want) {
			t.Fatalf("canonicalDigest differs from cjson's form (%v)", err)
		}
	}
}
