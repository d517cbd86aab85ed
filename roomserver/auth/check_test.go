package auth

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"myelin/keys"
	"myelin/roomserver/event"
)

// authCase is one row of the rules table. Names cite the spec rule by its v6–v11 / v12 number
// (v1–v5 and v12 number the membership rules and what follows one higher than v6–v11).
type authCase struct {
	name     string
	versions string         // "1-12", "6-", "-5", "12"
	create   map[string]any // extra create content
	setup    func(r *testRoom, s StateMap)
	event    func(r *testRoom) pdu
	want     Rule // "" for allowed
}

func inVersions(spec, id string) bool {
	n, _ := strconv.Atoi(id)
	lo, hi, isRange := strings.Cut(spec, "-")
	if !isRange {
		v, _ := strconv.Atoi(spec)
		return n == v
	}
	l, h := 1, 12
	if lo != "" {
		l, _ = strconv.Atoi(lo)
	}
	if hi != "" {
		h, _ = strconv.Atoi(hi)
	}
	return n >= l && n <= h
}

func msg(sender string) func(*testRoom) pdu {
	return func(*testRoom) pdu {
		return pdu{"type": "m.room.message", "sender": sender, "content": map[string]any{"body": "hi", "msgtype": "m.text"}}
	}
}

func stateEv(typ, sender, sk string, content map[string]any) func(*testRoom) pdu {
	return func(*testRoom) pdu {
		return pdu{"type": typ, "sender": sender, "state_key": sk, "content": content}
	}
}

func memberEv(sender, target, membership string) func(*testRoom) pdu {
	return func(*testRoom) pdu {
		return pdu{"type": TypeMember, "sender": sender, "state_key": target, "content": map[string]any{"membership": membership}}
	}
}

func setJoinRule(rule string) func(r *testRoom, s StateMap) {
	return func(r *testRoom, s StateMap) {
		s.Add(r.state(TypeJoinRules, alice, "", map[string]any{"join_rule": rule}))
	}
}

// setPL changes the default power levels content before the event is checked.
func setPL(change func(c map[string]any)) func(r *testRoom, s StateMap) {
	return func(r *testRoom, s StateMap) {
		c := r.defaultPowerLevels()
		change(c)
		s.Add(r.state(TypePowerLevels, alice, "", c))
	}
}

func plWith(r *testRoom, change func(c map[string]any)) map[string]any {
	c := r.defaultPowerLevels()
	change(c)
	return c
}

func restrictedJoin(via, signer string) func(*testRoom) pdu {
	return func(*testRoom) pdu {
		content := map[string]any{"membership": "join"}
		if via != "" {
			content["join_authorised_via_users_server"] = via
		}
		sigs := map[string]any{"c.example": map[string]string{"ed25519:a": fakeSig}}
		if signer != "" {
			sigs[signer] = map[string]string{"ed25519:b": fakeSig}
		}
		return pdu{"type": TypeMember, "sender": carol, "state_key": carol, "content": content, "signatures": sigs}
	}
}

