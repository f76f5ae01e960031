package resolver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// canonicalSigned returns the bytes signatures are made over: what notary's
// signed.VerifySignatures produces by decoding the signed object into generic values (numbers
// as float64) and re-encoding it as canonical JSON. It is one streaming pass over the tokens,
// holding no decoded tree: an object's members are encoded as they are read and sorted by key
// (the last of duplicate keys wins, as in a decoded map). The result is byte-for-byte what
// cjson.EncodeCanonical gives for the decoded value (FuzzCanonicalSigned holds the two
// together): keys sorted, no whitespace, strings raw except for '\' and '"', numbers only as
// integers that fit an int64.
func canonicalSigned(raw json.RawMessage) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	out, err := appendCanonical(dec, make([]byte, 0, len(raw)))
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("data after the signed value")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: canonicalising signed section: %v", ErrInvalid, err)
	}
	return out, nil
}

// member is one object member: its key and where its encoded value sits in the scratch buffer.
type member struct {
	key        string
	start, end int
}

func appendCanonical(dec *json.Decoder, b []byte) ([]byte, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, t), nil
	case string:
		return appendCanonicalString(b, t), nil
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil {
			return nil, fmt.Errorf("number %s: %w", t, err)
		}
		return appendCanonicalNumber(b, f)
	case json.Delim:
		switch t {
		case '[':
			b = append(b, '[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					b = append(b, ',')
				}
				if b, err = appendCanonical(dec, b); err != nil {
					return nil, err
				}
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return append(b, ']'), nil
		case '{':
			var scratch []byte
			var ms []member
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key is a %T", kt)
				}
				start := len(scratch)
				if scratch, err = appendCanonical(dec, scratch); err != nil {
					return nil, err
				}
				ms = append(ms, member{key: key, start: start, end: len(scratch)})
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			slices.SortStableFunc(ms, func(a, b member) int { return strings.Compare(a.key, b.key) })
			b = append(b, '{')
			n := 0
			for i, m := range ms {
				if i+1 < len(ms) && ms[i+1].key == m.key {
					continue // a later duplicate replaces this one
				}
				if n > 0 {
					b = append(b, ',')
				}
				n++
				b = appendCanonicalString(b, m.key)
				b = append(b, ':')
				b = append(b, scratch[m.start:m.end]...)
			}
			return append(b, '}'), nil
		}
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

// appendCanonicalString is cjson's string rule: only backslash and double quote are escaped.
func appendCanonicalString(b []byte, s string) []byte {
	b = append(b, '"')
	for {
		i := strings.IndexAny(s, `\"`)
		if i < 0 {
			break
		}
		b = append(b, s[:i]...)
		b = append(b, '\\', s[i])
		s = s[i+1:]
	}
	b = append(b, s...)
	return append(b, '"')
}

var errFloat = errors.New("floating point number")

// appendCanonicalNumber writes f as encoding/json would marshal a float64, refusing (as cjson
// does) anything that is not then an int64: exponent forms, fractions, out of range.
func appendCanonicalNumber(b []byte, f float64) ([]byte, error) {
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		return nil, fmt.Errorf("%w %v", errFloat, f)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if _, err := strconv.ParseInt(s, 10, 64); err != nil {
		return nil, fmt.Errorf("%w %s", errFloat, s)
	}
	return append(b, s...), nil
}
