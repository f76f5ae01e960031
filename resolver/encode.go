package resolver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The binary form of a State (MarshalBinary) holds what Lookup, Tags, RootKeyIDs, Versions,
// Expires, Checked and Size answer from, and nothing else: no raw metadata, no keys. It is not
// authenticated: a State decoded from bytes is only as trustworthy as whoever kept the bytes, so
// a caller must authenticate them first (package cache seals them with a key only it holds).
//
// Layout: the version byte, then fields in a fixed order. Strings and lists are a uvarint length
// followed by their elements; integers are varints; times are a uvarint length and
// time.Time.MarshalBinary. Every length is checked against the bytes left before anything is
// allocated for it, so decoding hostile bytes allocates at most a small multiple of their size.
const stateEncodingVersion = 1

// errEncoding is the error for bytes that are not a State's binary form.
var errEncoding = errors.New("resolver: malformed state encoding")

// MarshalBinary implements encoding.BinaryMarshaler.
func (s *State) MarshalBinary() ([]byte, error) {
	var e encoder
	e.b = append(e.b, stateEncodingVersion)
	e.str(s.gun)
	for _, t := range []time.Time{s.base, s.expires, s.checked} {
		if err := e.time(t); err != nil {
			return nil, err
		}
	}
	e.strs(s.rootSigners)
	e.uvarint(uint64(len(s.versions)))
	for name, v := range s.versions {
		e.str(name)
		e.varint(int64(v))
	}
	e.varint(s.size)
	e.uvarint(uint64(len(s.roles)))
	for _, r := range s.roles {
		e.str(r.name)
		if err := e.time(r.expires); err != nil {
			return nil, err
		}
		e.strs(r.signers)
		e.varint(r.size)
		e.uvarint(uint64(len(r.children)))
		for _, c := range r.children {
			e.str(c.name)
			e.strs(c.paths)
		}
		e.uvarint(uint64(len(r.targets)))
		for name, t := range r.targets {
			e.str(name)
			e.b = append(e.b, t.sum[:]...)
			e.varint(t.size)
			ok := byte(0)
			if t.ok {
				ok = 1
			}
			e.b = append(e.b, ok)
		}
	}
	return e.b, nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler: it replaces s with the State data
// encodes. s must not be in use by anyone else.
func (s *State) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	if v := d.byte(); v != stateEncodingVersion {
		return fmt.Errorf("%w: version %d", errEncoding, v)
	}
	st := State{gun: d.str(), index: &indexes{byRoles: map[string]*tagIndex{}}, views: newViews()}
	st.base, st.expires, st.checked = d.time(), d.time(), d.time()
	st.rootSigners = d.strs()
	n := d.count(2)
	st.versions = make(map[string]int, n)
	for range n {
		name := d.str()
		st.versions[name] = int(d.varint())
	}
	st.size = d.varint()
	n = d.count(6)
	st.roles = make(map[string]*roleState, n)
	for range n {
		r := &roleState{name: d.str(), expires: d.time(), signers: d.strs(), size: d.varint()}
		nc := d.count(2)
		r.children = make([]walkRole, 0, nc)
		for range nc {
			r.children = append(r.children, walkRole{name: d.str(), paths: d.strs()})
		}
		nt := d.count(35)
		r.targets = make(map[string]target, nt)
		for range nt {
			name := d.str()
			var t target
			copy(t.sum[:], d.bytes(len(t.sum)))
			t.size = d.varint()
			t.ok = d.byte() == 1
			r.targets[name] = t
		}
		if d.err == nil {
			st.roles[r.name] = r
		}
	}
	switch {
	case d.err != nil:
		return d.err
	case len(d.b) != 0:
		return fmt.Errorf("%w: %d trailing bytes", errEncoding, len(d.b))
	}
	*s = st
	return nil
}

type encoder struct{ b []byte }

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }

func (e *encoder) strs(ss []string) {
	e.uvarint(uint64(len(ss)))
	for _, s := range ss {
		e.str(s)
	}
}

func (e *encoder) time(t time.Time) error {
	b, err := t.MarshalBinary()
	if err != nil {
		return fmt.Errorf("resolver: encoding state: %w", err)
	}
	e.uvarint(uint64(len(b)))
	e.b = append(e.b, b...)
	return nil
}

// decoder reads what encoder wrote. After the first error every read returns a zero value and
// err keeps that first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errEncoding, what)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bytes(n int) []byte {
	if n < 0 || len(d.b) < n {
		d.fail("truncated")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a list length whose elements take at least each bytes; a length the bytes
// left cannot hold is an error, so nothing is allocated for elements that are not there.
func (d *decoder) count(each int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/each) {
		d.fail("length past the end")
		return 0
	}
	return int(n)
}

func (d *decoder) str() string { return string(d.bytes(d.count(1))) }

func (d *decoder) strs() []string {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	ss := make([]string, 0, n)
	for range n {
		ss = append(ss, d.str())
	}
	return ss
}

func (d *decoder) time() time.Time {
	var t time.Time
	if b := d.bytes(d.count(1)); d.err == nil {
		if err := t.UnmarshalBinary(b); err != nil {
			d.fail("bad time")
		}
	}
	return t
}
