package auth

import (
	"errors"
	"fmt"
)

// ErrNotAllowed is wrapped by every rejection: callers match it with errors.Is and find the rule
// with errors.As on a *RuleError.
var ErrNotAllowed = errors.New("event not allowed by the auth rules")

// ErrMissingAuthEvent is returned by CheckAuthEventsList when an id in the event's auth_events
// has no event among those supplied. It is not a rejection: the caller must fetch the event
// (or give up on the event as unauthorisable) before the rules can be applied.
var ErrMissingAuthEvent = errors.New("auth event not supplied")

// A Rule names an authorisation rule. The spec renumbers its rules from one room version to the
// next (the membership rules are 5 in v1–v5, 4 in v6–v11 and 5 again in v12), so rules are named
// by what they check; each constant's comment gives its numbers.
type Rule string

// Rules, in the order the spec applies them.
const (
	// 1.1: an m.room.create event has prev_events.
	RuleCreatePrevEvents Rule = "create: has prev_events"
	// 1.2 (v1–v11): the room id's domain is not the sender's.
	RuleCreateRoomIDDomain Rule = "create: room_id domain does not match sender"
	// 1.2 (v12): the create event has a room_id.
	RuleCreateHasRoomID Rule = "create: has a room_id"
	// 1.3: content.room_version is not a recognised version.
	RuleCreateRoomVersion Rule = "create: unknown room_version"
	// 1.4 (v1–v10): content has no creator.
	RuleCreateNoCreator Rule = "create: no creator"
	// 1.4 (v12): additional_creators is not an array of valid user ids.
	RuleCreateAdditionalCreators Rule = "create: invalid additional_creators"

	// 2 (v12): the room id is not "!" + the create event's id hash.
	RuleRoomIDNotCreate Rule = "room_id is not that of the create event"
	// The state checked against holds no m.room.create event (all versions).
	RuleNoCreateEvent Rule = "no m.room.create event"

	// 2.1 / 3.1: duplicate (type, state_key) among auth_events.
	RuleAuthEventsDuplicate Rule = "auth_events: duplicate type and state_key"
	// 2.2 / 3.2: an auth event is not one the auth events selection would pick.
	RuleAuthEventsNotSelected Rule = "auth_events: entry not in auth events selection"
	// 2.4 (v1–v11): no m.room.create among auth_events.
	RuleAuthEventsNoCreate Rule = "auth_events: no m.room.create"
	// 2.5 / 3.5: an auth event is in another room.
	RuleAuthEventsRoomID Rule = "auth_events: entry from another room"

	// 3 / 4 (v12): m.federate is false and the sender is from another server than the creator.
	RuleNotFederated Rule = "m.federate is false and sender is remote"

	// 4 (v1–v5): m.room.aliases without state_key, or state_key not the sender's domain.
	RuleAliasesNoStateKey Rule = "aliases: no state_key"
	RuleAliasesDomain     Rule = "aliases: state_key is not the sender's domain"

	// Membership rules: 5 in v1–v5 and v12, 4 in v6–v11.
	RuleMemberNoStateKey  Rule = "member: no state_key or membership"
	RuleMemberAuthoriser  Rule = "member: not signed by join_authorised_via_users_server's server"
	RuleJoinNotSelf       Rule = "join: sender is not state_key"
	RuleJoinBanned        Rule = "join: sender is banned"
	RuleJoinNotInvited    Rule = "join: join rule needs invite"
	RuleJoinRestricted    Rule = "join: authorising user cannot invite or is not joined"
	RuleJoinRule          Rule = "join: join rule does not allow joining"
	RuleInviteTPBanned    Rule = "invite: third-party target is banned"
	RuleInviteTPNoSigned  Rule = "invite: third_party_invite has no signed"
	RuleInviteTPSigned    Rule = "invite: signed has no mxid or token"
	RuleInviteTPMXID      Rule = "invite: signed.mxid is not state_key"
	RuleInviteTPNoEvent   Rule = "invite: no m.room.third_party_invite for token"
	RuleInviteTPSender    Rule = "invite: sender did not send the m.room.third_party_invite"
	RuleInviteTPSignature Rule = "invite: no signature in signed matches a public key"
	RuleInviteNotJoined   Rule = "invite: sender is not joined"
	RuleInviteTarget      Rule = "invite: target is joined or banned"
	RuleInviteLevel       Rule = "invite: sender's power level is below invite"
	RuleLeaveSelf         Rule = "leave: sender is not invited, joined or knocking"
	RuleLeaveNotJoined    Rule = "leave: sender is not joined"
	RuleLeaveBanned       Rule = "leave: target is banned and sender is below ban"
	RuleLeaveKick         Rule = "leave: sender cannot kick target"
	RuleBanNotJoined      Rule = "ban: sender is not joined"
	RuleBanLevel          Rule = "ban: sender cannot ban target"
	RuleKnockJoinRule     Rule = "knock: join rule does not allow knocking"
	RuleKnockNotSelf      Rule = "knock: sender is not state_key"
	RuleKnockMembership   Rule = "knock: sender is banned, invited or joined"
	RuleMembershipUnknown Rule = "member: unknown membership"

	// 6 (v1–v5, v12) / 5 (v6–v11): the sender is not joined.
	RuleSenderNotJoined Rule = "sender is not joined"
	// m.room.third_party_invite: the sender is below the invite level.
	RuleThirdPartyInviteLevel Rule = "third_party_invite: sender's power level is below invite"
	// The sender is below the event type's required power level.
	RuleEventLevel Rule = "sender's power level is below the event's required level"
	// A state_key starting with "@" is not the sender.
	RuleStateKeyUser Rule = "state_key is another user's id"

	// m.room.power_levels rules (10 in v1–v5 and v12, 9 in v6–v11).
	RulePowerLevelsContent  Rule = "power_levels: invalid content"
	RulePowerLevelsCreators Rule = "power_levels: users contains a room creator"
	RulePowerLevelsChange   Rule = "power_levels: change beyond the sender's power level"

	// 11 (v1, v2): a redaction by a sender below the redact level of another server's event.
	RuleRedaction Rule = "redaction: sender below redact level and event from another server"

	// Not a rule of the spec: the room's current m.room.power_levels (or create) event cannot be
	// read. It was accepted, so this only happens with a corrupt state; rejecting is the safe side.
	RuleBadAuthState Rule = "auth state unreadable"
)

// A RuleError says which rule rejected an event. It wraps ErrNotAllowed.
type RuleError struct {
	Rule   Rule
	Detail string // for logs: never message content, only ids and levels
}

func (e *RuleError) Error() string {
	if e.Detail == "" {
		return "not allowed: " + string(e.Rule)
	}
	return "not allowed: " + string(e.Rule) + ": " + e.Detail
}

func (e *RuleError) Unwrap() error { return ErrNotAllowed }

func reject(r Rule) error { return &RuleError{Rule: r} }

func rejectf(r Rule, format string, args ...any) error {
	return &RuleError{Rule: r, Detail: fmt.Sprintf(format, args...)}
}
