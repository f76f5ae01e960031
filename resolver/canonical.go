package resolver

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// canonicalSigned returns the bytes signatures are made over: what notary's
// signed.VerifySignatures produces by decoding the signed object into generic values (numbers
// as float64) and re-encoding it as canonical JSON. The signed section is decoded once and
// encoded once; the result is byte-for-byte what cjson.EncodeCanonical gives for the decoded
// value (FuzzCanonicalSigned holds the two together): keys sorted, no whitespace, strings
// raw except for '\' and '"', numbers only as integers that fit an int64.
func canonicalSigned(raw json.RawMessage) ([]byte, error) {
	var decoded any
	if err := json.Unmarshal(raw, &decoded); err != nil {
		return nil, fmt.Errorf("%w: signed section: %v", ErrInvalid, err)
	}
	out, err := appendCanonical(make([]byte, 0, len(raw)), decoded)
	if err != nil {
		return nil, fmt.Errorf("%w: canonicalising signed section: %v", ErrInvalid, err)
	}
	return out, nil
}

func appendCanonical(b []byte, v any) ([]byte, error) {
	var err error
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case string:
		return appendCanonicalString(b, v), nil
	case float64:
		return appendCanonicalNumber(b, v)
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendCanonical(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCanonicalString(b, k)
			b = append(b, ':')
			if b, err = appendCanonical(b, v[k]); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	}
	return nil, fmt.Errorf("cannot canonicalise a %T", v)
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
