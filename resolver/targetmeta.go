package resolver

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// UnmarshalJSON reads notary's FileMeta ({"length": n, "hashes": {alg: base64}, "custom": …})
// keeping only the length and the sha256. It decides exactly as encoding/json decoding
// struct{Length int64 `json:"length"`; Hashes map[string][]byte `json:"hashes"`} would
// (FuzzTargetMeta holds the two together: field names folded, the last duplicate winning,
// duplicate "hashes" objects merged, a null "hashes" clearing them, []byte as base64 or as an
// array of bytes, every type mismatch an error), but reads b in place: a targets file holds one
// FileMeta per tag, and decoding each into a map of fresh slices made most of the garbage of
// loading a large one. b is a valid JSON value (encoding/json checked the whole file first).
func (t *target) UnmarshalJSON(b []byte) error {
	d := metaDecoder{raw: b}
	i := skipSpace(b, 0)
	*t = target{}
	switch b[i] {
	case 'n':
		return nil
	case '{':
	default:
		return errors.New("target meta is not an object")
	}
	hasSHA, shaOK := false, false // the "sha256" entry of hashes: present; 32 bytes (in t.sum)
	err := d.members(i, func(key []byte, v int) error {
		switch {
		case foldEqual(key, "LENGTH"):
			return d.int64(v, &t.size)
		case foldEqual(key, "HASHES"):
			if b[v] == 'n' {
				hasSHA = false // null empties the map
				return nil
			}
			if b[v] != '{' {
				return errors.New("hashes is not an object")
			}
			return d.members(v, func(alg []byte, hv int) error {
				h, err := d.bytes(hv)
				if err != nil {
					return err
				}
				if string(alg) == "sha256" {
					hasSHA, shaOK = true, len(h) == len(t.sum)
					if shaOK {
						copy(t.sum[:], h)
					}
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return err
	}
	t.ok = hasSHA && shaOK
	if !t.ok {
		t.sum = [32]byte{}
	}
	return nil
}

// metaDecoder reads values of valid JSON raw in place.
type metaDecoder struct {
	raw     []byte
	scratch [64]byte // a decoded sha256 (or anything that fits) needs no allocation
}

// members calls f with each member's decoded key and the offset of its value, in order, for the
// object at raw[i].
func (d *metaDecoder) members(i int, f func(key []byte, v int) error) error {
	raw := d.raw
	i = skipSpace(raw, i+1)
	for raw[i] != '}' {
		if raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
		ke := stringEnd(raw, i)
		key, err := unquote(raw[i:ke])
		if err != nil {
			return err
		}
		v := skipSpace(raw, skipSpace(raw, ke)+1) // past the colon
		if err := f(key, v); err != nil {
			return err
		}
		i = skipSpace(raw, skipValue(raw, v))
	}
	return nil
}

// int64 decodes the value at raw[v] into *n as encoding/json does into an int64: null leaves it,
// an integer in range sets it, anything else is an error.
func (d *metaDecoder) int64(v int, n *int64) error {
	raw := d.raw
	switch c := raw[v]; {
	case c == 'n':
		return nil
	case c == '-' || c >= '0' && c <= '9':
		e := skipValue(raw, v)
		x, err := strconv.ParseInt(string(raw[v:e]), 10, 64)
		if err != nil {
			return fmt.Errorf("length %s: %w", raw[v:e], err)
		}
		*n = x
		return nil
	}
	return errors.New("length is not a number")
}

// bytes decodes the value at raw[v] as encoding/json does into a []byte: null is nil, a string
// is standard base64, an array holds numbers 0-255 (or null, 0). The result may be d's scratch.
func (d *metaDecoder) bytes(v int) ([]byte, error) {
	raw := d.raw
	switch raw[v] {
	case 'n':
		return nil, nil
	case '"':
		s, err := unquote(raw[v:stringEnd(raw, v)])
		if err != nil {
			return nil, err
		}
		out := d.scratch[:0]
		if n := base64.StdEncoding.DecodedLen(len(s)); n > len(d.scratch) {
			out = make([]byte, n)
		}
		n, err := base64.StdEncoding.Decode(out[:cap(out)], s)
		if err != nil {
			return nil, err
		}
		return out[:n], nil
	case '[':
		out := d.scratch[:0]
		i := skipSpace(raw, v+1)
		for raw[i] != ']' {
			if raw[i] == ',' {
				i = skipSpace(raw, i+1)
			}
			e := skipValue(raw, i)
			var x uint64
			switch c := raw[i]; {
			case c == 'n':
			case c == '-' || c >= '0' && c <= '9':
				var err error
				if x, err = strconv.ParseUint(string(raw[i:e]), 10, 8); err != nil {
					return nil, fmt.Errorf("byte %s: %w", raw[i:e], err)
				}
			default:
				return nil, errors.New("byte array element is not a number")
			}
			out = append(out, byte(x))
			i = skipSpace(raw, e)
		}
		return out, nil
	}
	return nil, errors.New("hash is not a string")
}

// skipValue returns the offset after the value at raw[i] (raw is valid JSON).
func skipValue(raw []byte, i int) int {
	switch raw[i] {
	case '"':
		return stringEnd(raw, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch raw[i] {
			case '"':
				i = stringEnd(raw, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for ; i < len(raw); i++ {
		switch raw[i] {
		case ',', ']', '}', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}

// unquote decodes the JSON string q as encoding/json does; without escapes or invalid UTF-8
// that is q's inside itself.
func unquote(q []byte) ([]byte, error) {
	if plainString(q) {
		return q[1 : len(q)-1], nil
	}
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// foldEqual reports whether key matches the upper-case ASCII field name as encoding/json's
// foldName compares them: ASCII letters by case, other runes by the smallest rune of their
// case-folding orbit (so "ſ" matches S and the Kelvin sign K).
func foldEqual(key []byte, name string) bool {
	j := 0
	for i := 0; i < len(key); {
		c := key[i]
		if c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			if j >= len(name) || name[j] != c {
				return false
			}
			i++
			j++
			continue
		}
		r, n := utf8.DecodeRune(key[i:])
		var buf [utf8.UTFMax]byte
		m := utf8.EncodeRune(buf[:], foldRune(r))
		if j+m > len(name) || string(buf[:m]) != name[j:j+m] {
			return false
		}
		i += n
		j += m
	}
	return j == len(name)
}

// foldRune is encoding/json's: the smallest rune that simple case folding maps r to.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// targetMap is a targets role's "targets", decoded exactly as encoding/json decodes a
// map[string]target (null clears it, a second "targets" adds to the first, a later duplicate
// name replaces an earlier one; FuzzTargetMeta holds the two together), but made at its final
// size after counting the names, rather than grown (and rehashed) entry by entry.
type targetMap map[string]target

func (m *targetMap) UnmarshalJSON(b []byte) error {
	i := skipSpace(b, 0)
	switch b[i] {
	case 'n':
		*m = nil
		return nil
	case '{':
	default:
		return errors.New("targets is not an object")
	}
	d := metaDecoder{raw: b}
	if *m == nil {
		n := 0
		if err := d.members(i, func([]byte, int) error { n++; return nil }); err != nil {
			return err
		}
		*m = make(targetMap, n)
	}
	return d.members(i, func(name []byte, v int) error {
		var t target
		if err := t.UnmarshalJSON(b[v:skipValue(b, v)]); err != nil {
			return err
		}
		(*m)[string(name)] = t
		return nil
	})
}
