// Package keys holds what a homeserver signs and verifies with: canonical JSON, unpadded base64,
// JSON signatures and the server's own signing key.
package keys

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// Errors from CanonicalJSON, CheckStrictValues and ParseObject; details are wrapped with %w.
var (
	// ErrInvalidJSON: the input is not JSON (or repeats an object key, or nests too deeply).
	ErrInvalidJSON = errors.New("invalid JSON")
	// ErrNonStrictValue: a number that room versions 6 and later forbid (a float, an exponent,
	// or an integer outside [-(2**53)+1, (2**53)-1]).
	ErrNonStrictValue = errors.New("value not allowed in canonical JSON")
)

// maxDepth bounds nesting so hostile input cannot exhaust the stack; Python-based servers fail
// at about the same depth, so nothing legitimate is deeper.
const maxDepth = 1000

// maxSafeInteger is (2**53)-1, the largest integer canonical JSON allows.
const maxSafeInteger = 1<<53 - 1

// CanonicalJSON re-encodes JSON as Matrix canonical JSON: object keys sorted by code point, no
// insignificant whitespace, strings with only the escapes that are required, and numbers as
// integers. Duplicate keys are rejected.
//
// Room versions 1 to 5 may carry numbers that canonical JSON does not allow. They are encoded as
// Synapse (Python) would, so that hashes of old events agree: an integral value is written as an
// integer (1e10 becomes 10000000000, -0 becomes 0), other floats in Python's repr form.
func CanonicalJSON(in []byte) ([]byte, error) {
	return canonicalize(in, false, nil)
}

// CanonicalJSONStrict is CanonicalJSON that also rejects what CheckStrictValues rejects, in one
// pass.
func CanonicalJSONStrict(in []byte) ([]byte, error) {
	return canonicalize(in, true, nil)
}

// CheckStrictValues reports whether JSON meets the value rules of room versions 6 and later:
// every number is an integer, written without fraction or exponent, in [-(2**53)+1, (2**53)-1].
// "-0" is accepted (it is the integer 0, as Python reads it).
func CheckStrictValues(in []byte) error {
	_, err := canonicalize(in, true, nil)
	return err
}

var encoderPool = sync.Pool{New: func() any {
	return &encoder{members: make([]member, 0, 64)}
}}

func canonicalize(in []byte, strict bool, top *[]member) ([]byte, error) {
	e := encoderPool.Get().(*encoder)
	e.in, e.pos, e.strict, e.depth = in, 0, strict, 0
	e.out = make([]byte, 0, len(in))
	e.top = top
	err := e.document()
	out := e.out
	e.in, e.out, e.top = nil, nil, nil
	e.members = e.members[:0]
	if cap(e.scratch) > 64<<10 {
		e.scratch = nil
	}
	encoderPool.Put(e)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// A member is an object member while its object is being encoded: key is the decoded key, and
// out[start:end] is `"key":value` with the value at out[value:end].
type member struct {
	key               []byte
	start, value, end int
}

type encoder struct {
	in      []byte
	pos     int
	out     []byte
	strict  bool
	depth   int
	members []member // a stack shared by the objects being encoded
	scratch []byte
	top     *[]member // if set, receives the members of the top-level object
}

func (e *encoder) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d", ErrInvalidJSON, fmt.Sprintf(format, args...), e.pos)
}

func (e *encoder) document() error {
	if err := e.value(); err != nil {
		return err
	}
	e.skipSpace()
	if e.pos != len(e.in) {
		return e.errorf("trailing data")
	}
	return nil
}

func (e *encoder) skipSpace() {
	for e.pos < len(e.in) {
		switch e.in[e.pos] {
		case ' ', '\t', '\n', '\r':
			e.pos++
		default:
			return
		}
	}
}

func (e *encoder) value() error {
	e.skipSpace()
	if e.pos >= len(e.in) {
		return e.errorf("unexpected end of input")
	}
	switch c := e.in[e.pos]; {
	case c == '{':
		return e.object()
	case c == '[':
		return e.array()
	case c == '"':
		_, err := e.str()
		return err
	case c == 't':
		return e.literal("true")
	case c == 'f':
		return e.literal("false")
	case c == 'n':
		return e.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return e.number()
	default:
		return e.errorf("unexpected character %q", c)
	}
}

func (e *encoder) literal(lit string) error {
	if !bytes.HasPrefix(e.in[e.pos:], []byte(lit)) {
		return e.errorf("invalid literal")
	}
	e.pos += len(lit)
	e.out = append(e.out, lit...)
	return nil
}

