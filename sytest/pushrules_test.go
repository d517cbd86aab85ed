package sytest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// Black-box tests of the push rule API and of m.push_rules in /sync.

const pushRulesPath = "/_matrix/client/v3/pushrules/"

// pushRuleset is the part of a rule set these tests read.
type pushRuleset map[string][]struct {
	RuleID     string            `json:"rule_id"`
	Default    bool              `json:"default"`
	Enabled    bool              `json:"enabled"`
	Pattern    *string           `json:"pattern"`
	Conditions []json.RawMessage `json:"conditions"`
	Actions    []json.RawMessage `json:"actions"`
}

func (rs pushRuleset) ids(kind string) []string {
	var out []string
	for _, r := range rs[kind] {
		out = append(out, r.RuleID)
	}
	return out
}

func getGlobalRules(t *testing.T, c *Client) pushRuleset {
	t.Helper()
	r := c.Must(t, 200, "GET", pushRulesPath, nil)
	var body struct {
		Global pushRuleset `json:"global"`
	}
	if err := json.Unmarshal(r.Raw, &body); err != nil || body.Global == nil {
		t.Fatalf("GET /pushrules/: %v: %s", err, r.Raw)
	}
	return body.Global
}

// syncPushRules returns the m.push_rules event of a sync's global account data, nil if absent.
func syncPushRules(t *testing.T, s syncResp) pushRuleset {
	t.Helper()
	for _, e := range s.AccountData.Events {
		if e.Type != "m.push_rules" {
			continue
		}
		var c struct {
			Global pushRuleset `json:"global"`
		}
		if err := json.Unmarshal(e.Content, &c); err != nil || c.Global == nil {
			t.Fatalf("m.push_rules content: %v: %s", err, e.Content)
		}
		return c.Global
	}
	return nil
}

func TestPushRulesDefaults(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")

		rs := getGlobalRules(t, alice)
		wantOverride := "[.m.rule.master .m.rule.suppress_notices .m.rule.invite_for_me .m.rule.member_event .m.rule.is_user_mention .m.rule.is_room_mention .m.rule.tombstone .m.rule.reaction .m.rule.room.server_acl .m.rule.suppress_edits]"
		if got := fmt.Sprint(rs.ids("override")); got != wantOverride {
			t.Errorf("override = %s", got)
		}
		wantUnderride := "[.m.rule.call .m.rule.encrypted_room_one_to_one .m.rule.room_one_to_one .m.rule.message .m.rule.encrypted]"
		if got := fmt.Sprint(rs.ids("underride")); got != wantUnderride {
			t.Errorf("underride = %s", got)
		}
		for _, k := range []string{"content", "room", "sender"} {
			if rs[k] == nil || len(rs[k]) != 0 {
				t.Errorf("%s = %v, want []", k, rs[k])
			}
		}
		master := rs["override"][0]
		if master.Enabled || !master.Default || master.Conditions == nil || master.Actions == nil {
			t.Errorf("master rule = %+v", master)
		}
		// The invite rule names the user.
		invite := alice.Must(t, 200, "GET", pushRulesPath+"global/override/.m.rule.invite_for_me", nil)
		if !json.Valid(invite.Raw) || !strings.Contains(string(invite.Raw), alice.UserID) {
			t.Errorf("invite_for_me = %s", invite.Raw)
		}
		// GET /pushrules/global/ is the same rule set.
		g := alice.Must(t, 200, "GET", pushRulesPath+"global/", nil)
		if _, ok := g.Body["override"]; !ok {
			t.Errorf("GET /pushrules/global/ = %s", g.Raw)
		}

		// Initial /sync carries the rules as m.push_rules.
		first := doSync(t, alice, "")
		synced := syncPushRules(t, first)
		if synced == nil {
			t.Fatalf("initial sync has no m.push_rules")
		}
		if got := fmt.Sprint(synced.ids("override")); got != wantOverride {
			t.Errorf("synced override = %s", got)
		}
		// An idle incremental sync does not repeat them.
		if idle := doSync(t, alice, "?timeout=0&since="+first.NextBatch); syncPushRules(t, idle) != nil {
			t.Errorf("idle incremental sync repeated m.push_rules")
		}
		// Nor does a filter that leaves them out.
		f := alice.Must(t, 200, "POST", "/_matrix/client/v3/user/"+url.PathEscape(alice.UserID)+"/filter",
			map[string]any{"account_data": map[string]any{"not_types": []string{"m.push_rules"}}})
		if filtered := doSync(t, alice, "?filter="+f.Str("filter_id")); syncPushRules(t, filtered) != nil {
			t.Errorf("a filter excluding m.push_rules did not")
		}
		// Account data GET reads them too; clients cannot PUT them.
		ad := alice.Must(t, 200, "GET", "/_matrix/client/v3/user/"+url.PathEscape(alice.UserID)+"/account_data/m.push_rules", nil)
		if _, ok := ad.Body["global"]; !ok {
			t.Errorf("account_data m.push_rules = %s", ad.Raw)
		}
	})
}