var rulesCases = []authCase{
	// Rule 1: m.room.create.
	{name: "1.5 create allowed", versions: "1-12", event: func(r *testRoom) pdu {
		return createPDU(r, map[string]any{})
	}},
	{name: "1.1 create with prev_events", versions: "1-12", event: func(r *testRoom) pdu {
		p := createPDU(r, map[string]any{})
		p["prev_events"] = []string{r.fakeID("p")}
		return p
	}, want: RuleCreatePrevEvents},
	{name: "1.2 create room_id domain differs from sender", versions: "1-11", event: func(r *testRoom) pdu {
		p := createPDU(r, map[string]any{})
		p["room_id"] = "!room:elsewhere.example"
		return p
	}, want: RuleCreateRoomIDDomain},
	{name: "1.3 unknown room_version", versions: "1-12", event: func(r *testRoom) pdu {
		return createPDU(r, map[string]any{"room_version": "99"})
	}, want: RuleCreateRoomVersion},
	{name: "1.3 room_version not a string", versions: "1-12", event: func(r *testRoom) pdu {
		return createPDU(r, map[string]any{"room_version": 1})
	}, want: RuleCreateRoomVersion},
	{name: "1.4 (v1-v10) no creator", versions: "1-10", event: func(r *testRoom) pdu {
		return createPDU(r, map[string]any{"creator": nil})
	}, want: RuleCreateNoCreator},
	{name: "1 (v11+) creator not needed", versions: "11-", event: func(r *testRoom) pdu {
		return createPDU(r, map[string]any{"creator": nil})
	}},
	{name: "1.4 (v12) additional_creators invalid", versions: "12", event: func(r *testRoom) pdu {
		return createPDU(r, map[string]any{"additional_creators": []string{"not-a-user"}})
	}, want: RuleCreateAdditionalCreators},
	{name: "1.4 (v12) additional_creators not an array", versions: "12", event: func(r *testRoom) pdu {
		return createPDU(r, map[string]any{"additional_creators": zara})
	}, want: RuleCreateAdditionalCreators},
	{name: "1.4 (v12) additional_creators valid", versions: "12", event: func(r *testRoom) pdu {
		return createPDU(r, map[string]any{"additional_creators": []string{zara, "@Historical~Name:x.example"}})
	}},
	{name: "1 (v1-v11) additional_creators not checked", versions: "-11", event: func(r *testRoom) pdu {
		return createPDU(r, map[string]any{"additional_creators": []string{"not-a-user"}})
	}},

	// v12 rule 2 and the missing create event.
	{name: "2 (v12) room_id is not the create event's", versions: "12", event: func(r *testRoom) pdu {
		p := msg(bob)(r)
		p["room_id"] = "!" + strings.Repeat("B", 43)
		return p
	}, want: RuleRoomIDNotCreate},
	{name: "no create event in state", versions: "1-12", setup: func(r *testRoom, s StateMap) {
		delete(s, event.StateTuple{Type: TypeCreate})
	}, event: msg(bob), want: RuleNoCreateEvent},

	// Rule 3 (4 in v12): m.federate.
	{name: "3 m.federate false rejects remote sender", versions: "1-12", create: map[string]any{"m.federate": false},
		event: msg(bob), want: RuleNotFederated},
	{name: "3 m.federate false allows local sender", versions: "1-12", create: map[string]any{"m.federate": false},
		event: msg(alice)},
	{name: "3 m.federate true allows remote sender", versions: "1-12", create: map[string]any{"m.federate": true},
		event: msg(bob)},

	// Rule 4 (v1–v5): m.room.aliases.
	{name: "4.3 (v1-v5) aliases for sender's domain allowed even from non-member", versions: "-5",
		event: stateEv(TypeAliases, carol, "c.example", map[string]any{"aliases": []string{"#x:c.example"}})},
	{name: "4.2 (v1-v5) aliases state_key not sender's domain", versions: "-5",
		event: stateEv(TypeAliases, carol, "a.example", map[string]any{}), want: RuleAliasesDomain},
	{name: "4.1 (v1-v5) aliases without state_key", versions: "-5", event: func(*testRoom) pdu {
		return pdu{"type": TypeAliases, "sender": carol, "content": map[string]any{}}
	}, want: RuleAliasesNoStateKey},
	{name: "v6+ aliases are ordinary state: non-member rejected", versions: "6-",
		event: stateEv(TypeAliases, carol, "c.example", map[string]any{}), want: RuleSenderNotJoined},
	{name: "v6+ aliases are ordinary state: state_default applies", versions: "6-",
		event: stateEv(TypeAliases, mallory, "b.example", map[string]any{}), want: RuleEventLevel},

	// Membership rules (5 in v1–v5 and v12, 4 in v6–v11).
	{name: "4.1 member without membership", versions: "1-12", event: func(*testRoom) pdu {
		return pdu{"type": TypeMember, "sender": carol, "state_key": carol, "content": map[string]any{}}
	}, want: RuleMemberNoStateKey},
	{name: "4.1 member without state_key", versions: "1-12", event: func(*testRoom) pdu {
		return pdu{"type": TypeMember, "sender": carol, "content": map[string]any{"membership": "join"}}
	}, want: RuleMemberNoStateKey},
	{name: "4.3.1 creator's first join after create", versions: "1-12", setup: func(r *testRoom, s StateMap) {
		for k := range s {
			if k.Type != TypeCreate {
				delete(s, k)
			}
		}
	}, event: func(r *testRoom) pdu {
		return pdu{"type": TypeMember, "sender": alice, "state_key": alice, "content": map[string]any{"membership": "join"}, "prev_events": []string{r.create.ID()}}
	}},
	{name: "4.3.1 only the creator joins right after create", versions: "1-12", setup: func(r *testRoom, s StateMap) {
		for k := range s {
			if k.Type != TypeCreate {
				delete(s, k)
			}
		}
	}, event: func(r *testRoom) pdu {
		return pdu{"type": TypeMember, "sender": bob, "state_key": bob, "content": map[string]any{"membership": "join"}, "prev_events": []string{r.create.ID()}}
	}, want: RuleJoinNotInvited},
	{name: "4.3.2 join for someone else", versions: "1-12", event: memberEv(bob, carol, "join"), want: RuleJoinNotSelf},
	{name: "4.3.3 banned user joins", versions: "1-12", event: memberEv(eve, eve, "join"), want: RuleJoinBanned},
	{name: "4.3.6 public room join", versions: "1-12", event: memberEv(carol, carol, "join")},
	{name: "4.3.4 invite-only join without invite", versions: "1-12", setup: setJoinRule("invite"),
		event: memberEv(carol, carol, "join"), want: RuleJoinNotInvited},
	{name: "4.3.4 invite-only join with invite", versions: "1-12", setup: setJoinRule("invite"),
		event: memberEv(dave, dave, "join")},
	{name: "4.3.4 invite-only: joined user re-joins", versions: "1-12", setup: setJoinRule("invite"),
		event: memberEv(mallory, mallory, "join")},
	{name: "4.3.4 no join_rules event means invite", versions: "1-12", setup: func(r *testRoom, s StateMap) {
		delete(s, event.StateTuple{Type: TypeJoinRules})
	}, event: memberEv(carol, carol, "join"), want: RuleJoinNotInvited},
	{name: "4.3.4 (v7+) knock rule allows invited join", versions: "7-", setup: setJoinRule("knock"),
		event: memberEv(dave, dave, "join")},
	{name: "4.3.4 (v7+) knock rule rejects uninvited join", versions: "7-", setup: setJoinRule("knock"),
		event: memberEv(carol, carol, "join"), want: RuleJoinNotInvited},
	{name: "4.3.6 (v1-v6) knock rule is unknown", versions: "-6", setup: setJoinRule("knock"),
		event: memberEv(dave, dave, "join"), want: RuleJoinRule},
	{name: "4.3.7 private join rule rejects", versions: "1-12", setup: setJoinRule("private"),
		event: memberEv(dave, dave, "join"), want: RuleJoinRule},
	{name: "4.3.5 (v8+) restricted join authorised by joined inviter", versions: "8-", setup: setJoinRule("restricted"),
		event: restrictedJoin(bob, "b.example")},
	{name: "4.2 (v8+) authoriser's server did not sign", versions: "8-", setup: setJoinRule("restricted"),
		event: restrictedJoin(bob, ""), want: RuleMemberAuthoriser},
	{name: "4.2 (v8+) authoriser signature rule applies to any join rule", versions: "8-",
		event: restrictedJoin(bob, ""), want: RuleMemberAuthoriser},
	{name: "4.2 (v1-v7) join_authorised_via_users_server ignored", versions: "-7",
		event: restrictedJoin(bob, "")},
	{name: "4.3.5.2 (v8+) authoriser not joined", versions: "8-", setup: setJoinRule("restricted"),
		event: restrictedJoin(zara, "z.example"), want: RuleJoinRestricted},
	{name: "4.3.5.2 (v8+) authoriser below invite level", versions: "8-", setup: func(r *testRoom, s StateMap) {
		setJoinRule("restricted")(r, s)
		setPL(func(c map[string]any) { c["invite"] = 60 })(r, s)
	}, event: restrictedJoin(bob, "b.example"), want: RuleJoinRestricted},
	{name: "4.3.5.2 (v8+) restricted join without authoriser", versions: "8-", setup: setJoinRule("restricted"),
		event: restrictedJoin("", ""), want: RuleJoinRestricted},
	{name: "4.3.5.1 (v8+) restricted join by invited user", versions: "8-", setup: setJoinRule("restricted"),
		event: memberEv(dave, dave, "join")},
	{name: "4.3.7 (v1-v7) restricted rule is unknown", versions: "-7", setup: setJoinRule("restricted"),
		event: restrictedJoin(bob, "b.example"), want: RuleJoinRule},
	{name: "4.3.5 (v10+) knock_restricted join authorised", versions: "10-", setup: setJoinRule("knock_restricted"),
		event: restrictedJoin(bob, "b.example")},
	{name: "4.3.7 (v1-v9) knock_restricted rule is unknown", versions: "-9", setup: setJoinRule("knock_restricted"),
		event: restrictedJoin(bob, "b.example"), want: RuleJoinRule},

	{name: "4.4.4 invite by joined member", versions: "1-12", event: memberEv(mallory, carol, "invite")},
	{name: "4.4.2 invite by non-member", versions: "1-12", event: memberEv(carol, zara, "invite"), want: RuleInviteNotJoined},
	{name: "4.4.3 invite a joined user", versions: "1-12", event: memberEv(bob, mallory, "invite"), want: RuleInviteTarget},
	{name: "4.4.3 invite a banned user", versions: "1-12", event: memberEv(bob, eve, "invite"), want: RuleInviteTarget},
	{name: "4.4.5 invite below invite level", versions: "1-12", setup: setPL(func(c map[string]any) { c["invite"] = 10 }),
		event: memberEv(mallory, carol, "invite"), want: RuleInviteLevel},

	{name: "4.5.1 leave by joined user", versions: "1-12", event: memberEv(mallory, mallory, "leave")},
	{name: "4.5.1 reject an invite", versions: "1-12", event: memberEv(dave, dave, "leave")},
	{name: "4.5.1 leave without membership", versions: "1-12", event: memberEv(carol, carol, "leave"), want: RuleLeaveSelf},
	{name: "4.5.1 banned user cannot unban self", versions: "1-12", event: memberEv(eve, eve, "leave"), want: RuleLeaveSelf},
	{name: "4.5.1 (v7+) rescind a knock", versions: "7-", setup: func(r *testRoom, s StateMap) {
		s.Add(r.member(carol, carol, "knock", nil))
	}, event: memberEv(carol, carol, "leave")},
	{name: "4.5.1 (v1-v6) knock membership cannot leave", versions: "-6", setup: func(r *testRoom, s StateMap) {
		s.Add(r.member(carol, carol, "knock", nil))
	}, event: memberEv(carol, carol, "leave"), want: RuleLeaveSelf},
	{name: "4.5.4 kick by moderator", versions: "1-12", event: memberEv(bob, mallory, "leave")},
	{name: "4.5.2 kick by non-member", versions: "1-12", event: memberEv(carol, mallory, "leave"), want: RuleLeaveNotJoined},
	{name: "4.5.5 kick below kick level", versions: "1-12", event: memberEv(mallory, bob, "leave"), want: RuleLeaveKick},
	{name: "4.5.5 kick a higher user", versions: "1-12", event: memberEv(bob, alice, "leave"), want: RuleLeaveKick},
	{name: "4.5.5 kick an equal user", versions: "1-12", setup: setPL(func(c map[string]any) {
		c["users"].(map[string]any)[mallory] = 50
	}), event: memberEv(bob, mallory, "leave"), want: RuleLeaveKick},
	{name: "4.5.4 unban by moderator with kick and ban", versions: "1-12", event: memberEv(bob, eve, "leave")},
	{name: "4.5.3 unban below ban level", versions: "1-12", setup: setPL(func(c map[string]any) { c["ban"] = 60 }),
		event: memberEv(bob, eve, "leave"), want: RuleLeaveBanned},
	{name: "4.5.4 (v1-v11) creator has 100 without power levels", versions: "-11", setup: func(r *testRoom, s StateMap) {
		delete(s, event.StateTuple{Type: TypePowerLevels})
	}, event: memberEv(alice, bob, "leave")},
	{name: "4.5.5 without power levels others have 0", versions: "1-12", setup: func(r *testRoom, s StateMap) {
		delete(s, event.StateTuple{Type: TypePowerLevels})
	}, event: memberEv(bob, mallory, "leave"), want: RuleLeaveKick},

	{name: "4.6.2 ban by moderator", versions: "1-12", event: memberEv(bob, mallory, "ban")},
	{name: "4.6.2 ban someone not in the room", versions: "1-12", event: memberEv(bob, zara, "ban")},
	{name: "4.6.1 ban by non-member", versions: "1-12", event: memberEv(carol, mallory, "ban"), want: RuleBanNotJoined},
	{name: "4.6.3 ban below ban level", versions: "1-12", event: memberEv(mallory, carol, "ban"), want: RuleBanLevel},
	{name: "4.6.3 ban a higher user", versions: "1-12", event: memberEv(bob, alice, "ban"), want: RuleBanLevel},

	{name: "4.7.3 (v7+) knock", versions: "7-", setup: setJoinRule("knock"), event: memberEv(carol, carol, "knock")},
	{name: "4.7.1 (v7+) knock on a public room", versions: "7-", event: memberEv(carol, carol, "knock"), want: RuleKnockJoinRule},
	{name: "4.7.2 (v7+) knock for someone else", versions: "7-", setup: setJoinRule("knock"),
		event: memberEv(mallory, carol, "knock"), want: RuleKnockNotSelf},
	{name: "4.7.4 (v7+) knock while invited", versions: "7-", setup: setJoinRule("knock"),
		event: memberEv(dave, dave, "knock"), want: RuleKnockMembership},
	{name: "4.7.4 (v7+) knock while banned", versions: "7-", setup: setJoinRule("knock"),
		event: memberEv(eve, eve, "knock"), want: RuleKnockMembership},
	{name: "4.7.3 (v10+) knock on knock_restricted", versions: "10-", setup: setJoinRule("knock_restricted"),
		event: memberEv(carol, carol, "knock")},
	{name: "4.7.1 (v7-v9) knock_restricted does not allow knocking", versions: "7-9", setup: setJoinRule("knock_restricted"),
		event: memberEv(carol, carol, "knock"), want: RuleKnockJoinRule},
	{name: "4.7 (v1-v6) knock is an unknown membership", versions: "-6", setup: setJoinRule("knock"),
		event: memberEv(carol, carol, "knock"), want: RuleMembershipUnknown},
	{name: "4.8 unknown membership", versions: "1-12", event: memberEv(mallory, mallory, "dance"), want: RuleMembershipUnknown},

	// Rule 5 (6 in v1–v5 and v12): sender must be joined.
	{name: "5 message from non-member", versions: "1-12", event: msg(carol), want: RuleSenderNotJoined},
	{name: "5 message from invited user", versions: "1-12", event: msg(dave), want: RuleSenderNotJoined},
	{name: "10 message from member", versions: "1-12", event: msg(mallory)},

	// Rule 6: m.room.third_party_invite.
	{name: "6.1 third_party_invite at invite level", versions: "1-12",
		event: stateEv(TypeThirdPartyInvite, mallory, "tok", map[string]any{"display_name": "c..."})},
	{name: "6.1 third_party_invite below invite level", versions: "1-12", setup: setPL(func(c map[string]any) { c["invite"] = 10 }),
		event: stateEv(TypeThirdPartyInvite, mallory, "tok", map[string]any{}), want: RuleThirdPartyInviteLevel},
	{name: "6.1 third_party_invite ignores state_default and events", versions: "1-12", setup: setPL(func(c map[string]any) {
		c["events"].(map[string]any)[TypeThirdPartyInvite] = 100
	}), event: stateEv(TypeThirdPartyInvite, mallory, "tok", map[string]any{})},

	// Rule 7: required power level.
	{name: "7 state below events entry", versions: "1-12", event: stateEv("m.room.name", mallory, "", map[string]any{"name": "x"}), want: RuleEventLevel},
	{name: "7 state at events entry", versions: "1-12", event: stateEv("m.room.name", bob, "", map[string]any{"name": "x"})},
	{name: "7 events entry below state_default", versions: "1-12", setup: setPL(func(c map[string]any) {
		c["users"].(map[string]any)[mallory] = 10
	}), event: stateEv("m.room.topic", mallory, "", map[string]any{"topic": "x"})},
	{name: "7 state_default", versions: "1-12", event: stateEv("x.custom", mallory, "", map[string]any{}), want: RuleEventLevel},
	{name: "7 events_default", versions: "1-12", setup: setPL(func(c map[string]any) { c["events_default"] = 1 }),
		event: msg(mallory), want: RuleEventLevel},
	{name: "7 events entry for a message type", versions: "1-12", setup: setPL(func(c map[string]any) {
		c["events"].(map[string]any)["m.room.message"] = 1
	}), event: msg(mallory), want: RuleEventLevel},
	{name: "7 state_default 50 without power levels", versions: "1-12", setup: func(r *testRoom, s StateMap) {
		delete(s, event.StateTuple{Type: TypePowerLevels})
	}, event: stateEv("x.custom", bob, "", map[string]any{}), want: RuleEventLevel},
	{name: "7 events_default 0 without power levels", versions: "1-12", setup: func(r *testRoom, s StateMap) {
		delete(s, event.StateTuple{Type: TypePowerLevels})
	}, event: msg(mallory)},

	// Rule 8: state keys that are user ids.
	{name: "8 state_key of another user", versions: "1-12", event: stateEv("x.custom", bob, mallory, map[string]any{}), want: RuleStateKeyUser},
	{name: "8 state_key of the sender", versions: "1-12", event: stateEv("x.custom", bob, bob, map[string]any{})},

	// Rule 9 (10 in v1–v5 and v12): m.room.power_levels.
	{name: "9.4 first power levels allowed", versions: "1-12", setup: func(r *testRoom, s StateMap) {
		delete(s, event.StateTuple{Type: TypePowerLevels})
	}, event: func(r *testRoom) pdu {
		return pdu{"type": TypePowerLevels, "sender": alice, "state_key": "", "content": plWith(r, func(map[string]any) {})}
	}},
	{name: "9.3 users key is not a user id", versions: "1-12", event: func(r *testRoom) pdu {
		return plEv(alice, plWith(r, func(c map[string]any) { c["users"].(map[string]any)["bob"] = 10 }))
	}, want: RulePowerLevelsContent},
	{name: "9.3 users is not an object", versions: "1-12", event: func(r *testRoom) pdu {
		return plEv(alice, plWith(r, func(c map[string]any) { c["users"] = []string{bob} }))
	}, want: RulePowerLevelsContent},
	{name: "9.3 users value is not an integer", versions: "1-12", event: func(r *testRoom) pdu {
		return plEv(alice, plWith(r, func(c map[string]any) { c["users"].(map[string]any)[mallory] = true }))
	}, want: RulePowerLevelsContent},
	{name: "stringy users value (v1-v9)", versions: "-9", event: func(r *testRoom) pdu {
		return plEv(bob, plWith(r, func(c map[string]any) { c["users"].(map[string]any)[mallory] = " +0010 " }))
	}},
	{name: "9.3 (v10+) string users value", versions: "10-", event: func(r *testRoom) pdu {
		return plEv(bob, plWith(r, func(c map[string]any) { c["users"].(map[string]any)[mallory] = "10" }))
	}, want: RulePowerLevelsContent},
	{name: "9.1 (v10+) string ban", versions: "10-", event: func(r *testRoom) pdu {
		return plEv(bob, plWith(r, func(c map[string]any) { c["ban"] = "50" }))
	}, want: RulePowerLevelsContent},
	{name: "stringy ban unchanged (v1-v9)", versions: "-9", event: func(r *testRoom) pdu {
		return plEv(bob, plWith(r, func(c map[string]any) { c["ban"] = "50" }))
	}},
	{name: "9.2 (v10+) string events value", versions: "10-", event: func(r *testRoom) pdu {
		return plEv(bob, plWith(r, func(c map[string]any) { c["events"].(map[string]any)["m.room.topic"] = "10" }))
	}, want: RulePowerLevelsContent},
	{name: "9.2 (v10+) events not an object", versions: "10-", event: func(r *testRoom) pdu {
		return plEv(bob, plWith(r, func(c map[string]any) { c["events"] = 5 }))
	}, want: RulePowerLevelsContent},
	{name: "9.2 (v10+) string notifications value", versions: "10-", event: func(r *testRoom) pdu {
		return plEv(bob, plWith(r, func(c map[string]any) { c["notifications"] = map[string]any{"room": "50"} }))
	}, want: RulePowerLevelsContent},
	{name: "(v1-v5) notifications are not read by auth", versions: "-5", event: func(r *testRoom) pdu {
		return plEv(bob, plWith(r, func(c map[string]any) { c["notifications"] = map[string]any{"room": "loud"} }))
	}},
	{name: "floaty users value (v1-v5)", versions: "-5", event: func(r *testRoom) pdu {
		return plEv(bob, plWith(r, func(c map[string]any) { c["users"].(map[string]any)[bob] = 50.57 }))
	}},
	{name: "9.5.2 raise a level above own", versions: "1-12", event: func(r *testRoom) pdu {
		return plEv(bob, plWith(r, func(c map[string]any) { c["kick"] = 51 }))
	}, want: RulePowerLevelsChange},
	{name: "9.5.1 change a level above own", versions: "1-12", setup: setPL(func(c map[string]any) { c["redact"] = 60 }),
		event: func(r *testRoom) pdu {
			return plEv(bob, plWith(r, func(c map[string]any) { c["redact"] = 40 }))
		}, want: RulePowerLevelsChange},
	{name: "9.5.1 remove a level above own", versions: "1-12", setup: setPL(func(c map[string]any) { c["redact"] = 60 }),
		event: func(r *testRoom) pdu {
			return plEv(bob, plWith(r, func(c map[string]any) { delete(c, "redact") }))
		}, want: RulePowerLevelsChange},
	{name: "9.5 lower a level at own", versions: "1-12", event: func(r *testRoom) pdu {
		return plEv(bob, plWith(r, func(c map[string]any) { c["kick"] = 20; delete(c, "invite") }))
	}},
	{name: "9.6 change an events entry above own", versions: "1-12", setup: setPL(func(c map[string]any) {
		c["events"].(map[string]any)["m.room.name"] = 60
	}), event: func(r *testRoom) pdu {
		return plEv(bob, plWith(r, func(c map[string]any) { c["events"].(map[string]any)["m.room.name"] = 0 }))
	}, want: RulePowerLevelsChange},
	{name: "9.7 add an events entry above own", versions: "1-12", event: func(r *testRoom) pdu {
		return plEv(bob, plWith(r, func(c map[string]any) { c["events"].(map[string]any)["x.y"] = 51 }))
	}, want: RulePowerLevelsChange},
	{name: "9.6 remove an events entry at own", versions: "1-12", event: func(r *testRoom) pdu {
		return plEv(bob, plWith(r, func(c map[string]any) { delete(c["events"].(map[string]any), "m.room.name") }))
	}},
	{name: "9.7 (v6+) add a notifications entry above own", versions: "6-", event: func(r *testRoom) pdu {
		return plEv(bob, plWith(r, func(c map[string]any) { c["notifications"] = map[string]any{"room": 60} }))
	}, want: RulePowerLevelsChange},
	{name: "(v1-v5) notifications changes are not checked", versions: "-5", event: func(r *testRoom) pdu {
		return plEv(bob, plWith(r, func(c map[string]any) { c["notifications"] = map[string]any{"room": 60} }))
	}},
	{name: "9.8 demote a higher user", versions: "-11", event: func(r *testRoom) pdu {
		return plEv(bob, plWith(r, func(c map[string]any) { c["users"].(map[string]any)[alice] = 0 }))
	}, want: RulePowerLevelsChange},
	{name: "9.8 demote an equal user", versions: "1-12", setup: setPL(func(c map[string]any) {
		c["users"].(map[string]any)[mallory] = 50
	}), event: func(r *testRoom) pdu {
		return plEv(bob, plWith(r, func(c map[string]any) { c["users"].(map[string]any)[mallory] = 0 }))
	}, want: RulePowerLevelsChange},
	{name: "9.8 demote self", versions: "1-12", event: func(r *testRoom) pdu {
		return plEv(bob, plWith(r, func(c map[string]any) { delete(c["users"].(map[string]any), bob) }))
	}},
	{name: "9.9 promote to own level", versions: "1-12", event: func(r *testRoom) pdu {
		return plEv(bob, plWith(r, func(c map[string]any) { c["users"].(map[string]any)[mallory] = 50 }))
	}},
	{name: "9.9 promote above own level", versions: "1-12", event: func(r *testRoom) pdu {
		return plEv(bob, plWith(r, func(c map[string]any) { c["users"].(map[string]any)[mallory] = 51 }))
	}, want: RulePowerLevelsChange},
	{name: "7 power levels below state_default", versions: "1-12", event: func(r *testRoom) pdu {
		return plEv(mallory, plWith(r, func(map[string]any) {}))
	}, want: RuleEventLevel},

	// v12: privileged creators.
	{name: "10.4 (v12) users lists the create sender", versions: "12", event: func(r *testRoom) pdu {
		return plEv(alice, plWith(r, func(c map[string]any) { c["users"].(map[string]any)[alice] = 100 }))
	}, want: RulePowerLevelsCreators},
	{name: "10.4 (v12) users lists an additional creator", versions: "12", create: map[string]any{"additional_creators": []string{zara}},
		event: func(r *testRoom) pdu {
			return plEv(alice, plWith(r, func(c map[string]any) { c["users"].(map[string]any)[zara] = 100 }))
		}, want: RulePowerLevelsCreators},
	{name: "10 (v12) creator may set any level", versions: "12", event: func(r *testRoom) pdu {
		return plEv(alice, plWith(r, func(c map[string]any) {
			c["users"].(map[string]any)[bob] = 9007199254740991
			c["state_default"] = 9007199254740991
		}))
	}},
	{name: "5.5.4 (v12) additional creator kicks a moderator", versions: "12", create: map[string]any{"additional_creators": []string{zara}},
		setup: func(r *testRoom, s StateMap) {
			s.Add(r.member(zara, zara, "join", nil))
			setPL(func(c map[string]any) { c["users"].(map[string]any)[bob] = 9007199254740991 })(r, s)
		}, event: memberEv(zara, bob, "leave")},
	{name: "5.5.5 (v12) creators cannot kick each other", versions: "12", create: map[string]any{"additional_creators": []string{zara}},
		setup: func(r *testRoom, s StateMap) { s.Add(r.member(zara, zara, "join", nil)) },
		event: memberEv(zara, alice, "leave"), want: RuleLeaveKick},
	{name: "5.5.5 (v12) nobody outranks a creator", versions: "12",
		setup: setPL(func(c map[string]any) { c["users"].(map[string]any)[bob] = 9007199254740991 }),
		event: memberEv(bob, alice, "ban"), want: RuleBanLevel},
	{name: "(v12) creator without power levels can send state", versions: "12", setup: func(r *testRoom, s StateMap) {
		delete(s, event.StateTuple{Type: TypePowerLevels})
	}, event: stateEv("x.custom", alice, "", map[string]any{})},
	{name: "(v11) content.creator is not the creator", versions: "11-", create: map[string]any{"creator": bob},
		setup: func(r *testRoom, s StateMap) { delete(s, event.StateTuple{Type: TypePowerLevels}) },
		event: stateEv("x.custom", bob, "", map[string]any{}), want: RuleEventLevel},

	// Rule 11 (v1, v2): redactions.
	{name: "11.1 (v1-v2) redaction at redact level", versions: "-2", event: func(r *testRoom) pdu {
		return pdu{"type": TypeRedaction, "sender": bob, "redacts": "$x:a.example", "content": map[string]any{}}
	}},
	{name: "11.2 (v1-v2) redaction of an event from the same server", versions: "-2", event: func(r *testRoom) pdu {
		return pdu{"type": TypeRedaction, "sender": mallory, "redacts": "$x:b.example", "content": map[string]any{}}
	}},
	{name: "11.3 (v1-v2) redaction below redact level of another server's event", versions: "-2", event: func(r *testRoom) pdu {
		return pdu{"type": TypeRedaction, "sender": mallory, "redacts": "$x:a.example", "content": map[string]any{}}
	}, want: RuleRedaction},
	{name: "(v3+) redact level is not an auth rule", versions: "3-", event: func(r *testRoom) pdu {
		return pdu{"type": TypeRedaction, "sender": mallory, "redacts": r.fakeID("x"), "content": map[string]any{}}
	}},
	{name: "7 (v3+) redaction below its events level", versions: "3-", setup: setPL(func(c map[string]any) {
		c["events"].(map[string]any)[TypeRedaction] = 1
	}), event: func(r *testRoom) pdu {
		return pdu{"type": TypeRedaction, "sender": mallory, "redacts": r.fakeID("x"), "content": map[string]any{}}
	}, want: RuleEventLevel},
}

