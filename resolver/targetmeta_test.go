package resolver

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
)

// referenceTarget is what target.UnmarshalJSON replaces: encoding/json decoding notary's
// FileMeta into generic maps, then keeping the length and a well-formed sha256.
func referenceTarget(b []byte) (target, error) {
	var m struct {
		Length int64             `json:"length"`
		Hashes map[string][]byte `json:"hashes"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return target{}, err
	}
	t := target{size: m.Length}
	if s := m.Hashes["sha256"]; len(s) == len(t.sum) {
		copy(t.sum[:], s)
		t.ok = true
	}
	return t, nil
}

var targetMetaSeeds = []string{
	`{"hashes":{"sha256":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},"length":1}`,
	`{"hashes":{"sha256":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=","sha512":"z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="},"length":9223372036854775807,"custom":{"a":[1,{"b":"}"}]}}`,
	`{"hashes":{"sha256":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},"hashes":{"sha512":"eA=="}}`,
	`{"hashes":{"sha256":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},"hashes":null}`,
	`{"hashes":{"sha256":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},"hashes":{"sha256":null}}`,
	`{"HASHES":{"sha256":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},"Length":2,"lenGTH":null}`,
	`{"haſheſ":{"SHA256":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},"\u006cength":3}`,
	`{"hashes":{"sha256":[227,176,196,66,152,252,28,20,154,251,244,200,153,111,185,36,39,174,65,228,100,155,147,76,164,149,153,27,120,82,184,85]}}`,
	`{"hashes":{"sha256":[256]}}`, `{"hashes":{"sha256":[null,-1]}}`, `{"hashes":{"sha256":"!!"}}`,
	`{"hashes":{"sha256":"47DEQpj8HBSa+/TImW+5\r\nJCeuQeRkm5NMpJWZG3hSuFU="}}`, `{"hashes":{"sha256":"47DEQpj8HBSa+\/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}}`,
	`{"length":1.0}`, `{"length":"1"}`, `{"length":-0}`, `{"length":1e2}`, `{"length":9223372036854775808}`,
	`{"length":true}`, `{"hashes":[]}`, `{"hashes":{"sha256":{}}}`, `{"hashes":"x"}`,
	`null`, `"x"`, `1`, `[]`, `{}`, ` { "length" : 5 , "hashes" : { } } `,
}

// FuzzTargetMeta: reading a target's FileMeta in place decides what encoding/json does, on its
// own and inside a targets map.
func FuzzTargetMeta(f *testing.F) {
	for _, s := range targetMetaSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		want, werr := referenceTarget(b)
		var got target
		err := got.UnmarshalJSON(b)
		if (err != nil) != (werr != nil) || err == nil && got != want {
			t.Fatalf("UnmarshalJSON(%q) = %+v, %v; encoding/json gives %+v, %v", b, got, err, want, werr)
		}
		doc := []byte(`{"t":` + string(b) + `}`)
		var m map[string]target
		err = json.Unmarshal(doc, &m)
		if (err != nil) != (werr != nil) || err == nil && m["t"] != want {
			t.Fatalf("in a map, %q = %+v, %v; encoding/json gives %+v, %v", b, m["t"], err, want, werr)
		}
		// As a whole "targets" (b itself, then b added to a first one), targetMap decodes as
		// encoding/json decodes a map[string]target.
		for _, doc := range [][]byte{
			[]byte(`{"targets":` + string(b) + `}`),
			[]byte(`{"targets":{"a":{"length":1},"t":null},"targets":` + string(b) + `}`),
		} {
			var got struct {
				Targets targetMap `json:"targets"`
			}
			var want struct {
				Targets map[string]target `json:"targets"`
			}
			err, werr := json.Unmarshal(doc, &got), json.Unmarshal(doc, &want)
			if (err != nil) != (werr != nil) || err == nil && (!maps.Equal(got.Targets, want.Targets) || (got.Targets == nil) != (want.Targets == nil)) {
				t.Fatalf("targets %s = %v, %v; encoding/json gives %v, %v", doc, got.Targets, err, want.Targets, werr)
			}
		}
	})
}

// TestTargetMetaAllocs pins what parsing a large targets file costs per tag: its name, and
// nothing else of its own (no FileMeta map, no hash slice, no growth of the targets map).
func TestTargetMetaAllocs(t *testing.T) {
	const n = 2000
	var doc strings.Builder
	doc.WriteString(`{"signed":{"_type":"Targets","expires":"2030-01-01T00:00:00Z","version":1,"targets":{`)
	for i := range n {
		if i > 0 {
			doc.WriteString(",")
		}
		fmt.Fprintf(&doc, `"tag-%d":{"hashes":{"sha256":"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},"length":%d}`, i, i)
	}
	doc.WriteString(`}},"signatures":[]}`)
	env, err := parseEnvelope([]byte(doc.String()))
	if err != nil {
		t.Fatal(err)
	}
	if tg, err := parseTargets(env, roleTargets); err != nil || len(tg.Targets) != n || !tg.Targets["tag-7"].ok || tg.Targets["tag-7"].size != 7 {
		t.Fatalf("parsed %+v, %v", tg, err)
	}
	allocs := testing.AllocsPerRun(5, func() {
		if _, err := parseTargets(env, roleTargets); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.2f allocations per target", allocs/n)
	// Decoding each FileMeta into a map of fresh slices, into a map grown entry by entry, took 14.
	if perTag := allocs / n; perTag > 1.5 {
		t.Errorf("%.1f allocations per target, want at most 1.5", perTag)
	}
}
