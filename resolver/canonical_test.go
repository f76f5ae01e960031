package resolver

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
)

// cjsonCanonical is the multi-pass form canonicalSigned replaces, with notary's rules where
// cjson's differ: decode into generic values (numbers kept as written), refuse a key given twice
// in an object, write each number as notary's canonical encoder writes the float64 it decodes to
// (the digits of int64(f): -0 is 0, 2^53+1 is 2^53; fractions refused), refusing an integer
// the float64 changes and magnitudes of 2^63 on; then cjson.EncodeCanonical.
func cjsonCanonical(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var decoded any
	if err := dec.Decode(&decoded); err != nil {
		return nil, err
	}
	if dec.More() || !json.Valid(raw) {
		return nil, errors.New("not one JSON value")
	}
	if err := refDuplicates(json.NewDecoder(bytes.NewReader(raw))); err != nil {
		return nil, err
	}
	decoded, err := refNumbers(decoded)
	if err != nil {
		return nil, err
	}
	return cjson.EncodeCanonical(decoded)
}

// refDuplicates reads one value from dec and fails if an object in it names a key twice.
func refDuplicates(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('['):
		for dec.More() {
			if err := refDuplicates(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token()
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			if seen[k.(string)] {
				return fmt.Errorf("duplicate key %q", k)
			}
			seen[k.(string)] = true
			if err := refDuplicates(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token()
	}
	return err
}

// refNumbers replaces every json.Number in v by the digits notary writes for it.
func refNumbers(v any) (any, error) {
	var err error
	switch v := v.(type) {
	case json.Number:
		f, perr := strconv.ParseFloat(string(v), 64)
		if perr != nil || math.Floor(f) != f || f >= 1<<63 || f < -(1<<63) {
			return nil, fmt.Errorf("number %s", v)
		}
		s := strconv.FormatInt(int64(f), 10)
		if n, ierr := strconv.ParseInt(string(v), 10, 64); ierr == nil && strconv.FormatInt(n, 10) != s {
			return nil, fmt.Errorf("integer %s is %s as a float64", v, s)
		} else if ierr != nil && !strings.ContainsAny(string(v), ".eE") {
			return nil, fmt.Errorf("integer %s out of range", v)
		}
		return json.Number(s), nil
	case []any:
		for i := range v {
			if v[i], err = refNumbers(v[i]); err != nil {
				return nil, err
			}
		}
	case map[string]any:
		for k := range v {
			if v[k], err = refNumbers(v[k]); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
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
		`{"n":9007199254740993}`, `{"n":20000000000000007,"m":-20000000000000008}`, `{"n":-9223372036854775808}`,
		`{"n":-0,"m":-0e3,"o":0.0}`, `{"t":{"x":1},"u":0,"t":{"y":2}}`, `{"a":1,"\u0061":2}`, `{"a\u0000":1,"a":2,"\u0061":3}`,
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

// TestCanonicalNotaryForms: numbers are written as notary writes the float64 they decode to,
// and what notary signs in a form that does not decide what decoding gives is refused.
func TestCanonicalNotaryForms(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"n":-0}`, `{"n":0}`},
		{`{"n":-0.0,"m":0e5}`, `{"m":0,"n":0}`},
		{`{"n":9007199254740992,"m":-9007199254740992}`, `{"m":-9007199254740992,"n":9007199254740992}`},
		{`{"n":2e16}`, `{"n":20000000000000000}`},
		{`{"n":20000000000000008}`, `{"n":20000000000000008}`},
		{`{"n":-9223372036854775807}`, ``}, // -2^63 as a float64, which it is not
		{`{"n":-9223372036854775808}`, `{"n":-9223372036854775808}`},
		{`{"n":9007199254740993}`, ``},
		{`{"n":20000000000000007}`, ``},
		{`{"n":9223372036854775807}`, ``},
		{`{"n":1e19}`, ``},
		{`{"targets":{"evil":{}},"version":1,"targets":{"v1":{}}}`, ``},
		{`{"a":{"b":1,"b":1}}`, ``},
		{`{"a":1,"\u0061":1}`, ``},
		{`{"a":[{"x":1},{"x":1,"y":{"z":[],"z":[]}}]}`, ``},
		{`{"a":{"x":1},"b":{"x":1}}`, `{"a":{"x":1},"b":{"x":1}}`},
	} {
		got, err := canonicalSigned([]byte(tc.in))
		if tc.want == "" {
			if err == nil {
				t.Errorf("canonicalSigned(%s) = %s, want an error", tc.in, got)
			}
			if _, err := canonicalDigest([]byte(tc.in)); err == nil {
				t.Errorf("canonicalDigest(%s): no error", tc.in)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("canonicalSigned(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}
