package resolver

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"math"
	"slices"
	"sort"
	"strconv"
	"unicode/utf8"
)

// canonicalSigned returns the bytes signatures are made over: what notary's
// signed.VerifySignatures produces by decoding the signed object into generic values (numbers
// as float64) and re-encoding it with github.com/docker/go/canonical/json (FuzzCanonicalSigned
// holds the two together): keys sorted, no whitespace, strings raw except for '\' and '"',
// numbers as the int64 their float64 is. It refuses more than notary does, and only input
// whose canonical form does not say what decoding it gives: a key twice in one object
// (errDuplicateKey), an integer a float64 does not hold exactly (2^53+1 reads as 2^53+1 into
// a length but is signed as 2^53), a number of 2^63 or more, or under -2^63.
func canonicalSigned(raw []byte) ([]byte, error) {
	w := canonWriter{buf: make([]byte, 0, len(raw))}
	if err := writeCanonical(raw, &w); err != nil {
		return nil, err
	}
	return w.buf, nil
}

// canonicalDigest is the sha256 of canonicalSigned(raw), computed without holding the canonical
// form: what ECDSA and RSA signatures are checked against.
func canonicalDigest(raw []byte) ([32]byte, error) {
	var sum [32]byte
	w := canonWriter{buf: make([]byte, 0, min(canonFlush, len(raw)+1)), h: sha256.New()}
	if err := writeCanonical(raw, &w); err != nil {
		return sum, err
	}
	w.flush()
	w.h.Sum(sum[:0])
	return sum, nil
}

// canonFlush is how many canonical bytes a digest buffers before hashing them.
const canonFlush = 32 << 10

// canonWriter collects canonical bytes: all of them (h nil), or hashing them as it goes.
type canonWriter struct {
	buf []byte
	h   hash.Hash
}

func (w *canonWriter) write(b []byte) {
	if w.h != nil && len(w.buf)+len(b) > cap(w.buf) {
		w.flush()
		if len(b) > cap(w.buf) {
			w.h.Write(b)
			return
		}
	}
	w.buf = append(w.buf, b...)
}

func (w *canonWriter) writeByte(c byte) {
	if w.h != nil && len(w.buf) == cap(w.buf) {
		w.flush()
	}
	w.buf = append(w.buf, c)
}

func (w *canonWriter) flush() {
	w.h.Write(w.buf)
	w.buf = w.buf[:0]
}

// writeCanonical checks raw is JSON (encoding/json's grammar and nesting limit, as the decode
// notary does first) and writes its canonical form to w. It works on raw itself, holding no
// decoded tree and no copy: the end of every array and object is found in one pass first, so
// that an object's members can be gathered (keys and where their values sit in raw), sorted,
// and their values written in that order from raw, each byte visited a bounded number of times
// whatever the nesting.
func writeCanonical(raw []byte, w *canonWriter) error {
	if !json.Valid(raw) {
		var v any
		err := json.Unmarshal(raw, &v) // for its message
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return fmt.Errorf("%w: canonicalising signed section: %v", ErrInvalid, err)
	}
	if len(raw) > math.MaxInt32 {
		return fmt.Errorf("%w: canonicalising signed section: %d bytes", ErrInvalid, len(raw))
	}
	c := canonicalizer{raw: raw, w: w}
	c.indexContainers()
	if _, err := c.value(skipSpace(raw, 0)); err != nil {
		return fmt.Errorf("%w: canonicalising signed section: %v", ErrInvalid, err)
	}
	return nil
}

// canonicalizer writes the canonical form of valid JSON raw.
type canonicalizer struct {
	raw []byte
	w   *canonWriter
	// spans are the arrays and objects of at least minSpan bytes that are the value of an
	// object member (the only values skipped: arrays are written element by element), in the
	// order they open: where each starts and the offset after it. Smaller ones are scanned when
	// skipped.
	spans []span
	// gathered is a stack of the members of objects whose keys are out of order: each such
	// object being written holds the segment it appended, its values' above it; keys holds
	// their decoded keys.
	gathered []member
	keys     []byte
}

// member is one object member gathered for sorting: its decoded key keys[ks:ke] and its value
// raw[vs:ve].
type member struct {
	ks, ke, vs, ve int32
}

// span is where an array or object starts in raw and the offset after it.
type span struct{ start, end int32 }

// minSpan is the smallest array or object indexed. Skipping a smaller one rescans it: an
// object holds at most minSpan/5 levels of objects, so each byte is rescanned a bounded number
// of times whatever the nesting.
const minSpan = 32

