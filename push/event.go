package push

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// NewEvent prepares the event (client format: type, sender, room_id, content, state_key, ...)
// for evaluation: every property is flattened into its dotted key once, so that each of the
// many users' rules looks a key up instead of walking the JSON.
func NewEvent(clientJSON []byte) (*Event, error) {
	dec := json.NewDecoder(bytes.NewReader(clientJSON))
	dec.UseNumber() // integers compare exactly in event_property_is, beyond 2^53 too
	var top map[string]any
	if err := dec.Decode(&top); err != nil {
		return nil, fmt.Errorf("push: decoding the event: %w", err)
	}
	if top == nil {
		return nil, fmt.Errorf("push: the event is not a JSON object")
	}
	ev := &Event{flat: make(map[string]any, 16)}
	flatten(ev.flat, "", top)
	ev.Type, _ = top["type"].(string)
	ev.Sender, _ = top["sender"].(string)
	ev.RoomID, _ = top["room_id"].(string)
	if sk, ok := top["state_key"].(string); ok {
		ev.StateKey = &sk
	}
	return ev, nil
}

// flatten records every value under obj with its dotted key. Objects are walked; arrays and
// scalars are leaves.
func flatten(out map[string]any, prefix string, obj map[string]any) {
	for k, v := range obj {
		key := escapeKey(k)
		if prefix != "" {
			key = prefix + "." + key
		}
		if m, ok := v.(map[string]any); ok {
			flatten(out, key, m)
			continue
		}
		out[key] = v
	}
}

// escapeKey escapes one property name for a dotted path (appendix "Dot-separated property
// paths"): a literal dot or backslash is preceded by a backslash.
func escapeKey(k string) string {
	if !strings.ContainsAny(k, `.\`) {
		return k
	}
	var b strings.Builder
	for _, r := range k {
		if r == '.' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// normalizeKey rewrites a condition's key in the canonical escaping that flatten produces.
// The spec leaves any escape other than \. and \\ as it is ("\x" is a backslash and an x),
// which flatten writes as "\\x"; a key without a backslash is already canonical.
func normalizeKey(key string) string {
	if !strings.Contains(key, `\`) {
		return key
	}
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 < len(key) && (key[i+1] == '.' || key[i+1] == '\\') {
			b.WriteByte('\\')
			b.WriteByte(key[i+1])
			i++
			continue
		}
		b.WriteString(`\\`) // a lone backslash is literal
	}
	return b.String()
}

// Lookup returns the value at a dotted key (in the v1.7 escaping) and whether the event has
// one: a string, bool, nil, json.Number or []any. Objects are not values of their own.
func (ev *Event) Lookup(key string) (any, bool) {
	v, ok := ev.flat[normalizeKey(key)]
	return v, ok
}