func createPDU(r *testRoom, content map[string]any) pdu {
	c := map[string]any{"room_version": r.v.ID}
	if !r.v.CreatorIsSender {
		c["creator"] = alice
	}
	for k, v := range content {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	p := pdu{"type": TypeCreate, "sender": alice, "state_key": "", "content": c, "prev_events": []string{}}
	if r.v.RoomIDFromCreateEvent {
		p["room_id"] = nil
	}
	return p
}

func plEv(sender string, content map[string]any) pdu {
	return pdu{"type": TypePowerLevels, "sender": sender, "state_key": "", "content": content}
}

func TestCheck(t *testing.T) {
	for _, vid := range event.Versions() {
		for _, tc := range rulesCases {
			if !inVersions(tc.versions, vid) {
				continue
			}
			t.Run("v"+vid+"/"+tc.name, func(t *testing.T) {
				r := newTestRoom(t, vid, tc.create)
				s := r.defaultState()
				if tc.setup != nil {
					tc.setup(r, s)
				}
				e, err := r.tryBuild(tc.event(r))
				if err != nil {
					t.Fatalf("building event: %v", err)
				}
				assertRule(t, Check(e, s), tc.want)
			})
		}
	}
}

func assertRule(t *testing.T, err error, want Rule) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("want allowed, got %v", err)
		}
		return
	}
	var re *RuleError
	if !errors.Is(err, ErrNotAllowed) || !errors.As(err, &re) {
		t.Fatalf("want rejection by %q, got %v", want, err)
	}
	if re.Rule != want {
		t.Fatalf("want rejection by %q, got %v", want, err)
	}
}

