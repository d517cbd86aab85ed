package push_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"myelin/push"
	"myelin/storage"
	"myelin/storage/storagetest"
)

func ids(rules []push.Rule) []string {
	var out []string
	for _, r := range rules {
		out = append(out, r.RuleID)
	}
	return out
}

func sameIDs(a []string, b ...string) bool {
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

func TestStore(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		const user = "@alice:example.org"
		s := push.NewStore(db)
		rs, err := s.Rules(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs.Override) != 10 || len(rs.Underride) != 5 {
			t.Fatalf("defaults: %d override, %d underride", len(rs.Override), len(rs.Underride))
		}
		notify := []json.RawMessage{json.RawMessage(`"notify"`)}
		content := func(id string) push.Rule {
			p := id + "*"
			return push.Rule{RuleID: id, Pattern: &p, Actions: notify}
		}
		put := func(r push.Rule, before, after string) {
			t.Helper()
			if err := s.PutRule(ctx, user, push.KindContent, r, before, after); err != nil {
				t.Fatalf("PutRule(%s, before %q, after %q): %v", r.RuleID, before, after, err)
			}
		}
		put(content("a"), "", "")
		put(content("b"), "", "")   // b a
		put(content("c"), "", "a")  // b a c
		put(content("d"), "a", "")  // b d a c
		put(content("d"), "", "")   // replaced in place
		put(content("b"), "", "c")  // d a c b
		put(content("e"), "d", "b") // before wins: e d a c b
		if rs, err = s.Rules(ctx, user); err != nil {
			t.Fatal(err)
		}
		if got := ids(rs.Content); !sameIDs(got, "e", "d", "a", "c", "b") {
			t.Fatalf("content order = %v", got)
		}
		if err := s.PutRule(ctx, user, push.KindContent, content("f"), "nope", ""); !errors.Is(err, push.ErrRelativeNotFound) {
			t.Errorf("before an unknown rule: %v", err)
		}
		if err := s.PutRule(ctx, user, push.KindUnderride, push.Rule{RuleID: "u", Actions: notify}, "", ".m.rule.message"); !errors.Is(err, push.ErrRelativeNotFound) {
			t.Errorf("after a default rule: %v", err)
		}
		if err := s.PutRule(ctx, user, push.KindOverride, push.Rule{RuleID: ".m.rule.mine", Actions: notify}, "", ""); !errors.Is(err, push.ErrDefaultRule) {
			t.Errorf("a rule id starting with '.': %v", err)
		}

		// Disable a user rule: it keeps its flag when replaced.
		if err := s.SetEnabled(ctx, user, push.KindContent, "a", false); err != nil {
			t.Fatal(err)
		}
		put(content("a"), "", "")
		if r, err := s.Rule(ctx, user, push.KindContent, "a"); err != nil || r.Enabled {
			t.Errorf("replaced rule: %+v, %v", r, err)
		}
		// Change a default rule.
		if err := s.SetEnabled(ctx, user, push.KindOverride, push.MasterRuleID, true); err != nil {
			t.Fatal(err)
		}
		if err := s.SetActions(ctx, user, push.KindOverride, push.MasterRuleID, notify); err != nil {
			t.Fatal(err)
		}
		if err := s.SetEnabled(ctx, user, push.KindOverride, ".m.rule.message", true); !errors.Is(err, push.ErrNotFound) {
			t.Errorf("a default rule of another kind: %v", err)
		}
		if err := s.SetEnabled(ctx, user, push.KindContent, "zz", true); !errors.Is(err, push.ErrNotFound) {
			t.Errorf("an unknown rule: %v", err)
		}
		m, err := s.Rule(ctx, user, push.KindOverride, push.MasterRuleID)
		if err != nil || !m.Enabled || !m.Default || len(m.Actions) != 1 {
			t.Errorf("master rule: %+v, %v", m, err)
		}
		// An override rule of the user's own goes after the master rule.
		if err := s.PutRule(ctx, user, push.KindOverride, push.Rule{RuleID: "o", Conditions: []push.Condition{}, Actions: notify}, "", ""); err != nil {
			t.Fatal(err)
		}
		rs, _ = s.Rules(ctx, user)
		if rs.Override[0].RuleID != push.MasterRuleID || rs.Override[1].RuleID != "o" || rs.Override[2].RuleID != ".m.rule.suppress_notices" {
			t.Errorf("override order = %v", ids(rs.Override))
		}

		// So does an underride rule of the user's own, before the default underride rules.
		if err := s.PutRule(ctx, user, push.KindUnderride, push.Rule{RuleID: "u", Actions: notify}, "", ""); err != nil {
			t.Fatal(err)
		}
		rs, _ = s.Rules(ctx, user)
		if rs.Underride[0].RuleID != "u" || rs.Underride[0].Conditions == nil || len(rs.Underride) != 6 {
			t.Errorf("underride = %v", ids(rs.Underride))
		}

		// Delete.
		if err := s.DeleteRule(ctx, user, push.KindContent, "d"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRule(ctx, user, push.KindContent, "d"); !errors.Is(err, push.ErrNotFound) {
			t.Errorf("deleting twice: %v", err)
		}
		if err := s.DeleteRule(ctx, user, push.KindOverride, push.MasterRuleID); !errors.Is(err, push.ErrDefaultRule) {
			t.Errorf("deleting a default rule: %v", err)
		}

		// A fresh store reads the same from the database, and the account data follows.
		fresh, err := push.NewStore(db).Rules(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		cached, _ := s.Rules(ctx, user)
		a, _ := json.Marshal(fresh)
		b, _ := json.Marshal(cached)
		if string(a) != string(b) {
			t.Errorf("cached and stored rules differ:\n%s\n%s", b, a)
		}
		d, err := storage.GetAccountData(ctx, db, user, "", push.PushRulesAccountDataType)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := push.AccountDataContent(fresh)
		if string(d.Content) != string(want) {
			t.Errorf("m.push_rules account data = %s, want %s", d.Content, want)
		}
		// Erasing the account removes the user's rows; Forget drops the cache.
		if err := db.WithTx(ctx, func(tx *storage.Tx) error { return tx.DeleteUserPushRules(ctx, user) }); err != nil {
			t.Fatal(err)
		}
		s.Forget(user)
		if erased, err := s.Rules(ctx, user); err != nil || len(erased.Content) != 0 || erased.Override[0].Enabled {
			t.Errorf("rules after erasure: %v, %v", erased, err)
		}
		// Another user still has the defaults.
		other, _ := s.Rules(ctx, "@bob:example.org")
		if len(other.Content) != 0 || other.Override[0].Enabled {
			t.Error("another user's rules changed")
		}
	})
}
