package push

import (
	"encoding/json"
	"testing"
)

const alice = "@alice:example.org"

func mustEvent(t *testing.T, js string) *Event {
	t.Helper()
	ev, err := NewEvent([]byte(js))
	if err != nil {
		t.Fatalf("NewEvent(%s): %v", js, err)
	}
	return ev
}

func ptr(s string) *string { return &s }

// The examples of the spec's "Conditions" section.
func TestConditionSpecExamples(t *testing.T) {
	topic := func(v string) string {
		return `{"content":{"topic":` + v + `},"event_id":"$1:example.org","room_id":"!r:example.com","sender":"@example:example.org","state_key":"","type":"m.room.topic"}`
	}
	body := func(v string) string {
		return `{"content":{"body":` + v + `},"room_id":"!r:example.com","sender":"@example:example.org","type":"m.room.message"}`
	}
	create := func(v string) string {
		return `{"content":{"creator":"@example:example.org","m.federate":` + v + `,"predecessor":{"event_id":"$s:example.org","room_id":"!old:example.org"},"room_version":"1"},"sender":"@example:example.org","state_key":"","type":"m.room.create"}`
	}
	aliases := `{"content":{"alias":"#somewhere:localhost","alt_aliases":["#somewhere:example.org","#myroom:example.com"]},"sender":"@example:example.org","state_key":"","type":"m.room.canonical_alias","unsigned":{"age":1234}}`
	topicCond := Condition{Kind: CondEventMatch, Key: "content.topic", Pattern: ptr("lunc?*")}
	bodyCond := Condition{Kind: CondEventMatch, Key: "content.body", Pattern: ptr("ex*ple")}
	federate := Condition{Kind: CondEventPropertyIs, Key: `content.m\.federate`, Value: json.RawMessage(`true`)}
	alias := Condition{Kind: CondEventPropertyContains, Key: "content.alt_aliases", Value: json.RawMessage(`"#myroom:example.com"`)}
	partial := Condition{Kind: CondEventPropertyContains, Key: "content.alt_aliases", Value: json.RawMessage(`":example.com"`)}
	star := Condition{Kind: CondEventMatch, Key: "content.topic", Pattern: ptr("*")}
	for _, tc := range []struct {
		name  string
		cond  Condition
		event string
		want  bool
	}{
		{"topic Lunch plans", topicCond, topic(`"Lunch plans"`), true},
		{"topic LUNCH", topicCond, topic(`"LUNCH"`), true},
		{"topic leading space", topicCond, topic(`" lunch"`), false},
		{"topic lunc", topicCond, topic(`"lunc"`), false},
		{"topic null", topicCond, topic(`null`), false},
		{"star on absent key", Condition{Kind: CondEventMatch, Key: "content.nope", Pattern: ptr("*")}, topic(`"x"`), false},
		{"star on number", star, topic(`12`), false},
		{"body example", bodyCond, body(`"An example event."`), true},
		{"body exple", bodyCond, body(`"exple"`), true},
		{"body triple-whammy", bodyCond, body(`"An exciting triple-whammy"`), true},
		{"body inside a word", bodyCond, body(`"counterexamples"`), false},
		{"m.federate true", federate, create(`true`), true},
		{"m.federate string", federate, create(`"true"`), false},
		{"m.federate 1", federate, create(`1`), false},
		{"alt_aliases contains", alias, aliases, true},
		{"alt_aliases partial", partial, aliases, false},
		{"contains on a non-array", Condition{Kind: CondEventPropertyContains, Key: "content.alias", Value: json.RawMessage(`"#somewhere:localhost"`)}, aliases, false},
		{"is on an object", Condition{Kind: CondEventPropertyIs, Key: "content.predecessor", Value: json.RawMessage(`null`)}, create(`true`), false},
		{"is null", Condition{Kind: CondEventPropertyIs, Key: "content.topic", Value: json.RawMessage(`null`)}, topic(`null`), true},
		{"is integer", Condition{Kind: CondEventPropertyIs, Key: "unsigned.age", Value: json.RawMessage(`1234`)}, aliases, true},
		{"is other integer", Condition{Kind: CondEventPropertyIs, Key: "unsigned.age", Value: json.RawMessage(`1235`)}, aliases, false},
		{"unknown kind", Condition{Kind: "org.example.unknown"}, topic(`"x"`), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cond.holds(mustEvent(t, tc.event), Room{}); got != tc.want {
				t.Errorf("holds = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDottedKeyEscaping(t *testing.T) {
	ev := mustEvent(t, `{"type":"t","content":{"m.relates_to":{"rel_type":"m.replace"},"m\\foo":"back","a":{"b.c":{"d":"deep"}},"m\\x":"lone"}}`)
	for key, want := range map[string]any{
		`content.m\.relates_to.rel_type`: "m.replace",
		`content.m\\foo`:                 "back",
		`content.a.b\.c.d`:               "deep",
		`content.m\x`:                    "lone", // other escapes are literal
	} {
		got, ok := ev.Lookup(key)
		if !ok || got != want {
			t.Errorf("Lookup(%q) = %v, %v; want %v", key, got, ok, want)
		}
	}
	if _, ok := ev.Lookup("content.m.relates_to.rel_type"); ok {
		t.Error("an unescaped dot found a property whose name has a dot")
	}
}

func TestRoomMemberCountAndPermission(t *testing.T) {
	for _, tc := range []struct {
		is    string
		count int
		want  bool
	}{
		{"2", 2, true}, {"2", 3, false}, {"==2", 2, true}, {"<3", 2, true}, {"<2", 2, false},
		{">2", 3, true}, {">2", 2, false}, {"<=10", 10, true}, {"<=10", 11, false},
		{">=5", 5, true}, {">=5", 4, false}, {"x", 2, false}, {"", 0, false},
	} {
		c := Condition{Kind: CondRoomMemberCount, Is: tc.is}
		if got := c.holds(&Event{}, Room{MemberCount: tc.count}); got != tc.want {
			t.Errorf("is %q with %d members = %v, want %v", tc.is, tc.count, got, tc.want)
		}
	}
	perm := Condition{Kind: CondSenderNotificationPermission, Key: "room"}
	if perm.holds(&Event{}, Room{SenderPowerLevel: 49}) || !perm.holds(&Event{}, Room{SenderPowerLevel: 50}) {
		t.Error("the default notification level for room is not 50")
	}
	r := Room{SenderPowerLevel: 10, NotificationPowerLevels: map[string]int64{"room": 10}}
	if !perm.holds(&Event{}, r) {
		t.Error("a room that lowered notifications.room did not let the sender notify")
	}
}

func TestContainsDisplayName(t *testing.T) {
	c := Condition{Kind: CondContainsDisplayName}
	for body, want := range map[string]bool{
		"hello Alice Smith!": true, "alice smith": true, "Alice Smithers": false, "nothing": false,
	} {
		ev := mustEvent(t, `{"type":"m.room.message","content":{"body":"`+body+`"}}`)
		if got := c.holds(ev, Room{DisplayName: "Alice Smith"}); got != want {
			t.Errorf("body %q: %v, want %v", body, got, want)
		}
	}
	if c.holds(mustEvent(t, `{"content":{"body":"x"}}`), Room{}) {
		t.Error("an empty display name matched")
	}
}

// Each default rule, through Evaluate over the whole default rule set, as built and as the
// Store prepares it (each rule's actions read once): the outcomes must be the same.
func TestDefaultRules(t *testing.T) {
	plain, prepared := Default(alice), Default(alice)
	if err := prepared.prepare(); err != nil {
		t.Fatal(err)
	}
	msg := func(content string) string {
		return `{"type":"m.room.message","sender":"@bob:example.org","room_id":"!r:example.org","content":` + content + `}`
	}
	group := Room{UserID: alice, MemberCount: 5}
	for _, tc := range []struct {
		name            string
		event           string
		room            Room
		rule            string
		notify, highlit bool
	}{
		{"message in a group", msg(`{"msgtype":"m.text","body":"hi"}`), group, ".m.rule.message", true, false},
		{"message one to one", msg(`{"msgtype":"m.text","body":"hi"}`), Room{UserID: alice, MemberCount: 2}, ".m.rule.room_one_to_one", true, false},
		{"notice", msg(`{"msgtype":"m.notice","body":"bot"}`), group, ".m.rule.suppress_notices", false, false},
		{"user mention", msg(`{"body":"hey","m.mentions":{"user_ids":["@alice:example.org"]}}`), group, ".m.rule.is_user_mention", true, true},
		{"other user mention", msg(`{"body":"hey","m.mentions":{"user_ids":["@carol:example.org"]}}`), group, ".m.rule.message", true, false},
		{"body mention is no longer a rule", msg(`{"body":"alice: hey"}`), group, ".m.rule.message", true, false},
		{"room mention with power", msg(`{"body":"all","m.mentions":{"room":true}}`), Room{UserID: alice, MemberCount: 5, SenderPowerLevel: 50}, ".m.rule.is_room_mention", true, true},
		{"room mention without power", msg(`{"body":"all","m.mentions":{"room":true}}`), Room{UserID: alice, MemberCount: 5, SenderPowerLevel: 0}, ".m.rule.message", true, false},
		{"edit", msg(`{"body":"* fixed","m.new_content":{"body":"fixed"},"m.relates_to":{"rel_type":"m.replace","event_id":"$e"}}`), group, ".m.rule.suppress_edits", false, false},
		{"reaction", `{"type":"m.reaction","sender":"@bob:example.org","content":{"m.relates_to":{"rel_type":"m.annotation","event_id":"$e","key":"👍"}}}`, group, ".m.rule.reaction", false, false},
		{"invite for me", `{"type":"m.room.member","sender":"@bob:example.org","state_key":"@alice:example.org","content":{"membership":"invite"}}`, group, ".m.rule.invite_for_me", true, false},
		{"invite for another", `{"type":"m.room.member","sender":"@bob:example.org","state_key":"@carol:example.org","content":{"membership":"invite"}}`, group, ".m.rule.member_event", false, false},
		{"tombstone", `{"type":"m.room.tombstone","sender":"@bob:example.org","state_key":"","content":{"replacement_room":"!n"}}`, group, ".m.rule.tombstone", true, true},
		{"tombstone with a state key", `{"type":"m.room.tombstone","sender":"@bob:example.org","state_key":"x","content":{}}`, group, "", false, false},
		{"server acl", `{"type":"m.room.server_acl","sender":"@bob:example.org","state_key":"","content":{"allow":["*"]}}`, group, ".m.rule.room.server_acl", false, false},
		{"call", `{"type":"m.call.invite","sender":"@bob:example.org","content":{}}`, group, ".m.rule.call", true, false},
		{"encrypted one to one", `{"type":"m.room.encrypted","sender":"@bob:example.org","content":{}}`, Room{UserID: alice, MemberCount: 2}, ".m.rule.encrypted_room_one_to_one", true, false},
		{"encrypted group", `{"type":"m.room.encrypted","sender":"@bob:example.org","content":{}}`, group, ".m.rule.encrypted", true, false},
		{"own message", `{"type":"m.room.message","sender":"@alice:example.org","content":{"body":"me"}}`, group, "", false, false},
		{"other event", `{"type":"m.room.topic","sender":"@bob:example.org","state_key":"","content":{"topic":"x"}}`, group, "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, rs := range []*Ruleset{plain, prepared} {
				o := rs.Evaluate(mustEvent(t, tc.event), tc.room)
				if o.RuleID != tc.rule || o.Notify != tc.notify || o.Highlight != tc.highlit {
					t.Errorf("got rule %q notify %v highlight %v; want %q %v %v", o.RuleID, o.Notify, o.Highlight, tc.rule, tc.notify, tc.highlit)
				}
				if rs == prepared && o.RuleID != "" {
					want, _ := json.Marshal(o.Actions)
					if string(o.ActionsJSON) != string(want) {
						t.Errorf("prepared actions %s, want %s", o.ActionsJSON, want)
					}
				}
			}
		})
	}
}

func TestMasterDisabledAndUserRules(t *testing.T) {
	ev := mustEvent(t, `{"type":"m.room.message","sender":"@bob:example.org","room_id":"!r:example.org","content":{"body":"I like cake","m.mentions":{"user_ids":["@alice:example.org"]}}}`)
	room := Room{UserID: alice, MemberCount: 5}

	rs := Default(alice)
	rs.Override[0].Enabled = true // the master rule silences everything, mentions too
	if o := rs.Evaluate(ev, room); o.RuleID != MasterRuleID || o.Notify {
		t.Errorf("with the master rule on: %+v", o)
	}

	rs = Default(alice)
	for i := range rs.Override {
		if rs.Override[i].RuleID == ".m.rule.is_user_mention" {
			rs.Override[i].Enabled = false
		}
	}
	if o := rs.Evaluate(ev, room); o.RuleID != ".m.rule.message" {
		t.Errorf("a disabled rule matched: %+v", o)
	}

	// A user's override rule comes after the master rule and before the other defaults.
	rows := merged(t, Rule{RuleID: "mute-bob", Enabled: true, Conditions: []Condition{{Kind: CondEventMatch, Key: "sender", Pattern: ptr("@bob:*")}}, Actions: []json.RawMessage{}})
	if rows.Override[0].RuleID != MasterRuleID || rows.Override[1].RuleID != "mute-bob" {
		t.Fatalf("override order: %s, %s", rows.Override[0].RuleID, rows.Override[1].RuleID)
	}
	if o := rows.Evaluate(ev, room); o.RuleID != "mute-bob" || o.Notify {
		t.Errorf("the user's override rule did not win over the defaults: %+v", o)
	}

	// Content rules come before room, sender and underride rules; highlight's value decides.
	rs = Default(alice)
	rs.Content = append([]Rule{{RuleID: "cake", Enabled: true, Pattern: ptr("cake"),
		Actions: []json.RawMessage{json.RawMessage(`"notify"`), json.RawMessage(`{"set_tweak":"highlight","value":false}`)}}}, rs.Content...)
	rs.Room = []Rule{{RuleID: "!r:example.org", Enabled: true, Actions: []json.RawMessage{}}}
	noMention := mustEvent(t, `{"type":"m.room.message","sender":"@bob:example.org","room_id":"!r:example.org","content":{"body":"I like cake"}}`)
	if o := rs.Evaluate(noMention, room); o.RuleID != "cake" || !o.Notify || o.Highlight {
		t.Errorf("content rule: %+v", o)
	}
	rs.Content[0].Enabled = false
	if o := rs.Evaluate(noMention, room); o.RuleID != "!r:example.org" || o.Notify {
		t.Errorf("room rule: %+v", o)
	}
	rs.Room = nil
	rs.Sender = []Rule{{RuleID: "@bob:example.org", Enabled: true, Actions: []json.RawMessage{json.RawMessage(`"notify"`), json.RawMessage(`{"set_tweak":"highlight"}`)}}}
	if o := rs.Evaluate(noMention, room); o.RuleID != "@bob:example.org" || !o.Highlight {
		t.Errorf("sender rule: %+v", o)
	}
}

// merged is the rule set of a user with one override rule of their own, as the store builds it.
func merged(t *testing.T, r Rule) *Ruleset {
	t.Helper()
	rs := Default(alice)
	rs.Override = append([]Rule{rs.Override[0], r}, rs.Override[1:]...)
	return rs
}

func TestDefaultRulesetJSON(t *testing.T) {
	rs := Default(alice)
	b, err := json.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string][]map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	ids := func(kind string) []string {
		var out []string
		for _, r := range got[kind] {
			out = append(out, r["rule_id"].(string))
		}
		return out
	}
	wantOverride := []string{".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me", ".m.rule.member_event",
		".m.rule.is_user_mention", ".m.rule.is_room_mention", ".m.rule.tombstone", ".m.rule.reaction",
		".m.rule.room.server_acl", ".m.rule.suppress_edits"}
	wantUnderride := []string{".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one", ".m.rule.message", ".m.rule.encrypted"}
	if g := ids("override"); !equal(g, wantOverride) {
		t.Errorf("override = %v", g)
	}
	if g := ids("underride"); !equal(g, wantUnderride) {
		t.Errorf("underride = %v", g)
	}
	for _, k := range []string{"content", "room", "sender"} {
		if got[k] == nil || len(got[k]) != 0 {
			t.Errorf("%s = %v, want []", k, got[k])
		}
	}
	master := got["override"][0]
	if c, ok := master["conditions"].([]any); !ok || len(c) != 0 || master["enabled"] != false || master["default"] != true {
		t.Errorf("master = %v", master)
	}
	if a, ok := master["actions"].([]any); !ok || len(a) != 0 {
		t.Errorf("master actions = %v", master["actions"])
	}
	mention := got["override"][4]["conditions"].([]any)[0].(map[string]any)
	if mention["key"] != `content.m\.mentions.user_ids` || mention["value"] != alice {
		t.Errorf("is_user_mention condition = %v", mention)
	}
	tomb := got["override"][6]["conditions"].([]any)[1].(map[string]any)
	if p, ok := tomb["pattern"]; !ok || p != "" {
		t.Errorf("tombstone state_key condition = %v", tomb)
	}
	// Default returns a copy: changing one user's set leaves the next one alone.
	rs.Override[2].Conditions[2].Pattern = ptr("changed")
	rs.Underride[0].Actions[0] = json.RawMessage(`"x"`)
	if d := Default(alice); *d.Override[2].Conditions[2].Pattern != alice || string(d.Underride[0].Actions[0]) != `"notify"` {
		t.Error("Default shares its rules between calls")
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNormalizeActions(t *testing.T) {
	got, err := NormalizeActions([]json.RawMessage{json.RawMessage(`"notify"`), json.RawMessage(`"dont_notify"`), json.RawMessage(`"coalesce"`), json.RawMessage(`{"set_tweak":"sound","value":"bing"}`)})
	if err != nil || len(got) != 2 {
		t.Fatalf("NormalizeActions = %s, %v", got, err)
	}
	for _, bad := range []string{`"wibble"`, `3`, `{"value":1}`, `{"set_tweak":"highlight","value":"yes"}`} {
		if _, err := NormalizeActions([]json.RawMessage{json.RawMessage(bad)}); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if _, err := NormalizeActions(nil); err == nil {
		t.Error("missing actions accepted")
	}
}

// The notifier evaluates one cached rule set from many goroutines at once.
func TestEvaluateConcurrently(t *testing.T) {
	rs := Default(alice)
	rs.Content = []Rule{{RuleID: "k", Enabled: true, Pattern: ptr("ke?word*"), Actions: []json.RawMessage{json.RawMessage(`"notify"`)}}}
	ev := mustEvent(t, `{"type":"m.room.message","sender":"@bob:example.org","content":{"body":"a keyword here"}}`)
	done := make(chan Outcome, 8)
	for range 8 {
		go func() {
			var o Outcome
			for range 100 {
				o = rs.Evaluate(ev, Room{UserID: alice, MemberCount: 3})
			}
			done <- o
		}()
	}
	for range 8 {
		if o := <-done; o.RuleID != "k" || !o.Notify {
			t.Errorf("outcome = %+v", o)
		}
	}
}
