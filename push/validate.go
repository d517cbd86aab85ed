package push

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Errors of the rule store, for the API to answer with the spec's codes.
var (
	// ErrNotFound: the user has no rule of that kind and id.
	ErrNotFound = errors.New("push: no such push rule")
	// ErrDefaultRule: server-default rules (ids starting with '.') cannot be created, replaced
	// or deleted, only enabled, disabled or given other actions.
	ErrDefaultRule = errors.New("push: server-default rules cannot be created, replaced or deleted")
	// ErrRelativeNotFound: the rule named by before or after is not a rule of the user's own
	// of that kind.
	ErrRelativeNotFound = errors.New("push: before/after rule not found")
)

// InvalidRuleError says what is wrong with a rule a client sent.
type InvalidRuleError struct{ Msg string }

func (e *InvalidRuleError) Error() string { return "push: invalid rule: " + e.Msg }

func invalid(format string, a ...any) error { return &InvalidRuleError{Msg: fmt.Sprintf(format, a...)} }

// CheckRuleID refuses ids that no user rule may have: empty, reserved for server-default
// rules (a leading '.'), or holding '/' or '\'.
func CheckRuleID(ruleID string) error {
	switch {
	case ruleID == "":
		return invalid("rule_id must not be empty")
	case IsDefaultRuleID(ruleID):
		return fmt.Errorf("%w: %q starts with '.'", ErrDefaultRule, ruleID)
	case strings.ContainsAny(ruleID, `/\`):
		return invalid("rule_id must not contain '/' or '\\'")
	}
	return nil
}

// NormalizeActions checks actions as a client sent them and returns them as they are stored:
// the historical "dont_notify" and "coalesce" stripped, as the spec asks of homeservers.
// Every other action must be "notify" or a {"set_tweak": name, ...} object.
func NormalizeActions(actions []json.RawMessage) ([]json.RawMessage, error) {
	if actions == nil {
		return nil, invalid("actions is required")
	}
	out := make([]json.RawMessage, 0, len(actions))
	for _, a := range actions {
		a = bytes.TrimSpace(a)
		var s string
		if json.Unmarshal(a, &s) == nil {
			switch s {
			case "notify":
				out = append(out, json.RawMessage(`"notify"`))
			case "dont_notify", "coalesce":
			default:
				return nil, invalid("unknown action %q", s)
			}
			continue
		}
		var tweak map[string]json.RawMessage
		if json.Unmarshal(a, &tweak) != nil || tweak == nil {
			return nil, invalid("an action must be a string or an object")
		}
		var name string
		if json.Unmarshal(tweak["set_tweak"], &name) != nil || name == "" {
			return nil, invalid("an action object must have a set_tweak string")
		}
		if name == "highlight" {
			if v, ok := tweak["value"]; ok && string(bytes.TrimSpace(v)) != "true" && string(bytes.TrimSpace(v)) != "false" {
				return nil, invalid("the highlight tweak's value must be a boolean")
			}
		}
		out = append(out, append(json.RawMessage(nil), a...))
	}
	return out, nil
}

// CheckConditions checks the conditions of an override or underride rule: each has a kind,
// and the parameters its kind requires. Kinds this server does not know are kept: they never
// match, which the spec asks for.
func CheckConditions(conds []Condition) error {
	for i, c := range conds {
		switch c.Kind {
		case "":
			return invalid("condition %d has no kind", i)
		case CondEventMatch:
			if c.Key == "" || c.Pattern == nil {
				return invalid("event_match condition %d needs key and pattern", i)
			}
		case CondEventPropertyIs, CondEventPropertyContains:
			if c.Key == "" || c.Value == nil {
				return invalid("%s condition %d needs key and value", c.Kind, i)
			}
			if v := bytes.TrimSpace(c.Value); len(v) == 0 || v[0] == '{' || v[0] == '[' {
				return invalid("%s condition %d: value must be a string, integer, boolean or null", c.Kind, i)
			}
			if v := bytes.TrimSpace(c.Value); v[0] != '"' && string(v) != "true" && string(v) != "false" && string(v) != "null" &&
				bytes.ContainsAny(v, ".eE") {
				return invalid("%s condition %d: a number must be an integer", c.Kind, i)
			}
		case CondRoomMemberCount:
			if c.Is == "" {
				return invalid("room_member_count condition %d needs is", i)
			}
		case CondSenderNotificationPermission:
			if c.Key == "" {
				return invalid("sender_notification_permission condition %d needs key", i)
			}
		}
	}
	return nil
}
