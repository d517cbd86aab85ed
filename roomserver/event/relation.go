package event

import (
	"encoding/json"
	"strings"
)

// Relationship types of the spec ("Forming relationships between events").
const (
	RelReplace    = "m.replace"
	RelAnnotation = "m.annotation"
	RelThread     = "m.thread"
	RelReference  = "m.reference"
)

// Relation is the m.relates_to of an event's content: the child's link to its parent.
type Relation struct {
	RelType string
	EventID string
	// Key is the key of an m.annotation ("" for other types).
	Key string
}

// RelatesTo reads content["m.relates_to"] of ev. It reports false when there is none or it does
// not match the schema: the spec has such relationships ignored. The cleartext content is what
// counts, for encrypted events too (an m.relates_to inside the ciphertext is ignored by clients,
// as the spec asks). A reply (m.in_reply_to without rel_type) is not a relation here.
func (e *Event) RelatesTo() (Relation, bool) {
	return RelationOf(e.content, e.id)
}

// RelationOf reads the m.relates_to of an event content; self is the event's own id, which may
// not be its own parent. Content may be anything a remote server sent, so every step is checked.
func RelationOf(content json.RawMessage, self string) (Relation, bool) {
	// Most events relate to nothing: skip the parse when the key cannot be there.
	if !strings.Contains(string(content), `"m.relates_to"`) {
		return Relation{}, false
	}
	var c struct {
		RelatesTo json.RawMessage `json:"m.relates_to"`
	}
	if json.Unmarshal(content, &c) != nil || len(c.RelatesTo) == 0 || c.RelatesTo[0] != '{' {
		return Relation{}, false
	}
	var r map[string]json.RawMessage
	if json.Unmarshal(c.RelatesTo, &r) != nil {
		return Relation{}, false
	}
	relType, ok1 := jsonString(r["rel_type"])
	parent, ok2 := jsonString(r["event_id"])
	if !ok1 || !ok2 || relType == "" || !strings.HasPrefix(parent, "$") || parent == self ||
		len(relType) > MaxIDBytes || len(parent) > MaxIDBytes {
		return Relation{}, false
	}
	rel := Relation{RelType: relType, EventID: parent}
	if relType == RelAnnotation {
		key, ok := jsonString(r["key"])
		if !ok || key == "" {
			// An annotation is defined by its key: one without is no annotation.
			return Relation{}, false
		}
		rel.Key = key
	}
	return rel, true
}

// jsonString decodes raw as a JSON string.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}
