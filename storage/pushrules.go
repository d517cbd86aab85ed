package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
)

// PushRuleRow is one row of push_rules: a user's own push rule, or their change to a
// server-default rule (rule ids starting with '.'). Package push merges the rows with the
// default rules; storage only keeps them.
type PushRuleRow struct {
	Kind   string
	RuleID string
	// Position orders a user's own rules within their kind, 0 first.
	Position int64
	// Enabled and Actions are nil where a default rule's own value stands.
	Enabled *bool
	Actions json.RawMessage
	// Conditions (override and underride) and Pattern (content) of a user's own rule.
	Conditions json.RawMessage
	Pattern    *string
}

// PushRuleRows returns a user's rows, ordered by kind and position.
func PushRuleRows(ctx context.Context, r Reader, userID string) ([]PushRuleRow, error) {
	rows, err := r.Query(ctx, `SELECT kind, rule_id, position, enabled, actions, conditions, pattern
		FROM push_rules WHERE user_id = $1 ORDER BY kind, position, rule_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("storage: reading push rules: %w", err)
	}
	defer rows.Close()
	var out []PushRuleRow
	for rows.Next() {
		var (
			p                            PushRuleRow
			enabled                      sql.NullBool
			actions, conditions, pattern sql.NullString
		)
		if err := rows.Scan(&p.Kind, &p.RuleID, &p.Position, &enabled, &actions, &conditions, &pattern); err != nil {
			return nil, fmt.Errorf("storage: reading push rules: %w", err)
		}
		if enabled.Valid {
			p.Enabled = &enabled.Bool
		}
		if actions.Valid {
			p.Actions = json.RawMessage(actions.String)
		}
		if conditions.Valid {
			p.Conditions = json.RawMessage(conditions.String)
		}
		if pattern.Valid {
			p.Pattern = &pattern.String
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: reading push rules: %w", err)
	}
	return out, nil
}

// UpsertPushRule writes a row, replacing the row of the same user, kind and rule id.
func (tx *Tx) UpsertPushRule(ctx context.Context, userID string, p PushRuleRow) error {
	var enabled sql.NullBool
	if p.Enabled != nil {
		enabled = sql.NullBool{Bool: *p.Enabled, Valid: true}
	}
	var pattern sql.NullString
	if p.Pattern != nil {
		pattern = sql.NullString{String: *p.Pattern, Valid: true}
	}
	_, err := tx.Exec(ctx, `INSERT INTO push_rules (user_id, kind, rule_id, position, enabled, actions, conditions, pattern)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (user_id, kind, rule_id) DO UPDATE SET position = excluded.position,
			enabled = excluded.enabled, actions = excluded.actions,
			conditions = excluded.conditions, pattern = excluded.pattern`,
		userID, p.Kind, p.RuleID, p.Position, enabled, pushRuleText(p.Actions), pushRuleText(p.Conditions), pattern)
	if err != nil {
		return fmt.Errorf("storage: writing push rule: %w", err)
	}
	return nil
}

// SetPushRulePosition moves one of a user's rules to a position within its kind.
func (tx *Tx) SetPushRulePosition(ctx context.Context, userID, kind, ruleID string, position int64) error {
	_, err := tx.Exec(ctx, `UPDATE push_rules SET position = $4 WHERE user_id = $1 AND kind = $2 AND rule_id = $3`,
		userID, kind, ruleID, position)
	if err != nil {
		return fmt.Errorf("storage: ordering push rules: %w", err)
	}
	return nil
}

// DeletePushRule removes a row and reports whether there was one.
func (tx *Tx) DeletePushRule(ctx context.Context, userID, kind, ruleID string) (bool, error) {
	res, err := tx.Exec(ctx, `DELETE FROM push_rules WHERE user_id = $1 AND kind = $2 AND rule_id = $3`, userID, kind, ruleID)
	if err != nil {
		return false, fmt.Errorf("storage: deleting push rule: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("storage: deleting push rule: %w", err)
	}
	return n > 0, nil
}

// DeleteUserPushRules removes every row of a user, when the account is erased.
func (tx *Tx) DeleteUserPushRules(ctx context.Context, userID string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM push_rules WHERE user_id = $1`, userID); err != nil {
		return fmt.Errorf("storage: deleting push rules: %w", err)
	}
	return nil
}

// pushRuleText stores nil JSON as NULL.
func pushRuleText(b json.RawMessage) sql.NullString {
	return sql.NullString{String: string(b), Valid: b != nil}
}
