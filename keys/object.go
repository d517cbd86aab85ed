package keys

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// An Object is a JSON object in canonical form, split into its top-level members, so that
// signing, hashing and redaction can drop or replace members without decoding the values.
// Objects are values: Without and With return new Objects and never modify the receiver.
type Object struct {
	members []Member // sorted by key, keys unique
}

// A Member is one top-level member of an Object. Value is canonical JSON.
type Member struct {
	Key   string
	Value []byte
}

// ParseObject canonicalizes in, which must be a JSON object, and splits it into members.
func ParseObject(in []byte) (Object, error) {
	return parseObject(in, false)
}

// ParseObjectStrict is ParseObject that also enforces CheckStrictValues.
func ParseObjectStrict(in []byte) (Object, error) {
	return parseObject(in, true)
}

func parseObject(in []byte, strict bool) (Object, error) {
	var top []member
	out, err := canonicalize(in, strict, &top)
	if err != nil {
		return Object{}, err
	}
	if len(out) == 0 || out[0] != '{' {
		return Object{}, fmt.Errorf("%w: not an object", ErrInvalidJSON)
	}
	ms := make([]Member, len(top))
	for i, m := range top {
		ms[i] = Member{Key: string(m.key), Value: out[m.value:m.end:m.end]}
	}
	return Object{members: ms}, nil
}

// NewObject makes an Object of members whose values are canonical JSON already (see With),
// in any order; of members with the same key the last one counts. It takes ms over: the
// caller must not use the slice afterwards. Building an object this way sorts once, where a
// chain of With calls copies the members at every step.
func NewObject(ms []Member) Object {
	slices.SortStableFunc(ms, func(a, b Member) int { return strings.Compare(a.Key, b.Key) })
	out := ms[:0]
	for i, m := range ms {
		if i+1 < len(ms) && ms[i+1].Key == m.Key {
			continue
		}
		out = append(out, m)
	}
	return Object{members: out}
}

// Members returns the members in canonical order; the slice is shared and must not be modified.
func (o Object) Members() []Member { return o.members }

// Len is the number of members.
func (o Object) Len() int { return len(o.members) }

func (o Object) find(key string) (int, bool) {
	i := sort.Search(len(o.members), func(i int) bool { return o.members[i].Key >= key })
	return i, i < len(o.members) && o.members[i].Key == key
}

// Get returns the canonical JSON value of a member.
func (o Object) Get(key string) ([]byte, bool) {
	if i, ok := o.find(key); ok {
		return o.members[i].Value, true
	}
	return nil, false
}

// Without returns the object minus the named members.
func (o Object) Without(keys ...string) Object {
	ms := make([]Member, 0, len(o.members))
	for _, m := range o.members {
		drop := false
		for _, k := range keys {
			if m.Key == k {
				drop = true
				break
			}
		}
		if !drop {
			ms = append(ms, m)
		}
	}
	return Object{members: ms}
}

// Keep returns the object with only the named members.
func (o Object) Keep(keys ...string) Object {
	ms := make([]Member, 0, len(keys))
	for _, m := range o.members {
		for _, k := range keys {
			if m.Key == k {
				ms = append(ms, m)
				break
			}
		}
	}
	return Object{members: ms}
}

// With returns the object with member key set to value, which must already be canonical JSON
// (a value from another Object, Quote, or the output of CanonicalJSON).
func (o Object) With(key string, value []byte) Object {
	i, ok := o.find(key)
	ms := make([]Member, 0, len(o.members)+1)
	ms = append(ms, o.members[:i]...)
	ms = append(ms, Member{Key: key, Value: value})
	if ok {
		i++
	}
	ms = append(ms, o.members[i:]...)
	return Object{members: ms}
}

// AppendJSON appends the object's canonical JSON to dst.
func (o Object) AppendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	for i, m := range o.members {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, m.Key)
		dst = append(dst, ':')
		dst = append(dst, m.Value...)
	}
	return append(dst, '}')
}

// JSON returns the object's canonical JSON.
func (o Object) JSON() []byte {
	n := 2
	for _, m := range o.members {
		n += len(m.Key) + len(m.Value) + 4
	}
	return o.AppendJSON(make([]byte, 0, n))
}

// Quote returns the canonical JSON encoding of a string, which must be valid UTF-8.
func Quote(s string) []byte {
	return appendString(make([]byte, 0, len(s)+2), s)
}

// Encode returns the object's canonical JSON together with an equal Object whose values are
// slices of that JSON, so that keeping both costs one buffer, not two.
func (o Object) Encode() (Object, []byte) {
	out := o.JSON()
	ms := make([]Member, len(o.members))
	pos := 1
	for i, m := range o.members {
		if i > 0 {
			pos++ // ','
		}
		pos += quotedLen(m.Key) + 1 // `"key":`
		end := pos + len(m.Value)
		ms[i] = Member{Key: m.Key, Value: out[pos:end:end]}
		pos = end
	}
	return Object{members: ms}, out
}

// quotedLen is len(appendString(nil, s)).
func quotedLen(s string) int {
	n := len(s) + 2
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t':
			n++
		case c < 0x20:
			n += 5
		}
	}
	return n
}