// indexContainers fills spans (raw is valid JSON, so brackets pair up outside strings). It takes
// 8 bytes per indexed value: at most one per member (one per ':'), at most one per bracket.
func (c *canonicalizer) indexContainers() {
	raw := c.raw
	n := min(bytes.Count(raw, []byte(":")), bytes.Count(raw, []byte("{"))+bytes.Count(raw, []byte("[")))
	c.spans = make([]span, 0, n)
	type frame struct {
		span int // index into spans; -1: not indexed
		obj  bool
	}
	var open []frame
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '"':
			i = stringEnd(raw, i) - 1
		case '{', '[':
			f := frame{span: -1, obj: raw[i] == '{'}
			if len(open) > 0 && open[len(open)-1].obj {
				f.span = len(c.spans)
				c.spans = append(c.spans, span{start: int32(i)})
			}
			open = append(open, f)
		case '}', ']':
			f := open[len(open)-1]
			open = open[:len(open)-1]
			switch {
			case f.span < 0:
			case int(c.spans[f.span].start)+minSpan > i+1:
				c.spans = c.spans[:f.span] // small, and so is everything in it
			default:
				c.spans[f.span].end = int32(i + 1)
			}
		}
	}
}

// stringEnd returns the offset after the string whose opening quote is at raw[i].
func stringEnd(raw []byte, i int) int {
	for j := i + 1; ; {
		k := bytes.IndexAny(raw[j:], `"\`)
		j += k
		if raw[j] == '"' {
			return j + 1
		}
		j += 2 // a backslash and the byte it escapes
	}
}

func skipSpace(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r') {
		i++
	}
	return i
}

// end returns the offset after the value starting at raw[i].
func (c *canonicalizer) end(i int) int {
	if b := c.raw[i]; b == '{' || b == '[' {
		n := sort.Search(len(c.spans), func(k int) bool { return c.spans[k].start >= int32(i) })
		if n < len(c.spans) && c.spans[n].start == int32(i) {
			return int(c.spans[n].end)
		}
	}
	return skipValue(c.raw, i)
}

// value writes the value at raw[i] and returns the offset after it.
func (c *canonicalizer) value(i int) (int, error) {
	raw := c.raw
	switch raw[i] {
	case '"':
		e := stringEnd(raw, i)
		c.string(raw[i:e])
		return e, nil
	case '[':
		c.w.writeByte('[')
		i = skipSpace(raw, i+1)
		for n := 0; raw[i] != ']'; n++ {
			if n > 0 {
				c.w.writeByte(',')
				i = skipSpace(raw, i+1) // past the comma
			}
			var err error
			if i, err = c.value(i); err != nil {
				return 0, err
			}
			i = skipSpace(raw, i)
		}
		c.w.writeByte(']')
		return i + 1, nil
	case '{':
		return c.object(i)
	case 't', 'f', 'n':
		e := c.end(i)
		c.w.write(raw[i:e])
		return e, nil
	}
	e := c.end(i)
	if e-i <= 15 && digits(raw[i:e]) {
		c.w.write(raw[i:e]) // an integer float64 holds exactly, already in its canonical form
		return e, nil
	}
	f, err := strconv.ParseFloat(string(raw[i:e]), 64)
	if err != nil {
		return 0, fmt.Errorf("number %s: %w", raw[i:e], err)
	}
	var num [32]byte
	b, err := appendCanonicalNumber(num[:0], f)
	if err != nil {
		return 0, err
	}
	if lit := raw[i:e]; integer(lit) && !bytes.Equal(b, lit) && string(lit) != "-0" {
		return 0, fmt.Errorf("%w: integer %s is %s as a float64", errFloat, lit, b)
	}
	c.w.write(b)
	return e, nil
}

// object writes the object at raw[i] with its members sorted by decoded key, refusing a key
// given twice, and returns the offset after it. Members already in strictly increasing order (as
// notary writes them) are written as they come; only others are gathered and sorted.
func (c *canonicalizer) object(i int) (int, error) {
	sorted, n := true, 0
	var prev []byte
	e, err := c.members(i, func(key []byte, _, _ int) error {
		if n > 0 && bytes.Compare(prev, key) >= 0 {
			sorted = false
		}
		prev, n = key, n+1
		return nil
	})
	if err != nil {
		return 0, err
	}
	c.w.writeByte('{')
	defer c.w.writeByte('}')
	if sorted {
		n = 0
		_, err := c.members(i, func(key []byte, vs, _ int) error {
			return c.member(&n, key, vs)
		})
		return e, err
	}
	base, kbase := len(c.gathered), len(c.keys)
	defer func() { c.gathered, c.keys = c.gathered[:base], c.keys[:kbase] }()
	if _, err := c.members(i, func(key []byte, vs, ve int) error {
		m := member{ks: int32(len(c.keys)), vs: int32(vs), ve: int32(ve)}
		c.keys = append(c.keys, key...)
		m.ke = int32(len(c.keys))
		c.gathered = append(c.gathered, m)
		return nil
	}); err != nil {
		return 0, err
	}
	ms := c.gathered[base:]
	cmp := func(a, b member) int { return bytes.Compare(c.keys[a.ks:a.ke], c.keys[b.ks:b.ke]) }
	slices.SortStableFunc(ms, cmp)
	n = 0
	for k, m := range ms {
		if k+1 < len(ms) && cmp(ms[k+1], m) == 0 {
			return 0, fmt.Errorf("%w %q", errDuplicateKey, c.keys[m.ks:m.ke])
		}
		if err := c.member(&n, c.keys[m.ks:m.ke], int(m.vs)); err != nil {
			return 0, err
		}
	}
	return e, nil
}

// member writes one member of an object, the n-th so far.
func (c *canonicalizer) member(n *int, key []byte, vs int) error {
	if *n > 0 {
		c.w.writeByte(',')
	}
	*n++
	c.quoted(key)
	c.w.writeByte(':')
	_, err := c.value(vs)
	return err
}

// members calls f with each member of the object at raw[i], in order: its decoded key and where
// its value starts and ends. It returns the offset after the object.
func (c *canonicalizer) members(i int, f func(key []byte, vs, ve int) error) (int, error) {
	raw := c.raw
	i = skipSpace(raw, i+1)
	for raw[i] != '}' {
		if raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
		ke := stringEnd(raw, i)
		key, err := unquote(raw[i:ke])
		if err != nil {
			return 0, err
		}
		vs := skipSpace(raw, skipSpace(raw, ke)+1) // past the colon
		ve := c.end(vs)
		if err := f(key, vs, ve); err != nil {
			return 0, err
		}
		i = skipSpace(raw, ve)
	}
	return i + 1, nil
}

// digits reports whether b is only decimal digits (JSON allows no leading zero but "0").
func digits(b []byte) bool {
	for _, d := range b {
		if d < '0' || d > '9' {
			return false
		}
	}
	return true
}

// integer reports whether the JSON number b is written as an integer (no fraction or
// exponent), whose exact decimal form it then is, "-0" aside.
func integer(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	return len(b) > 0 && digits(b)
}

// plainString reports whether the quoted string q decodes to exactly its raw bytes: no escapes,
// valid UTF-8 (encoding/json turns each invalid byte into U+FFFD).
func plainString(q []byte) bool {
	s := q[1 : len(q)-1]
	return bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s)
}

// string writes the quoted JSON string q as cjson encodes what it decodes to.
func (c *canonicalizer) string(q []byte) {
	if plainString(q) {
		c.w.write(q) // no '\', so no '"' inside either
		return
	}
	var s string
	_ = json.Unmarshal(q, &s) // valid: raw passed json.Valid
	c.quoted([]byte(s))
}

// quoted writes s as cjson's string rule does: only backslash and double quote are escaped.
func (c *canonicalizer) quoted(s []byte) {
	c.w.writeByte('"')
	for {
		i := bytes.IndexAny(s, `\"`)
		if i < 0 {
			break
		}
		c.w.write(s[:i])
		c.w.writeByte('\\')
		c.w.writeByte(s[i])
		s = s[i+1:]
	}
	c.w.write(s)
	c.w.writeByte('"')
}

var errFloat = errors.New("floating point number")

// errDuplicateKey refuses an object that names a member twice. Notary keeps the last one in the
// canonical form its signatures cover, but decoding into its structs merges an earlier
// duplicate of a map field into the later one: `{"targets":{"evil":…},…,"targets":{…signed…}}`
// verifies and lists "evil". Notary itself never writes a duplicate key (its signed sections are
// canonical JSON of maps and structs), so refusing them refuses nothing it signs.
var errDuplicateKey = errors.New("duplicate object key")

// appendCanonicalNumber writes f as notary's canonical encoder writes a float64
// (github.com/docker/go/canonical/json floatEncoder): a whole number as the decimal digits of
// int64(f), so -0 is 0 and 2e16 is 20000000000000000; a fraction is an error. A number out of
// int64 range, whose conversion is the platform's choice, is refused.
func appendCanonicalNumber(b []byte, f float64) ([]byte, error) {
	if math.Floor(f) != f || f >= 1<<63 || f < -(1<<63) {
		return nil, fmt.Errorf("%w %v", errFloat, f)
	}
	return strconv.AppendInt(b, int64(f), 10), nil
}