func (e *encoder) object() error {
	if e.depth++; e.depth > maxDepth {
		return e.errorf("nested too deeply")
	}
	isTop := e.depth == 1
	e.pos++
	e.out = append(e.out, '{')
	objStart := len(e.out)
	base := len(e.members)
	e.skipSpace()
	if e.pos < len(e.in) && e.in[e.pos] == '}' {
		e.pos++
	} else {
		for {
			e.skipSpace()
			if e.pos >= len(e.in) || e.in[e.pos] != '"' {
				return e.errorf("expected object key")
			}
			start := len(e.out)
			key, err := e.str()
			if err != nil {
				return err
			}
			e.skipSpace()
			if e.pos >= len(e.in) || e.in[e.pos] != ':' {
				return e.errorf("expected ':'")
			}
			e.pos++
			e.out = append(e.out, ':')
			valueStart := len(e.out)
			if err := e.value(); err != nil {
				return err
			}
			e.members = append(e.members, member{key: key, start: start, value: valueStart, end: len(e.out)})
			e.skipSpace()
			if e.pos >= len(e.in) {
				return e.errorf("unexpected end of input in object")
			}
			if c := e.in[e.pos]; c == ',' {
				e.pos++
				e.out = append(e.out, ',')
				continue
			} else if c == '}' {
				e.pos++
				break
			}
			return e.errorf("expected ',' or '}'")
		}
	}
	ms := e.members[base:]
	if err := e.sortMembers(ms, objStart); err != nil {
		return err
	}
	if isTop && e.top != nil {
		*e.top = append((*e.top)[:0], ms...)
	}
	e.members = e.members[:base]
	e.out = append(e.out, '}')
	e.depth--
	return nil
}

// sortMembers puts the members of the object starting at out[objStart] in key order, rewriting
// the object in place when the input was not already sorted, and updates their offsets.
func (e *encoder) sortMembers(ms []member, objStart int) error {
	sorted := true
	for i := 1; i < len(ms); i++ {
		c := bytes.Compare(ms[i-1].key, ms[i].key)
		if c == 0 {
			return e.errorf("duplicate key %q", ms[i].key)
		}
		if c > 0 {
			sorted = false
		}
	}
	if sorted {
		return nil
	}
	slices.SortFunc(ms, func(a, b member) int { return bytes.Compare(a.key, b.key) })
	for i := 1; i < len(ms); i++ {
		if bytes.Equal(ms[i-1].key, ms[i].key) {
			return e.errorf("duplicate key %q", ms[i].key)
		}
	}
	e.scratch = append(e.scratch[:0], e.out[objStart:]...)
	e.out = e.out[:objStart]
	for i := range ms {
		m := &ms[i]
		if i > 0 {
			e.out = append(e.out, ',')
		}
		start := len(e.out)
		e.out = append(e.out, e.scratch[m.start-objStart:m.end-objStart]...)
		m.value = start + (m.value - m.start)
		m.start, m.end = start, len(e.out)
	}
	return nil
}

func (e *encoder) array() error {
	if e.depth++; e.depth > maxDepth {
		return e.errorf("nested too deeply")
	}
	e.pos++
	e.out = append(e.out, '[')
	e.skipSpace()
	if e.pos < len(e.in) && e.in[e.pos] == ']' {
		e.pos++
	} else {
		for {
			if err := e.value(); err != nil {
				return err
			}
			e.skipSpace()
			if e.pos >= len(e.in) {
				return e.errorf("unexpected end of input in array")
			}
			if c := e.in[e.pos]; c == ',' {
				e.pos++
				e.out = append(e.out, ',')
				continue
			} else if c == ']' {
				e.pos++
				break
			}
			return e.errorf("expected ',' or ']'")
		}
	}
	e.out = append(e.out, ']')
	e.depth--
	return nil
}

// str reads the string at e.pos, appends its canonical encoding and returns its decoded bytes
// (a slice of the input when it had no escapes).
func (e *encoder) str() ([]byte, error) {
	e.pos++
	start := e.pos
	in := e.in
	high := false
	for i := start; i < len(in); i++ {
		c := in[i]
		if plainASCII[c] {
			continue
		}
		switch {
		case c == '"':
			raw := in[start:i]
			if high && !utf8.Valid(raw) {
				return nil, e.errorf("invalid UTF-8 in string")
			}
			e.pos = i + 1
			e.out = append(e.out, '"')
			e.out = append(e.out, raw...)
			e.out = append(e.out, '"')
			return raw, nil
		case c == '\\':
			if high && !utf8.Valid(in[start:i]) {
				return nil, e.errorf("invalid UTF-8 in string")
			}
			e.pos = i
			return e.escapedStr(start)
		case c < 0x20:
			e.pos = i
			return nil, e.errorf("control character in string")
		default:
			high = true
		}
	}
	e.pos = len(in)
	return nil, e.errorf("unterminated string")
}

