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
// JSON flattened into dotted keys (with the escaping of spec v1.7).
type Event struct {
	flat map[string]any
	// Body, Type, Sender as found in the event, for quick checks.
	Type, Sender string
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
}

// NewEvent prepares the event (client format: type, sender, room_id, content, state_key, ...)
// for evaluation.
func NewEvent(clientJSON []byte) (*Event, error) {
	panic("push.NewEvent: not implemented yet")
}

// Default returns the spec's default rule set (v1.19) for userID.
func Default(userID string) *Ruleset {
	panic("push.Default: not implemented yet")
}

// Evaluate runs rs over ev for the user and room described by r: the first enabled rule
// whose conditions all hold decides.
func (rs *Ruleset) Evaluate(ev *Event, r Room) Outcome {
	panic("push.Ruleset.Evaluate: not implemented yet")
}