func TestPushRulesCRUD(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		bob := Register(t, s, "bob", "correct horse battery")
		first := doSync(t, alice, "")
		content := pushRulesPath + "global/content/"

		// The spec's examples: a cake rule, then a rule before it.
		alice.Must(t, 200, "PUT", content+"SSByZWFsbHkgbGlrZSBjYWtl", map[string]any{
			"pattern": "cake", "actions": []any{"notify", map[string]any{"set_tweak": "sound", "value": "cakealarm.wav"}}})
		alice.Must(t, 200, "PUT", content+"U3BvbmdlIGNha2UgaXMgYmVzdA?before=SSByZWFsbHkgbGlrZSBjYWtl", map[string]any{
			"pattern": "cake*lie", "actions": []any{"notify"}})
		alice.Must(t, 200, "PUT", content+"last?after=SSByZWFsbHkgbGlrZSBjYWtl", map[string]any{"pattern": "z", "actions": []any{}})
		alice.Must(t, 200, "PUT", content+"top", map[string]any{"pattern": "t", "actions": []any{"notify"}})
		rs := getGlobalRules(t, alice)
		if got := fmt.Sprint(rs.ids("content")); got != "[top U3BvbmdlIGNha2UgaXMgYmVzdA SSByZWFsbHkgbGlrZSBjYWtl last]" {
			t.Fatalf("content order = %s", got)
		}
		// Replacing keeps the place; before/after move it.
		alice.Must(t, 200, "PUT", content+"top", map[string]any{"pattern": "tt", "actions": []any{"notify"}})
		alice.Must(t, 200, "PUT", content+"last?before=top", map[string]any{"pattern": "z", "actions": []any{"notify"}})
		rs = getGlobalRules(t, alice)
		if got := fmt.Sprint(rs.ids("content")); got != "[last top U3BvbmdlIGNha2UgaXMgYmVzdA SSByZWFsbHkgbGlrZSBjYWtl]" {
			t.Fatalf("content order after moves = %s", got)
		}
		cake := alice.Must(t, 200, "GET", content+"SSByZWFsbHkgbGlrZSBjYWtl", nil)
		if cake.Str("pattern") != "cake" || cake.Body["enabled"] != true || cake.Body["default"] != false || cake.Body["conditions"] != nil {
			t.Errorf("cake rule = %s", cake.Raw)
		}

		// Room, sender and override rules.
		room := "!dj234r78wl45Gh4D:matrix.org"
		alice.Must(t, 200, "PUT", pushRulesPath+"global/room/"+url.PathEscape(room), map[string]any{"actions": []any{}})
		alice.Must(t, 200, "PUT", pushRulesPath+"global/sender/"+url.PathEscape("@spambot:matrix.org"), map[string]any{"actions": []any{"dont_notify"}})
		spam := alice.Must(t, 200, "GET", pushRulesPath+"global/sender/"+url.PathEscape("@spambot:matrix.org")+"/actions", nil)
		if a, ok := spam.Body["actions"].([]any); !ok || len(a) != 0 {
			t.Errorf("dont_notify was not stripped: %s", spam.Raw)
		}
		beer := map[string]any{
			"conditions": []any{
				map[string]any{"kind": "event_match", "key": "content.body", "pattern": "beer"},
				map[string]any{"kind": "room_member_count", "is": "<=10"}},
			"actions": []any{"notify", map[string]any{"set_tweak": "sound", "value": "beeroclock.wav"}},
		}
		alice.Must(t, 200, "PUT", pushRulesPath+"global/override/U2VlIHlvdSBpbiBUaGUgRHVrZQ", beer)
		rs = getGlobalRules(t, alice)
		if got := rs.ids("override"); len(got) != 11 || got[0] != ".m.rule.master" || got[1] != "U2VlIHlvdSBpbiBUaGUgRHVrZQ" {
			t.Errorf("override = %v", got)
		}
		if got := rs.ids("room"); fmt.Sprint(got) != "["+room+"]" {
			t.Errorf("room = %v", got)
		}

		// enabled and actions, on the user's rules and on defaults.
		alice.Must(t, 200, "PUT", content+"top/enabled", map[string]any{"enabled": false})
		if r := alice.Must(t, 200, "GET", content+"top/enabled", nil); r.Body["enabled"] != false {
			t.Errorf("top enabled = %s", r.Raw)
		}
		alice.Must(t, 200, "PUT", pushRulesPath+"global/override/.m.rule.master/enabled", map[string]any{"enabled": true})
		if r := alice.Must(t, 200, "GET", pushRulesPath+"global/override/.m.rule.master/enabled", nil); r.Body["enabled"] != true {
			t.Errorf("master enabled = %s", r.Raw)
		}
		alice.Must(t, 200, "PUT", pushRulesPath+"global/underride/.m.rule.message/actions",
			map[string]any{"actions": []any{"notify", map[string]any{"set_tweak": "highlight"}}})
		msg := alice.Must(t, 200, "GET", pushRulesPath+"global/underride/.m.rule.message", nil)
		if a, _ := msg.Body["actions"].([]any); len(a) != 2 || msg.Body["default"] != true || msg.Body["enabled"] != true {
			t.Errorf(".m.rule.message = %s", msg.Raw)
		}
		// A replaced rule keeps its enabled flag.
		alice.Must(t, 200, "PUT", content+"top", map[string]any{"pattern": "ttt", "actions": []any{"notify"}})
		if r := alice.Must(t, 200, "GET", content+"top", nil); r.Body["enabled"] != false || r.Str("pattern") != "ttt" {
			t.Errorf("replaced top = %s", r.Raw)
		}

		// Delete.
		alice.Must(t, 200, "DELETE", content+"last", nil)
		alice.MustErr(t, 404, "M_NOT_FOUND", "GET", content+"last", nil)
		alice.MustErr(t, 404, "M_NOT_FOUND", "DELETE", content+"last", nil)

		// The change reached /sync as m.push_rules, and bob's rules are untouched.
		next := doSync(t, alice, "?since="+first.NextBatch)
		synced := syncPushRules(t, next)
		if synced == nil {
			t.Fatalf("incremental sync after changes has no m.push_rules")
		}
		if got := fmt.Sprint(synced.ids("content")); got != "[top U3BvbmdlIGNha2UgaXMgYmVzdA SSByZWFsbHkgbGlrZSBjYWtl]" || !synced["override"][0].Enabled {
			t.Errorf("synced content = %s, master enabled %v", got, synced["override"][0].Enabled)
		}
		if b := getGlobalRules(t, bob); len(b["content"]) != 0 || b["override"][0].Enabled {
			t.Errorf("bob's rules changed: %v", b.ids("content"))
		}

		// A long-polling sync wakes on a change.
		done := make(chan syncResp, 1)
		go func() { done <- doSync(t, alice, "?timeout=20000&since="+next.NextBatch) }()
		alice.Must(t, 200, "PUT", pushRulesPath+"global/override/.m.rule.master/enabled", map[string]any{"enabled": false})
		woke := <-done
		if synced := syncPushRules(t, woke); synced == nil || synced["override"][0].Enabled {
			t.Errorf("long-polling sync: m.push_rules = %v", synced)
		}
	})
}