// plainASCII marks the bytes a string may contain unescaped that need no further checks.
var plainASCII = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// escapedStr finishes a string containing escapes: the part before e.pos is plain.
func (e *encoder) escapedStr(start int) ([]byte, error) {
	dec := make([]byte, 0, e.pos-start+16)
	dec = append(dec, e.in[start:e.pos]...)
	for e.pos < len(e.in) {
		c := e.in[e.pos]
		switch {
		case c == '"':
			e.pos++
			e.out = appendString(e.out, dec)
			return dec, nil
		case c == '\\':
			if e.pos+1 >= len(e.in) {
				return nil, e.errorf("unterminated escape")
			}
			esc := e.in[e.pos+1]
			e.pos += 2
			switch esc {
			case '"', '\\', '/':
				dec = append(dec, esc)
			case 'b':
				dec = append(dec, '\b')
			case 'f':
				dec = append(dec, '\f')
			case 'n':
				dec = append(dec, '\n')
			case 'r':
				dec = append(dec, '\r')
			case 't':
				dec = append(dec, '\t')
			case 'u':
				r, err := e.hex4()
				if err != nil {
					return nil, err
				}
				if utf16.IsSurrogate(r) {
					// Only a high surrogate followed by an escaped low one makes a code point; a
					// lone surrogate cannot be encoded as UTF-8.
					if r >= 0xdc00 || !bytes.HasPrefix(e.in[e.pos:], []byte(`\u`)) {
						return nil, e.errorf("lone surrogate")
					}
					e.pos += 2
					r2, err := e.hex4()
					if err != nil {
						return nil, err
					}
					if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
						return nil, e.errorf("lone surrogate")
					}
				}
				dec = utf8.AppendRune(dec, r)
			default:
				return nil, e.errorf("invalid escape")
			}
		case c < 0x20:
			return nil, e.errorf("control character in string")
		case c < utf8.RuneSelf:
			dec = append(dec, c)
			e.pos++
		default:
			r, size := utf8.DecodeRune(e.in[e.pos:])
			if r == utf8.RuneError && size == 1 {
				return nil, e.errorf("invalid UTF-8 in string")
			}
			dec = append(dec, e.in[e.pos:e.pos+size]...)
			e.pos += size
		}
	}
	return nil, e.errorf("unterminated string")
}

func (e *encoder) hex4() (rune, error) {
	if e.pos+4 > len(e.in) {
		return 0, e.errorf("short unicode escape")
	}
	var r rune
	for _, c := range e.in[e.pos : e.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, e.errorf("invalid unicode escape")
		}
	}
	e.pos += 4
	return r, nil
}

const hexDigits = "0123456789abcdef"

// appendString appends the canonical JSON encoding of s, which must be valid UTF-8.
func appendString[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	plain := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[plain:i]...)
		plain = i + 1
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
	}
	dst = append(dst, s[plain:]...)
	return append(dst, '"')
}

func (e *encoder) number() error {
	start := e.pos
	neg := e.in[e.pos] == '-'
	if neg {
		e.pos++
	}
	intStart := e.pos
	switch {
	case e.pos < len(e.in) && e.in[e.pos] == '0':
		e.pos++
	case e.pos < len(e.in) && e.in[e.pos] >= '1' && e.in[e.pos] <= '9':
		e.skipDigits()
	default:
		return e.errorf("invalid number")
	}
	intEnd := e.pos
	integer := true
	if e.pos < len(e.in) && e.in[e.pos] == '.' {
		integer = false
		e.pos++
		if e.skipDigits() == 0 {
			return e.errorf("invalid number")
		}
	}
	if e.pos < len(e.in) && (e.in[e.pos] == 'e' || e.in[e.pos] == 'E') {
		integer = false
		e.pos++
		if e.pos < len(e.in) && (e.in[e.pos] == '+' || e.in[e.pos] == '-') {
			e.pos++
		}
		if e.skipDigits() == 0 {
			return e.errorf("invalid number")
		}
	}
	lit := e.in[start:e.pos]
	if integer {
		digits := e.in[intStart:intEnd]
		if len(digits) == 1 && digits[0] == '0' {
			e.out = append(e.out, '0') // -0 is 0
			return nil
		}
		if e.strict {
			n, err := strconv.ParseUint(string(digits), 10, 64)
			if err != nil || n > maxSafeInteger {
				return fmt.Errorf("%w: integer %s out of range at offset %d", ErrNonStrictValue, lit, start)
			}
		}
		e.out = append(e.out, lit...)
		return nil
	}
	if e.strict {
		return fmt.Errorf("%w: non-integer number %s at offset %d", ErrNonStrictValue, lit, start)
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		return e.errorf("number %s out of range", lit)
	}
	e.out = appendFloat(e.out, f)
	return nil
}

func (e *encoder) skipDigits() int {
	n := 0
	for e.pos < len(e.in) && e.in[e.pos] >= '0' && e.in[e.pos] <= '9' {
		e.pos++
		n++
	}
	return n
}

// appendFloat writes a float as Python's json module does, except that integral values are
// written as integers, as the spec's canonical JSON examples require.
func appendFloat(dst []byte, f float64) []byte {
	if f == math.Trunc(f) {
		if f == 0 {
			return append(dst, '0')
		}
		return strconv.AppendFloat(dst, f, 'f', -1, 64)
	}
	// Python's repr switches to exponent notation below 1e-4; a non-integral float64 is always
	// below 2**53, so the upper switch (1e16) never applies here.
	if math.Abs(f) < 1e-4 {
		return strconv.AppendFloat(dst, f, 'e', -1, 64)
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}
