package push

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Condition kinds of the spec.
const (
	CondEventMatch                   = "event_match"
	CondEventPropertyIs              = "event_property_is"
	CondEventPropertyContains        = "event_property_contains"
	CondContainsDisplayName          = "contains_display_name"
	CondRoomMemberCount              = "room_member_count"
	CondSenderNotificationPermission = "sender_notification_permission"
)

// defaultNotificationLevel is the power level a notification key needs when the room's power
// levels do not say (the spec's default for "room").
const defaultNotificationLevel = 50

// Evaluate runs rs over ev for the user and room described by r: the first enabled rule
// whose conditions all hold decides. The user's own events match nothing: the spec forbids
// notifying a user of what they sent.
func (rs *Ruleset) Evaluate(ev *Event, r Room) Outcome {
	if rs == nil || ev == nil || (r.UserID != "" && ev.Sender == r.UserID) {
		return Outcome{}
	}
	for _, kind := range Kinds {
		for i := range rs.Kind(kind) {
			rule := &rs.Kind(kind)[i]
			if rule.Enabled && rule.matches(kind, ev, r) {
				if rule.outcome != nil {
					return *rule.outcome
				}
				return outcomeOf(rule)
			}
		}
	}
	return Outcome{}
}

// matches reports whether the rule of that kind holds for the event.
func (rule *Rule) matches(kind string, ev *Event, r Room) bool {
	switch kind {
	case KindContent:
		if rule.Pattern == nil {
			return false
		}
		body, ok := ev.flat["content.body"].(string)
		return ok && globMatch(*rule.Pattern, body, true)
	case KindRoom:
		return ev.RoomID != "" && ev.RoomID == rule.RuleID
	case KindSender:
		return ev.Sender != "" && ev.Sender == rule.RuleID
	}
	for i := range rule.Conditions {
		if !rule.Conditions[i].holds(ev, r) {
			return false
		}
	}
	return true
}

// holds reports whether one condition is true of the event. A kind the server does not know
// never holds, which disables its rule, as the spec requires.
func (c *Condition) holds(ev *Event, r Room) bool {
	switch c.Kind {
	case CondEventMatch:
		if c.Pattern == nil {
			return false
		}
		key := normalizeKey(c.Key)
		v, ok := ev.flat[key].(string)
		return ok && globMatch(*c.Pattern, v, key == "content.body")
	case CondEventPropertyIs:
		v, ok := ev.flat[normalizeKey(c.Key)]
		return ok && scalarEqual(v, c.Value)
	case CondEventPropertyContains:
		arr, ok := ev.flat[normalizeKey(c.Key)].([]any)
		if !ok {
			return false
		}
		for _, v := range arr {
			if scalarEqual(v, c.Value) {
				return true
			}
		}
		return false
	case CondContainsDisplayName:
		if r.DisplayName == "" {
			return false
		}
		body, ok := ev.flat["content.body"].(string)
		return ok && containsWords(body, r.DisplayName)
	case CondRoomMemberCount:
		return memberCountIs(c.Is, r.MemberCount)
	case CondSenderNotificationPermission:
		if c.Key == "" {
			return false
		}
		need, ok := r.NotificationPowerLevels[c.Key]
		if !ok {
			need = defaultNotificationLevel
		}
		return r.SenderPowerLevel >= need
	}
	return false
}

// containsWords reports whether name occurs in body as whole words, case-insensitively; name
// is literal text, not a glob.
func containsWords(body, name string) bool {
	lb, ln := strings.ToLower(body), strings.ToLower(name)
	for off := 0; off <= len(lb); {
		i := strings.Index(lb[off:], ln)
		if i < 0 {
			return false
		}
		start, end := off+i, off+i+len(ln)
		if (start == 0 || !isWordByte(lb[start-1]) || !isWordByte(lb[start])) &&
			(end == len(lb) || !isWordByte(lb[end]) || !isWordByte(lb[end-1])) {
			return true
		}
		off = start + 1
	}
	return false
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// memberCountIs evaluates a room_member_count "is": a decimal integer after an optional
// ==, <, >, <= or >=. Anything else never holds.
func memberCountIs(is string, count int) bool {
	op := "=="
	for _, p := range []string{"==", "<=", ">=", "<", ">"} {
		if strings.HasPrefix(is, p) {
			op, is = p, is[len(p):]
			break
		}
	}
	n, err := strconv.Atoi(is)
	if err != nil {
		return false
	}
	switch op {
	case "<":
		return count < n
	case ">":
		return count > n
	case "<=":
		return count <= n
	case ">=":
		return count >= n
	}
	return count == n
}

// scalarEqual compares a value of the event with a condition's value exactly, without casting
// types. Only strings, integers, booleans and null compare; anything else never equals.
func scalarEqual(v any, want json.RawMessage) bool {
	w := bytes.TrimSpace(want)
	if len(w) == 0 {
		return false
	}
	switch x := v.(type) {
	case string:
		if w[0] != '"' {
			return false
		}
		if bytes.IndexByte(w, '\\') < 0 {
			return len(w) >= 2 && w[len(w)-1] == '"' && string(w[1:len(w)-1]) == x
		}
		var s string
		return json.Unmarshal(w, &s) == nil && s == x
	case bool:
		return (x && string(w) == "true") || (!x && string(w) == "false")
	case nil:
		return string(w) == "null"
	case json.Number:
		a, err := strconv.ParseInt(string(x), 10, 64)
		if err != nil {
			return false
		}
		b, err := strconv.ParseInt(string(w), 10, 64)
		return err == nil && a == b
	}
	return false
}

// prepare reads every rule's actions once, for a rule set that is shared and never changed
// after: evaluating an event for every member of a room would otherwise decode the same
// actions for each.
func (rs *Ruleset) prepare() error {
	for _, kind := range Kinds {
		rules := rs.Kind(kind)
		for i := range rules {
			o := outcomeOf(&rules[i])
			js, err := json.Marshal(nonNil(rules[i].Actions))
			if err != nil {
				return fmt.Errorf("push: actions of %s: %w", rules[i].RuleID, err)
			}
			o.ActionsJSON = js
			rules[i].outcome = &o
		}
	}
	return nil
}

// outcomeOf reads what a matching rule's actions ask for. The historical "dont_notify" and
// "coalesce" are ignored, as the spec requires.
func outcomeOf(rule *Rule) Outcome {
	o := Outcome{RuleID: rule.RuleID, Actions: rule.Actions}
	for _, a := range rule.Actions {
		a = bytes.TrimSpace(a)
		if len(a) == 0 {
			continue
		}
		if a[0] == '"' {
			var s string
			if json.Unmarshal(a, &s) == nil && s == "notify" {
				o.Notify = true
			}
			continue
		}
		var tweak struct {
			SetTweak string          `json:"set_tweak"`
			Value    json.RawMessage `json:"value"`
		}
		if json.Unmarshal(a, &tweak) != nil || tweak.SetTweak != "highlight" {
			continue
		}
		v := bytes.TrimSpace(tweak.Value)
		o.Highlight = len(v) == 0 || string(v) == "true"
	}
	return o
}