func TestPushRulesErrors(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := Register(t, s, "alice", "correct horse battery")
		p := pushRulesPath
		notify := map[string]any{"actions": []any{"notify"}}
		alice.Must(t, 200, "PUT", p+"global/content/mine", map[string]any{"pattern": "x", "actions": []any{"notify"}})

		for _, tc := range []struct {
			status       int
			code, method string
			path         string
			body         any
		}{
			{404, "M_NOT_FOUND", "GET", p + "global/content/nope", nil},
			{404, "M_NOT_FOUND", "GET", p + "global/override/.m.rule.message", nil}, // an underride rule
			{404, "M_NOT_FOUND", "GET", p + "global/content/nope/enabled", nil},
			{404, "M_NOT_FOUND", "GET", p + "global/content/nope/actions", nil},
			{404, "M_NOT_FOUND", "PUT", p + "global/content/nope/enabled", map[string]any{"enabled": true}},
			{404, "M_NOT_FOUND", "PUT", p + "global/content/nope/actions", notify},
			{404, "M_NOT_FOUND", "PUT", p + "global/override/.m.rule.contains_display_name/enabled", map[string]any{"enabled": true}},
			{404, "M_NOT_FOUND", "DELETE", p + "global/content/nope", nil},
			{400, "M_INVALID_PARAM", "GET", p + "device/", nil},
			{400, "M_INVALID_PARAM", "GET", p + "global/nonsense/x", nil},
			{400, "M_INVALID_PARAM", "GET", p + "global/content/mine/wibble", nil},
			{400, "M_INVALID_PARAM", "PUT", p + "global/override/.m.rule.mine", notify},
			{400, "M_INVALID_PARAM", "PUT", p + "global/content/" + url.PathEscape("a/b"), map[string]any{"pattern": "x", "actions": []any{}}},
			{400, "M_INVALID_PARAM", "PUT", p + "global/room/not-a-room", notify},
			{400, "M_INVALID_PARAM", "PUT", p + "global/sender/not-a-user", notify},
			{400, "M_INVALID_PARAM", "DELETE", p + "global/override/.m.rule.master", nil},
			{400, "M_UNKNOWN", "PUT", p + "global/content/new?before=nope", map[string]any{"pattern": "x", "actions": []any{}}},
			{400, "M_UNKNOWN", "PUT", p + "global/underride/new?after=.m.rule.message", notify},
			{400, "M_BAD_JSON", "PUT", p + "global/content/new", map[string]any{"actions": []any{}}}, // no pattern
			{400, "M_BAD_JSON", "PUT", p + "global/override/new", map[string]any{"conditions": []any{}}},
			{400, "M_BAD_JSON", "PUT", p + "global/override/new", map[string]any{"actions": []any{"wibble"}}},
			{400, "M_BAD_JSON", "PUT", p + "global/override/new", map[string]any{"actions": []any{}, "conditions": []any{map[string]any{"key": "type"}}}},
			{400, "M_BAD_JSON", "PUT", p + "global/override/new", map[string]any{"actions": []any{}, "conditions": []any{map[string]any{"kind": "event_match", "key": "type"}}}},
			{400, "M_BAD_JSON", "PUT", p + "global/content/mine/enabled", map[string]any{"enabled": "yes"}},
			{400, "M_BAD_JSON", "PUT", p + "global/content/mine/enabled", map[string]any{}},
			{400, "M_BAD_JSON", "PUT", p + "global/content/mine/actions", map[string]any{"actions": "notify"}},
			{400, "M_NOT_JSON", "PUT", p + "global/content/mine", "{"},
		} {
			alice.MustErr(t, tc.status, tc.code, tc.method, tc.path, tc.body)
		}
		// Nothing above changed the rules.
		rs := getGlobalRules(t, alice)
		if got := fmt.Sprint(rs.ids("content")); got != "[mine]" || len(rs["override"]) != 10 || len(rs["underride"]) != 5 || rs["override"][0].Enabled {
			t.Errorf("rules after failed requests: content %s, %d override", got, len(rs["override"]))
		}
		if r := alice.Must(t, 200, "GET", p+"global/content/mine/enabled", nil); r.Body["enabled"] != true {
			t.Errorf("mine enabled = %s", r.Raw)
		}
		// Without a token.
		Anonymous(s).MustErr(t, 401, "M_MISSING_TOKEN", "GET", p, nil)
	})
}
