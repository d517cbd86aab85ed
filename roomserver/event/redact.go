package event

import (
	"fmt"

	"myelin/keys"
)

// The top-level keys that survive redaction (client-server API "Redactions", per room version).
var (
	redactKeepV1 = []string{
		"event_id", "type", "room_id", "sender", "state_key", "content", "hashes", "signatures",
		"depth", "prev_events", "prev_state", "auth_events", "origin", "origin_server_ts", "membership",
	}
	// v11 drops origin, membership and prev_state.
	redactKeepV11 = []string{
		"event_id", "type", "room_id", "sender", "state_key", "content", "hashes", "signatures",
		"depth", "prev_events", "auth_events", "origin_server_ts",
	}
)

// contentKeep lists, per event type, the content keys that survive redaction. keepAll marks a
// type whose content survives whole (m.room.create from v11).
type contentKeep struct {
	keys    []string
	keepAll bool
}

var powerLevelsKeepV1 = []string{"ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"}

var redactContent = map[RedactionAlgorithm]map[string]contentKeep{
	RedactionV1: {
		"m.room.member":             {keys: []string{"membership"}},
		"m.room.create":             {keys: []string{"creator"}},
		"m.room.join_rules":         {keys: []string{"join_rule"}},
		"m.room.power_levels":       {keys: powerLevelsKeepV1},
		"m.room.aliases":            {keys: []string{"aliases"}},
		"m.room.history_visibility": {keys: []string{"history_visibility"}},
	},
	RedactionV6: { // m.room.aliases keeps nothing
		"m.room.member":             {keys: []string{"membership"}},
		"m.room.create":             {keys: []string{"creator"}},
		"m.room.join_rules":         {keys: []string{"join_rule"}},
		"m.room.power_levels":       {keys: powerLevelsKeepV1},
		"m.room.history_visibility": {keys: []string{"history_visibility"}},
	},
	RedactionV8: { // join_rules keeps allow
		"m.room.member":             {keys: []string{"membership"}},
		"m.room.create":             {keys: []string{"creator"}},
		"m.room.join_rules":         {keys: []string{"join_rule", "allow"}},
		"m.room.power_levels":       {keys: powerLevelsKeepV1},
		"m.room.history_visibility": {keys: []string{"history_visibility"}},
	},
	RedactionV9: { // member keeps join_authorised_via_users_server
		"m.room.member":             {keys: []string{"membership", "join_authorised_via_users_server"}},
		"m.room.create":             {keys: []string{"creator"}},
		"m.room.join_rules":         {keys: []string{"join_rule", "allow"}},
		"m.room.power_levels":       {keys: powerLevelsKeepV1},
		"m.room.history_visibility": {keys: []string{"history_visibility"}},
	},
	RedactionV11: { // also third_party_invite.signed, whole create, power levels invite, redacts
		"m.room.member":             {keys: []string{"membership", "join_authorised_via_users_server"}},
		"m.room.create":             {keepAll: true},
		"m.room.join_rules":         {keys: []string{"join_rule", "allow"}},
		"m.room.power_levels":       {keys: append(append([]string{}, powerLevelsKeepV1...), "invite")},
		"m.room.history_visibility": {keys: []string{"history_visibility"}},
		"m.room.redaction":          {keys: []string{"redacts"}},
	},
}

// Redact applies the redaction algorithm of the room version to a raw PDU and returns the
// redacted PDU as canonical JSON.
func Redact(raw []byte, v RoomVersion) ([]byte, error) {
	o, err := keys.ParseObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	r, err := redactObject(o, v)
	if err != nil {
		return nil, err
	}
	return r.JSON(), nil
}

// Redacted returns the event as it is after redaction: same id, stripped content, no unsigned.
func (e *Event) Redacted() (*Event, error) {
	r, err := redactObject(e.obj, e.version)
	if err != nil {
		return nil, err
	}
	return Parse(r.JSON(), e.version)
}

func redactObject(o keys.Object, v RoomVersion) (keys.Object, error) {
	keep := redactKeepV1
	if v.Redaction == RedactionV11 {
		keep = redactKeepV11
	}
	r := o.Keep(keep...)
	rules, ok := redactContent[v.Redaction]
	if !ok {
		return keys.Object{}, fmt.Errorf("room version %s: unknown redaction algorithm %d", v.ID, v.Redaction)
	}
	content, hasContent := o.Get("content")
	if !hasContent {
		return r, nil
	}
	var typ string
	if t, ok := o.Get("type"); ok {
		typ, _ = keys.Unquote(t)
	}
	rule := rules[typ]
	if rule.keepAll {
		return r, nil
	}
	kept := keys.Object{}
	if c, err := keys.ParseObject(content); err == nil {
		kept = c.Keep(rule.keys...)
		if v.Redaction == RedactionV11 && typ == "m.room.member" {
			kept = keepThirdPartySigned(c, kept)
		}
	}
	return r.With("content", kept.JSON()), nil
}

// keepThirdPartySigned keeps content.third_party_invite.signed of a v11 membership event: it is
// what lets the auth rules check the invite after redaction.
func keepThirdPartySigned(content, kept keys.Object) keys.Object {
	tpi, ok := content.Get("third_party_invite")
	if !ok {
		return kept
	}
	inv, err := keys.ParseObject(tpi)
	if err != nil {
		return kept
	}
	signed, ok := inv.Get("signed")
	if !ok {
		return kept
	}
	return kept.With("third_party_invite", keys.Object{}.With("signed", signed).JSON())
}
