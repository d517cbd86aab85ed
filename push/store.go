package push

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"myelin/storage"
)

// PushRulesAccountDataType is the global account data event that carries a user's rules to
// their clients on /sync.
const PushRulesAccountDataType = "m.push_rules"

// maxCachedUsers bounds the rule sets kept in memory; past it the cache starts over.
const maxCachedUsers = 20000

// Store holds users' push rules: the spec's defaults merged with what each user changed
// through the push rule API. The evaluator files of this package do no I/O; this one does.
//
// Rule sets are cached per user: the notifier asks for the rules of every local member of a
// room for each event, and rules change rarely. Every change through the Store drops the
// user's entry. The cache is per process: a second process on the same PostgreSQL database
// sees another's change when its entry is dropped or the cache starts over.
type Store struct {
	db *storage.DB

	mu    sync.RWMutex
	cache map[string]*Ruleset
	// gen counts invalidations, so that a load that raced a change is not cached.
	gen uint64
}

// NewStore returns the push rule store over db.
func NewStore(db *storage.DB) *Store { return &Store{db: db, cache: map[string]*Ruleset{}} }

// Rules returns the user's effective rule set: the defaults with the user's own rules and
// changes to default rules applied. Callers must not modify it.
func (s *Store) Rules(ctx context.Context, userID string) (*Ruleset, error) {
	s.mu.RLock()
	rs, ok := s.cache[userID]
	gen := s.gen
	s.mu.RUnlock()
	if ok {
		return rs, nil
	}
	rows, err := storage.PushRuleRows(ctx, s.db, userID)
	if err != nil {
		return nil, err
	}
	rs, err = merge(userID, rows)
	if err != nil {
		return nil, err
	}
	if err := rs.prepare(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.gen == gen {
		if len(s.cache) >= maxCachedUsers {
			clear(s.cache)
		}
		s.cache[userID] = rs
	}
	s.mu.Unlock()
	return rs, nil
}

// Rule returns one rule of the user's effective rule set; ErrNotFound if there is none.
func (s *Store) Rule(ctx context.Context, userID, kind, ruleID string) (Rule, error) {
	rs, err := s.Rules(ctx, userID)
	if err != nil {
		return Rule{}, err
	}
	r, ok := rs.Find(kind, ruleID)
	if !ok {
		return Rule{}, ErrNotFound
	}
	return r.clone(), nil
}

// Forget drops the user's cached rule set, after their rows changed other than through the
// Store (an account erased).
func (s *Store) Forget(userID string) {
	s.mu.Lock()
	delete(s.cache, userID)
	s.gen++
	s.mu.Unlock()
}

// PutRule creates or replaces one of the user's own rules of a kind (PUT
// /pushrules/global/{kind}/{ruleId}). A new rule is enabled and, without before or after, the
// most important of the user's rules of its kind; a replaced rule keeps its enabled flag and,
// without before or after, its place. With before (which wins over after) or after, the rule
// goes just above or below that rule of the user's own. Actions must have been through
// NormalizeActions, conditions through CheckConditions.
func (s *Store) PutRule(ctx context.Context, userID, kind string, rule Rule, before, after string) error {
	if !ValidKind(kind) {
		return invalid("unknown kind %q", kind)
	}
	if err := CheckRuleID(rule.RuleID); err != nil {
		return err
	}
	relative, below := before, false
	if relative == "" && after != "" {
		relative, below = after, true
	}
	if IsDefaultRuleID(relative) {
		return fmt.Errorf("%w: %q is a server-default rule", ErrRelativeNotFound, relative)
	}
	row := storage.PushRuleRow{Kind: kind, RuleID: rule.RuleID}
	var err error
	if row.Actions, err = json.Marshal(nonNil(rule.Actions)); err != nil {
		return fmt.Errorf("push: encoding actions: %w", err)
	}
	switch kind {
	case KindOverride, KindUnderride:
		if row.Conditions, err = json.Marshal(nonNil(rule.Conditions)); err != nil {
			return fmt.Errorf("push: encoding conditions: %w", err)
		}
	case KindContent:
		if rule.Pattern == nil {
			return invalid("a content rule needs a pattern")
		}
		row.Pattern = rule.Pattern
	}
	return s.change(ctx, userID, func(tx *storage.Tx, rows []storage.PushRuleRow) error {
		var order []string // the user's own rules of this kind, most important first
		enabled := true
		exists := false
		for _, r := range rows {
			if r.Kind != kind || IsDefaultRuleID(r.RuleID) {
				continue
			}
			if r.RuleID == rule.RuleID {
				exists = true
				if r.Enabled != nil {
					enabled = *r.Enabled
				}
			}
			order = append(order, r.RuleID)
		}
		row.Enabled = &enabled
		switch {
		case relative != "":
			if relative == rule.RuleID {
				return fmt.Errorf("%w: a rule cannot be placed relative to itself", ErrRelativeNotFound)
			}
			order = slices.DeleteFunc(order, func(id string) bool { return id == rule.RuleID })
			at := slices.Index(order, relative)
			if at < 0 {
				return fmt.Errorf("%w: %q", ErrRelativeNotFound, relative)
			}
			if below {
				at++
			}
			order = slices.Insert(order, at, rule.RuleID)
		case !exists:
			order = slices.Insert(order, 0, rule.RuleID)
		}
		if err := tx.UpsertPushRule(ctx, userID, row); err != nil {
			return err
		}
		// Renumber the kind: a handful of rows, and positions stay dense.
		for i, id := range order {
			if err := tx.SetPushRulePosition(ctx, userID, kind, id, int64(i)); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteRule deletes one of the user's own rules. ErrDefaultRule for a server-default rule,
// ErrNotFound if there is no such rule.
func (s *Store) DeleteRule(ctx context.Context, userID, kind, ruleID string) error {
	if IsDefaultRuleID(ruleID) {
		if _, ok := Default(userID).Find(kind, ruleID); ok {
			return ErrDefaultRule
		}
		return ErrNotFound
	}
	return s.change(ctx, userID, func(tx *storage.Tx, _ []storage.PushRuleRow) error {
		found, err := tx.DeletePushRule(ctx, userID, kind, ruleID)
		if err == nil && !found {
			err = ErrNotFound
		}
		return err
	})
}

// SetEnabled enables or disables a rule, the user's own or a server-default one.
func (s *Store) SetEnabled(ctx context.Context, userID, kind, ruleID string, enabled bool) error {
	return s.changeRule(ctx, userID, kind, ruleID, func(row *storage.PushRuleRow) error {
		row.Enabled = &enabled
		return nil
	})
}

// SetActions replaces the actions of a rule, the user's own or a server-default one. Actions
// must have been through NormalizeActions.
func (s *Store) SetActions(ctx context.Context, userID, kind, ruleID string, actions []json.RawMessage) error {
	return s.changeRule(ctx, userID, kind, ruleID, func(row *storage.PushRuleRow) error {
		b, err := json.Marshal(nonNil(actions))
		if err != nil {
			return fmt.Errorf("push: encoding actions: %w", err)
		}
		row.Actions = b
		return nil
	})
}

// changeRule applies edit to the row of an existing rule: the user's own, or a new or existing
// row of changes to a default rule. ErrNotFound if the user has no such rule.
func (s *Store) changeRule(ctx context.Context, userID, kind, ruleID string, edit func(*storage.PushRuleRow) error) error {
	return s.change(ctx, userID, func(tx *storage.Tx, rows []storage.PushRuleRow) error {
		i := slices.IndexFunc(rows, func(r storage.PushRuleRow) bool { return r.Kind == kind && r.RuleID == ruleID })
		var row storage.PushRuleRow
		switch {
		case i >= 0:
			row = rows[i]
		case IsDefaultRuleID(ruleID):
			if _, ok := Default(userID).Find(kind, ruleID); !ok {
				return ErrNotFound
			}
			row = storage.PushRuleRow{Kind: kind, RuleID: ruleID}
		default:
			return ErrNotFound
		}
		if err := edit(&row); err != nil {
			return err
		}
		return tx.UpsertPushRule(ctx, userID, row)
	})
}

// change runs fn in a transaction over the user's rows, then records the new rule set as the
// user's m.push_rules account data, so that /sync hands it to every client, and drops the
// cached rule set.
func (s *Store) change(ctx context.Context, userID string, fn func(tx *storage.Tx, rows []storage.PushRuleRow) error) error {
	err := s.db.WithTx(ctx, func(tx *storage.Tx) error {
		rows, err := storage.PushRuleRows(ctx, tx, userID)
		if err != nil {
			return err
		}
		if err := fn(tx, rows); err != nil {
			return err
		}
		if rows, err = storage.PushRuleRows(ctx, tx, userID); err != nil {
			return err
		}
		rs, err := merge(userID, rows)
		if err != nil {
			return err
		}
		content, err := AccountDataContent(rs)
		if err != nil {
			return err
		}
		_, err = tx.SetAccountData(ctx, userID, "", PushRulesAccountDataType, content)
		return err
	})
	s.Forget(userID)
	return err
}

// AccountDataContent is the content of the m.push_rules account data event for a rule set.
func AccountDataContent(rs *Ruleset) ([]byte, error) {
	b, err := json.Marshal(map[string]*Ruleset{"global": rs})
	if err != nil {
		return nil, fmt.Errorf("push: encoding rules: %w", err)
	}
	return b, nil
}

// merge builds the effective rule set from the defaults and the user's rows: .m.rule.master
// first, then the user's own rules of each kind before the defaults of that kind.
func merge(userID string, rows []storage.PushRuleRow) (*Ruleset, error) {
	def := Default(userID)
	own := &Ruleset{}
	for _, row := range rows {
		if !ValidKind(row.Kind) {
			continue
		}
		if IsDefaultRuleID(row.RuleID) {
			rules := *def.kindPtr(row.Kind)
			i := slices.IndexFunc(rules, func(r Rule) bool { return r.RuleID == row.RuleID })
			if i < 0 {
				continue // a default rule that a newer spec dropped
			}
			if row.Enabled != nil {
				rules[i].Enabled = *row.Enabled
			}
			if row.Actions != nil {
				if err := json.Unmarshal(row.Actions, &rules[i].Actions); err != nil {
					return nil, fmt.Errorf("push: actions of %s for %s: %w", row.RuleID, userID, err)
				}
			}
			continue
		}
		r := Rule{RuleID: row.RuleID, Enabled: row.Enabled == nil || *row.Enabled, Pattern: row.Pattern}
		if row.Actions != nil {
			if err := json.Unmarshal(row.Actions, &r.Actions); err != nil {
				return nil, fmt.Errorf("push: actions of %s for %s: %w", row.RuleID, userID, err)
			}
		}
		if row.Kind == KindOverride || row.Kind == KindUnderride {
			r.Conditions = []Condition{}
			if row.Conditions != nil {
				if err := json.Unmarshal(row.Conditions, &r.Conditions); err != nil {
					return nil, fmt.Errorf("push: conditions of %s for %s: %w", row.RuleID, userID, err)
				}
			}
		}
		p := own.kindPtr(row.Kind)
		*p = append(*p, r)
	}
	rs := &Ruleset{
		Content:   append(own.Content, def.Content...),
		Room:      own.Room,
		Sender:    own.Sender,
		Underride: append(own.Underride, def.Underride...),
	}
	rs.Override = make([]Rule, 0, len(def.Override)+len(own.Override))
	rest := def.Override
	if len(rest) > 0 && rest[0].RuleID == MasterRuleID {
		rs.Override = append(rs.Override, rest[0])
		rest = rest[1:]
	}
	rs.Override = append(append(rs.Override, own.Override...), rest...)
	return rs, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
