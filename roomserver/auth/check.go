// Package auth implements the authorisation rules of room versions 1 to 12 as the spec's room
// version pages state them, as pure functions over parsed events. Differences between versions
// are read from the event.RoomVersion table, never from version strings.
//
// On receipt of a PDU a server runs CheckAuthEventsList and then Check against the event's own
// auth events, then Check against the state before the event, then (soft failure) against the
// current state. Signatures are verified elsewhere (event.VerifySignatures, including the
// signature of join_authorised_via_users_server's server); the rules here only require that such
// a signature is present, and verify the third-party invite signatures themselves.
package auth

import (
	"encoding/json"
	"strings"

	"myelin/keys"
	"myelin/roomserver/event"
)

// Check applies the authorisation rules of e's room version to e against the state in auth. It
// returns nil if e is allowed, or an error wrapping ErrNotAllowed (a *RuleError) naming the rule
// that rejected it.
func Check(e *event.Event, auth AuthEvents) error {
	if e.Type() == TypeCreate {
		return checkCreate(e)
	}
	v := e.Version()
	create := auth.Create()
	if create == nil {
		return reject(RuleNoCreateEvent)
	}
	if v.RoomIDFromCreateEvent && e.RoomID() != "!"+strings.TrimPrefix(create.ID(), "$") {
		return rejectf(RuleRoomIDNotCreate, "%s", e.RoomID())
	}
	cc, err := parseCreate(create)
	if err != nil {
		return rejectf(RuleBadAuthState, "%v", err)
	}
	if !cc.federate && e.SenderDomain() != create.SenderDomain() {
		return reject(RuleNotFederated)
	}
	if v.SpecialCasedAliases && e.Type() == TypeAliases {
		if e.StateKey() == nil {
			return reject(RuleAliasesNoStateKey)
		}
		if *e.StateKey() != string(e.SenderDomain()) {
			return rejectf(RuleAliasesDomain, "%q", *e.StateKey())
		}
		return nil
	}

	pl, err := NewPowerLevels(auth.PowerLevels(), create)
	if err != nil {
		return rejectf(RuleBadAuthState, "%v", err)
	}
	c := checker{e: e, v: v, auth: auth, create: cc, pl: pl}
	if e.Type() == TypeMember {
		return c.member()
	}
	if membership(auth.Member(e.Sender())) != "join" {
		return reject(RuleSenderNotJoined)
	}
	senderLevel := pl.UserLevel(e.Sender())
	if e.Type() == TypeThirdPartyInvite {
		if senderLevel >= pl.InviteLevel() {
			return nil
		}
		return reject(RuleThirdPartyInviteLevel)
	}
	if need := pl.EventLevel(e.Type(), e.IsState()); need > senderLevel {
		return rejectf(RuleEventLevel, "%s needs %d, sender has %d", e.Type(), need, senderLevel)
	}
	if sk := e.StateKey(); sk != nil && strings.HasPrefix(*sk, "@") && *sk != e.Sender() {
		return reject(RuleStateKeyUser)
	}
	if e.Type() == TypePowerLevels {
		return c.powerLevels()
	}
	// Only v1 and v2 authorise redactions: their event ids name the server that minted them,
	// which later versions' hash ids do not.
	if e.Type() == TypeRedaction && v.EventIDs == event.IDServerMinted {
		if senderLevel >= pl.RedactLevel() {
			return nil
		}
		if domain(e.Redacts()) == domain(e.ID()) {
			return nil
		}
		return reject(RuleRedaction)
	}
	return nil
}

// checker carries what the rules for one event have already read.
type checker struct {
	e      *event.Event
	v      event.RoomVersion
	auth   AuthEvents
	create createContent
	pl     PowerLevels
}

// membership is content.membership of a member event, "" when there is none.
func membership(m *event.Event) string {
	if m == nil {
		return ""
	}
	s, err := m.Membership()
	if err != nil {
		return ""
	}
	return s
}

// joinRule is the room's join rule. A room without m.room.join_rules is treated as "invite",
// the join rule a room has until one is sent (as Synapse and Dendrite do).
func (c *checker) joinRule() string {
	jr := c.auth.JoinRules()
	if jr == nil {
		return "invite"
	}
	var content struct {
		JoinRule string `json:"join_rule"`
	}
	if json.Unmarshal(jr.Content(), &content) != nil {
		return ""
	}
	return content.JoinRule
}

