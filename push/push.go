// Package push is the push rule engine: the default rule set of the spec, a user's rule set as
// stored and changed through the push rule API, and the evaluator that decides, for one event
// and one user, whether it notifies, highlights or makes a sound. It does no I/O: callers load
// rule sets from storage and give the evaluator what it needs to know about the room.
package push

import "encoding/json"

// Kinds of push rules, in the order they are evaluated.
const (
	KindOverride  = "override"
	KindContent   = "content"
	KindRoom      = "room"
	KindSender    = "sender"
	KindUnderride = "underride"
)

// Kinds lists the rule kinds in evaluation order.
var Kinds = []string{KindOverride, KindContent, KindRoom, KindSender, KindUnderride}

// Condition is a push condition as the spec's PushCondition describes it.
type Condition struct {
	Kind    string          `json:"kind"`
	Key     string          `json:"key,omitempty"`
	Pattern *string         `json:"pattern,omitempty"`
	Value   json.RawMessage `json:"value,omitempty"`
	Is      string          `json:"is,omitempty"`
}

// Rule is a push rule as the spec's PushRule describes it. Actions are kept as JSON: "notify",
// "dont_notify", "coalesce" or {"set_tweak": ..., "value": ...}.
type Rule struct {
	RuleID     string            `json:"rule_id"`
	Default    bool              `json:"default"`
	Enabled    bool              `json:"enabled"`
	Conditions []Condition       `json:"conditions,omitempty"`
	Pattern    *string           `json:"pattern,omitempty"`
	Actions    []json.RawMessage `json:"actions"`

	// outcome is what the actions ask for, read once for the rule sets the Store caches
	// (prepare), which are never changed; nil elsewhere, where Evaluate reads the actions.
	outcome *Outcome
}

// Ruleset is the "global" rule set of a user: the rules of each kind in priority order.
type Ruleset struct {
	Override  []Rule `json:"override"`
	Content   []Rule `json:"content"`
	Room      []Rule `json:"room"`
	Sender    []Rule `json:"sender"`
	Underride []Rule `json:"underride"`
}

// Room is what the evaluator needs to know about the room and the user, besides the event.
type Room struct {
	// UserID is the user whose rules are evaluated; DisplayName their display name in the room
	// ("" if none).
	UserID      string
	DisplayName string
	// MemberCount is the number of joined members of the room.
	MemberCount int
	// SenderPowerLevel is the sender's power level in the room; NotificationPowerLevels the
	// "notifications" object of m.room.power_levels (the spec's default: room = 50).
	SenderPowerLevel        int64
	NotificationPowerLevels map[string]int64
}

// Event is an event prepared once for evaluation against many users' rules: its client-format
// JSON flattened into dotted keys (with the escaping of spec v1.7). Build it with NewEvent.
type Event struct {
	// flat maps each dotted key to the value found there: string, bool, nil, json.Number, or
	// []any for an array (whose elements are kept as decoded, for event_property_contains).
	// Objects have no entry of their own: their members do.
	flat map[string]any
	// Type, Sender, RoomID and StateKey (nil for a message event) as found in the event, for
	// the checks that need no flattened key.
	Type, Sender, RoomID string
	StateKey             *string
}

// Outcome is what evaluating an event for a user decided.
type Outcome struct {
	// RuleID is the id of the rule that matched; "" if none did.
	RuleID string
	// Notify: the actions contain "notify"; Highlight: a highlight tweak that is true.
	Notify    bool
	Highlight bool
	// Actions are the matching rule's actions, as the rule holds them.
	Actions []json.RawMessage
	// ActionsJSON is Actions as a JSON array, when the rule set was prepared (a Store's rule
	// sets are); nil otherwise.
	ActionsJSON json.RawMessage
}

// MarshalJSON writes the rule as the spec's PushRule: "conditions" is present for override and
// underride rules (even when empty, as .m.rule.master shows) and absent for the other kinds,
// which hold nil; "actions" is always an array.
func (r Rule) MarshalJSON() ([]byte, error) {
	type wire struct {
		RuleID     string            `json:"rule_id"`
		Default    bool              `json:"default"`
		Enabled    bool              `json:"enabled"`
		Conditions *[]Condition      `json:"conditions,omitempty"`
		Pattern    *string           `json:"pattern,omitempty"`
		Actions    []json.RawMessage `json:"actions"`
	}
	w := wire{RuleID: r.RuleID, Default: r.Default, Enabled: r.Enabled, Pattern: r.Pattern, Actions: r.Actions}
	if r.Conditions != nil {
		w.Conditions = &r.Conditions
	}
	if w.Actions == nil {
		w.Actions = []json.RawMessage{}
	}
	return json.Marshal(w)
}

// MarshalJSON writes every kind as an array, empty rather than null.
func (rs Ruleset) MarshalJSON() ([]byte, error) {
	type wire Ruleset
	w := wire(rs)
	for _, k := range []*[]Rule{&w.Override, &w.Content, &w.Room, &w.Sender, &w.Underride} {
		if *k == nil {
			*k = []Rule{}
		}
	}
	return json.Marshal(w)
}

// Kind returns the rules of one kind; nil for a kind that does not exist.
func (rs *Ruleset) Kind(kind string) []Rule {
	switch kind {
	case KindOverride:
		return rs.Override
	case KindContent:
		return rs.Content
	case KindRoom:
		return rs.Room
	case KindSender:
		return rs.Sender
	case KindUnderride:
		return rs.Underride
	}
	return nil
}

// Find returns the rule of that kind and id, and whether there is one.
func (rs *Ruleset) Find(kind, ruleID string) (Rule, bool) {
	for _, r := range rs.Kind(kind) {
		if r.RuleID == ruleID {
			return r, true
		}
	}
	return Rule{}, false
}

// ValidKind reports whether kind is one of the spec's five kinds.
func ValidKind(kind string) bool {
	for _, k := range Kinds {
		if k == kind {
			return true
		}
	}
	return false
}

// kindPtr returns the slice of one kind, for building a rule set.
func (rs *Ruleset) kindPtr(kind string) *[]Rule {
	switch kind {
	case KindOverride:
		return &rs.Override
	case KindContent:
		return &rs.Content
	case KindRoom:
		return &rs.Room
	case KindSender:
		return &rs.Sender
	case KindUnderride:
		return &rs.Underride
	}
	return nil
}
