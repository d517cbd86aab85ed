package push

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// The server-default rules of spec v1.19 ("Predefined Rules"), in the spec's order and with its
// definitions. v1.17 removed the legacy rules that looked for mentions in the body
// (.m.rule.contains_display_name, .m.rule.roomnotif, .m.rule.contains_user_name), so the
// content kind has no default rule. userPlaceholder stands where the spec writes the user's
// Matrix ID; Default puts the user's ID there.
const userPlaceholder = "[the user's Matrix ID]"

// MasterRuleID is the override rule that, enabled, silences everything. It comes before every
// other rule, the user's own override rules included.
const MasterRuleID = ".m.rule.master"

const defaultRulesJSON = `{
"override": [
	{"rule_id": ".m.rule.master", "default": true, "enabled": false, "conditions": [], "actions": []},
	{"rule_id": ".m.rule.suppress_notices", "default": true, "enabled": true,
	 "conditions": [{"kind": "event_match", "key": "content.msgtype", "pattern": "m.notice"}],
	 "actions": []},
	{"rule_id": ".m.rule.invite_for_me", "default": true, "enabled": true,
	 "conditions": [
		{"key": "type", "kind": "event_match", "pattern": "m.room.member"},
		{"key": "content.membership", "kind": "event_match", "pattern": "invite"},
		{"key": "state_key", "kind": "event_match", "pattern": "[the user's Matrix ID]"}],
	 "actions": ["notify", {"set_tweak": "sound", "value": "default"}]},
	{"rule_id": ".m.rule.member_event", "default": true, "enabled": true,
	 "conditions": [{"key": "type", "kind": "event_match", "pattern": "m.room.member"}],
	 "actions": []},
	{"rule_id": ".m.rule.is_user_mention", "default": true, "enabled": true,
	 "conditions": [{"kind": "event_property_contains", "key": "content.m\\.mentions.user_ids", "value": "[the user's Matrix ID]"}],
	 "actions": ["notify", {"set_tweak": "sound", "value": "default"}, {"set_tweak": "highlight"}]},
	{"rule_id": ".m.rule.is_room_mention", "default": true, "enabled": true,
	 "conditions": [
		{"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": true},
		{"kind": "sender_notification_permission", "key": "room"}],
	 "actions": ["notify", {"set_tweak": "highlight"}]},
	{"rule_id": ".m.rule.tombstone", "default": true, "enabled": true,
	 "conditions": [
		{"kind": "event_match", "key": "type", "pattern": "m.room.tombstone"},
		{"kind": "event_match", "key": "state_key", "pattern": ""}],
	 "actions": ["notify", {"set_tweak": "highlight"}]},
	{"rule_id": ".m.rule.reaction", "default": true, "enabled": true,
	 "conditions": [{"kind": "event_match", "key": "type", "pattern": "m.reaction"}],
	 "actions": []},
	{"rule_id": ".m.rule.room.server_acl", "default": true, "enabled": true,
	 "conditions": [
		{"kind": "event_match", "key": "type", "pattern": "m.room.server_acl"},
		{"kind": "event_match", "key": "state_key", "pattern": ""}],
	 "actions": []},
	{"rule_id": ".m.rule.suppress_edits", "default": true, "enabled": true,
	 "conditions": [{"kind": "event_property_is", "key": "content.m\\.relates_to.rel_type", "value": "m.replace"}],
	 "actions": []}
],
"content": [],
"room": [],
"sender": [],
"underride": [
	{"rule_id": ".m.rule.call", "default": true, "enabled": true,
	 "conditions": [{"key": "type", "kind": "event_match", "pattern": "m.call.invite"}],
	 "actions": ["notify", {"set_tweak": "sound", "value": "ring"}]},
	{"rule_id": ".m.rule.encrypted_room_one_to_one", "default": true, "enabled": true,
	 "conditions": [
		{"kind": "room_member_count", "is": "2"},
		{"kind": "event_match", "key": "type", "pattern": "m.room.encrypted"}],
	 "actions": ["notify", {"set_tweak": "sound", "value": "default"}]},
	{"rule_id": ".m.rule.room_one_to_one", "default": true, "enabled": true,
	 "conditions": [
		{"kind": "room_member_count", "is": "2"},
		{"kind": "event_match", "key": "type", "pattern": "m.room.message"}],
	 "actions": ["notify", {"set_tweak": "sound", "value": "default"}]},
	{"rule_id": ".m.rule.message", "default": true, "enabled": true,
	 "conditions": [{"kind": "event_match", "key": "type", "pattern": "m.room.message"}],
	 "actions": ["notify"]},
	{"rule_id": ".m.rule.encrypted", "default": true, "enabled": true,
	 "conditions": [{"kind": "event_match", "key": "type", "pattern": "m.room.encrypted"}],
	 "actions": ["notify"]}
]
}`

// defaultTemplate is defaultRulesJSON parsed once; Default copies it for each user.
var defaultTemplate = sync.OnceValue(func() *Ruleset {
	var rs Ruleset
	if err := json.Unmarshal([]byte(defaultRulesJSON), &rs); err != nil {
		panic(fmt.Sprintf("push: the default rules do not parse: %v", err))
	}
	return &rs
})

// Default returns the spec's default rule set (v1.19) for userID. The result is the caller's
// own: changing it changes no other user's rules.
func Default(userID string) *Ruleset {
	t := defaultTemplate()
	quoted, _ := json.Marshal(userID) // a string always marshals
	rs := &Ruleset{}
	for _, kind := range Kinds {
		src := t.Kind(kind)
		dst := make([]Rule, len(src))
		for i, r := range src {
			dst[i] = r.clone()
			for j := range dst[i].Conditions {
				c := &dst[i].Conditions[j]
				if c.Pattern != nil && *c.Pattern == userPlaceholder {
					p := userID
					c.Pattern = &p
				}
				if string(c.Value) == `"`+userPlaceholder+`"` {
					c.Value = quoted
				}
			}
		}
		*rs.kindPtr(kind) = dst
	}
	return rs
}

// IsDefaultRuleID reports whether a rule id is reserved for server-default rules.
func IsDefaultRuleID(ruleID string) bool { return strings.HasPrefix(ruleID, ".") }

// clone copies a rule deeply enough that changing the copy's conditions or actions leaves the
// original alone (the JSON values themselves are never changed in place).
func (r Rule) clone() Rule {
	c := r
	c.outcome = nil // the copy may be changed
	if r.Conditions != nil {
		c.Conditions = slices.Clone(r.Conditions)
	}
	if r.Actions != nil {
		c.Actions = slices.Clone(r.Actions)
	}
	return c
}