// member is the m.room.member rule (5 in v1–v5 and v12, 4 in v6–v11).
func (c *checker) member() error {
	e := c.e
	var content memberContent
	if e.StateKey() == nil || json.Unmarshal(e.Content(), &content) != nil || content.Membership == nil {
		return reject(RuleMemberNoStateKey)
	}
	target := *e.StateKey()
	if c.v.RestrictedJoins {
		if via, ok := content.authoriser(); ok && !signedBy(e, domain(via)) {
			return rejectf(RuleMemberAuthoriser, "%s", via)
		}
	}
	sender := e.Sender()
	senderMembership := membership(c.auth.Member(sender))
	targetMembership := membership(c.auth.Member(target))
	senderLevel := c.pl.UserLevel(sender)

	switch *content.Membership {
	case "join":
		prev := e.PrevEventIDs()
		if len(prev) == 1 && prev[0] == c.create.createdID && target == c.create.creator {
			return nil
		}
		if sender != target {
			return reject(RuleJoinNotSelf)
		}
		if senderMembership == "ban" {
			return reject(RuleJoinBanned)
		}
		rule := c.joinRule()
		if rule == "invite" || (c.v.Knocking && rule == "knock") {
			if senderMembership == "invite" || senderMembership == "join" {
				return nil
			}
			return reject(RuleJoinNotInvited)
		}
		if (c.v.RestrictedJoins && rule == "restricted") || (c.v.KnockRestricted && rule == "knock_restricted") {
			if senderMembership == "join" || senderMembership == "invite" {
				return nil
			}
			via, _ := content.authoriser()
			if via == "" || membership(c.auth.Member(via)) != "join" || c.pl.UserLevel(via) < c.pl.InviteLevel() {
				return rejectf(RuleJoinRestricted, "%s", via)
			}
			return nil
		}
		if rule == "public" {
			return nil
		}
		return rejectf(RuleJoinRule, "%q", rule)

	case "invite":
		if content.ThirdPartyInvite != nil {
			return c.thirdPartyInvite(content.ThirdPartyInvite, target, targetMembership)
		}
		if senderMembership != "join" {
			return reject(RuleInviteNotJoined)
		}
		if targetMembership == "join" || targetMembership == "ban" {
			return rejectf(RuleInviteTarget, "%s", targetMembership)
		}
		if senderLevel >= c.pl.InviteLevel() {
			return nil
		}
		return reject(RuleInviteLevel)

	case "leave":
		if sender == target {
			if senderMembership == "invite" || senderMembership == "join" || (c.v.Knocking && senderMembership == "knock") {
				return nil
			}
			return rejectf(RuleLeaveSelf, "%q", senderMembership)
		}
		if senderMembership != "join" {
			return reject(RuleLeaveNotJoined)
		}
		if targetMembership == "ban" && senderLevel < c.pl.BanLevel() {
			return reject(RuleLeaveBanned)
		}
		if senderLevel >= c.pl.KickLevel() && c.pl.UserLevel(target) < senderLevel {
			return nil
		}
		return reject(RuleLeaveKick)

	case "ban":
		if senderMembership != "join" {
			return reject(RuleBanNotJoined)
		}
		if senderLevel >= c.pl.BanLevel() && c.pl.UserLevel(target) < senderLevel {
			return nil
		}
		return reject(RuleBanLevel)

	case "knock":
		if !c.v.Knocking {
			break
		}
		rule := c.joinRule()
		if rule != "knock" && !(c.v.KnockRestricted && rule == "knock_restricted") {
			return rejectf(RuleKnockJoinRule, "%q", rule)
		}
		if sender != target {
			return reject(RuleKnockNotSelf)
		}
		if senderMembership != "ban" && senderMembership != "invite" && senderMembership != "join" {
			return nil
		}
		return rejectf(RuleKnockMembership, "%q", senderMembership)
	}
	return rejectf(RuleMembershipUnknown, "%q", *content.Membership)
}

// signedBy says whether the PDU carries a signature of server. Whether that signature verifies
// is event.VerifySignatures' part of the checks on receipt.
func signedBy(e *event.Event, server string) bool {
	if server == "" {
		return false
	}
	o, err := keys.ParseObject(e.JSON())
	if err != nil {
		return false
	}
	sigs, err := keys.Signatures(o, server)
	return err == nil && len(sigs) > 0
}