// TestThirdPartyInvite covers rule 4.4.1 (5.4.1 in v1–v5 and v12) with real signatures.
func TestThirdPartyInvite(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	otherPub, otherPriv, _ := ed25519.GenerateKey(nil)
	sign := func(t *testing.T, key ed25519.PrivateKey, mxid string) map[string]any {
		t.Helper()
		raw, err := keys.SignJSON("id.example", "ed25519:0", key, []byte(`{"mxid":"`+mxid+`","token":"tok","sender":"`+bob+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	tpiSingle := map[string]any{"display_name": "c...", "key_validity_url": "https://id.example/v", "public_key": keys.EncodeBase64(pub)}
	tpiList := map[string]any{"display_name": "c...", "key_validity_url": "https://id.example/v", "public_key": keys.EncodeBase64(otherPub),
		"public_keys": []any{map[string]any{"public_key": keys.EncodeBase64URL(pub)}}}
	cases := []struct {
		name   string
		tpi    map[string]any // nil: no m.room.third_party_invite in state
		tpiBy  string
		sender string
		target string
		tp     func(t *testing.T) any
		want   Rule
	}{
		{"4.4.1.7 signature matches public_key", tpiSingle, bob, bob, carol, func(t *testing.T) any {
			return map[string]any{"display_name": "c...", "signed": sign(t, priv, carol)}
		}, ""},
		{"4.4.1.7 signature matches public_keys entry", tpiList, bob, bob, carol, func(t *testing.T) any {
			return map[string]any{"signed": sign(t, priv, carol)}
		}, ""},
		{"4.4.1.8 signature by another key", tpiSingle, bob, bob, carol, func(t *testing.T) any {
			return map[string]any{"signed": sign(t, otherPriv, carol)}
		}, RuleInviteTPSignature},
		{"4.4.1.8 unsigned", tpiSingle, bob, bob, carol, func(t *testing.T) any {
			return map[string]any{"signed": map[string]any{"mxid": carol, "token": "tok"}}
		}, RuleInviteTPSignature},
		{"4.4.1.1 target banned", tpiSingle, bob, bob, eve, func(t *testing.T) any {
			return map[string]any{"signed": sign(t, priv, eve)}
		}, RuleInviteTPBanned},
		{"4.4.1.2 no signed", tpiSingle, bob, bob, carol, func(t *testing.T) any {
			return map[string]any{"display_name": "c..."}
		}, RuleInviteTPNoSigned},
		{"4.4.1.3 signed without token", tpiSingle, bob, bob, carol, func(t *testing.T) any {
			return map[string]any{"signed": map[string]any{"mxid": carol}}
		}, RuleInviteTPSigned},
		{"4.4.1.4 mxid is not state_key", tpiSingle, bob, bob, zara, func(t *testing.T) any {
			return map[string]any{"signed": sign(t, priv, carol)}
		}, RuleInviteTPMXID},
		{"4.4.1.5 no third_party_invite event", nil, bob, bob, carol, func(t *testing.T) any {
			return map[string]any{"signed": sign(t, priv, carol)}
		}, RuleInviteTPNoEvent},
		{"4.4.1.6 sender did not send the third_party_invite", tpiSingle, bob, mallory, carol, func(t *testing.T) any {
			return map[string]any{"signed": sign(t, priv, carol)}
		}, RuleInviteTPSender},
	}
	for _, vid := range event.Versions() {
		for _, tc := range cases {
			t.Run("v"+vid+"/"+tc.name, func(t *testing.T) {
				r := newTestRoom(t, vid, nil)
				s := r.defaultState()
				if tc.tpi != nil {
					s.Add(r.state(TypeThirdPartyInvite, tc.tpiBy, "tok", tc.tpi))
				}
				e := r.build(pdu{"type": TypeMember, "sender": tc.sender, "state_key": tc.target,
					"content": map[string]any{"membership": "invite", "third_party_invite": tc.tp(t)}})
				assertRule(t, Check(e, s), tc.want)
			})
		}
	}
}
