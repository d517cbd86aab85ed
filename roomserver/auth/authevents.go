package auth

import (
	"encoding/json"
	"fmt"

	"myelin/roomserver/event"
)

// Event types that the auth rules read.
const (
	TypeCreate           = "m.room.create"
	TypeMember           = "m.room.member"
	TypeJoinRules        = "m.room.join_rules"
	TypePowerLevels      = "m.room.power_levels"
	TypeThirdPartyInvite = "m.room.third_party_invite"
	TypeAliases          = "m.room.aliases"
	TypeRedaction        = "m.room.redaction"
)

// AuthEvents is the state an event is checked against: its auth_events, the state before it, or
// the room's current state. A method returns nil when the state holds no such event.
//
// From room version 12 the create event is never among auth_events; the caller supplies the
// room's create event through Create all the same.
type AuthEvents interface {
	Create() *event.Event
	PowerLevels() *event.Event
	JoinRules() *event.Event
	Member(userID string) *event.Event
	ThirdPartyInvite(token string) *event.Event
}

// StateMap is an AuthEvents over a map from (type, state_key) to event, such as a state
// snapshot or a room's current state, so it costs nothing to build from one.
type StateMap map[event.StateTuple]*event.Event

var _ AuthEvents = StateMap(nil)

// NewStateMap keys state events by (type, state_key); a later event replaces an earlier one
// with the same key, and events without a state_key are ignored. The rules about duplicates in
// auth_events are CheckAuthEventsList's business, not this map's.
func NewStateMap(events ...*event.Event) StateMap {
	m := make(StateMap, len(events))
	for _, e := range events {
		m.Add(e)
	}
	return m
}

// Add puts a state event in the map.
func (m StateMap) Add(e *event.Event) {
	if t, ok := e.Tuple(); ok {
		m[t] = e
	}
}

func (m StateMap) Create() *event.Event      { return m[event.StateTuple{Type: TypeCreate}] }
func (m StateMap) PowerLevels() *event.Event { return m[event.StateTuple{Type: TypePowerLevels}] }
func (m StateMap) JoinRules() *event.Event   { return m[event.StateTuple{Type: TypeJoinRules}] }
func (m StateMap) Member(userID string) *event.Event {
	return m[event.StateTuple{Type: TypeMember, StateKey: userID}]
}
func (m StateMap) ThirdPartyInvite(token string) *event.Event {
	return m[event.StateTuple{Type: TypeThirdPartyInvite, StateKey: token}]
}

// memberContent is the part of m.room.member content that auth and auth events selection read.
type memberContent struct {
	Membership       *string         `json:"membership"`
	ThirdPartyInvite json.RawMessage `json:"third_party_invite"`
	AuthorisedVia    json.RawMessage `json:"join_authorised_via_users_server"`
}

func (c memberContent) authoriser() (string, bool) {
	if c.AuthorisedVia == nil {
		return "", false
	}
	var s string
	if json.Unmarshal(c.AuthorisedVia, &s) != nil {
		return "", true // present but not a user id: no server can have signed for it
	}
	return s, true
}

// thirdPartySigned is content.third_party_invite.signed.
type thirdPartySigned struct {
	MXID  *string `json:"mxid"`
	Token *string `json:"token"`
}

func thirdPartyToken(tpi json.RawMessage) (string, bool) {
	var c struct {
		Signed thirdPartySigned `json:"signed"`
	}
	if json.Unmarshal(tpi, &c) != nil || c.Signed.Token == nil {
		return "", false
	}
	return *c.Signed.Token, true
}

// StateNeededForAuth is the "auth events selection" of the server-server API: the state an
// event of this type, state_key, sender and content needs in its auth_events. stateKey is only
// read for m.room.member. The create event itself needs nothing; from room version 12 the
// create event is never selected. Entries are unique.
func StateNeededForAuth(typ, stateKey, sender string, content json.RawMessage, v event.RoomVersion) []event.StateTuple {
	if typ == TypeCreate {
		return nil
	}
	out := make([]event.StateTuple, 0, 6)
	add := func(t event.StateTuple) {
		for _, x := range out {
			if x == t {
				return
			}
		}
		out = append(out, t)
	}
	if !v.RoomIDFromCreateEvent {
		add(event.StateTuple{Type: TypeCreate})
	}
	add(event.StateTuple{Type: TypePowerLevels})
	add(event.StateTuple{Type: TypeMember, StateKey: sender})
	if typ != TypeMember {
		return out
	}
	add(event.StateTuple{Type: TypeMember, StateKey: stateKey})
	var c memberContent
	if json.Unmarshal(content, &c) != nil || c.Membership == nil {
		// The event fails the membership rules anyway; what it selected does not matter.
		return out
	}
	switch *c.Membership {
	case "join", "invite", "knock":
		add(event.StateTuple{Type: TypeJoinRules})
	}
	if *c.Membership == "invite" && c.ThirdPartyInvite != nil {
		if token, ok := thirdPartyToken(c.ThirdPartyInvite); ok {
			add(event.StateTuple{Type: TypeThirdPartyInvite, StateKey: token})
		}
	}
	if *c.Membership == "join" && v.RestrictedJoins {
		if via, ok := c.authoriser(); ok && via != "" {
			add(event.StateTuple{Type: TypeMember, StateKey: via})
		}
	}
	return out
}

// CheckAuthEventsList applies the rules about an event's auth_events list itself ("Considering
// the event's auth_events": rules 2.x, 3.x in v12): no duplicate (type, state_key), nothing
// outside the auth events selection, an m.room.create among them (v1–v11), all in the event's
// room. It is the first of the checks on receipt of a PDU; Check then applies the remaining
// rules with StateMap(authEvents) (plus, in v12, the create event).
//
// authEvents must hold the event for every id in e.AuthEventIDs(); an id without one gives
// ErrMissingAuthEvent. Supplied events that e does not list are ignored. The rule that no auth
// event was itself rejected needs the caller's knowledge of rejections and is not checked here.
func CheckAuthEventsList(e *event.Event, authEvents []*event.Event) error {
	if e.Type() == TypeCreate {
		// Rule 1 decides create events before the auth_events rules are reached.
		return nil
	}
	byID := make(map[string]*event.Event, len(authEvents))
	for _, a := range authEvents {
		byID[a.ID()] = a
	}
	v := e.Version()
	var sk string
	if e.StateKey() != nil {
		sk = *e.StateKey()
	}
	needed := StateNeededForAuth(e.Type(), sk, e.Sender(), e.Content(), v)
	seen := make(map[event.StateTuple]bool, len(e.AuthEventIDs()))
	hasCreate := false
	for _, id := range e.AuthEventIDs() {
		a, ok := byID[id]
		if !ok {
			return fmt.Errorf("%w: %s", ErrMissingAuthEvent, id)
		}
		t, isState := a.Tuple()
		if isState && seen[t] {
			return rejectf(RuleAuthEventsDuplicate, "%s %q", t.Type, t.StateKey)
		}
		seen[t] = true
		if !isState || !containsTuple(needed, t) {
			return rejectf(RuleAuthEventsNotSelected, "%s", id)
		}
		if t.Type == TypeCreate {
			hasCreate = true
		}
		if a.RoomID() != e.RoomID() {
			return rejectf(RuleAuthEventsRoomID, "%s", id)
		}
	}
	if !v.RoomIDFromCreateEvent && !hasCreate {
		return reject(RuleAuthEventsNoCreate)
	}
	return nil
}

func containsTuple(ts []event.StateTuple, t event.StateTuple) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}
