package storage

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
)

// Consent is one policy version a user accepted (table user_consent, migration 0024).
type Consent struct {
	PolicyID   string
	Version    string
	AcceptedTS int64
}

// AccountConsent is an account with every policy version it accepted, for `myelin consent`.
type AccountConsent struct {
	Localpart     string
	DeactivatedTS int64 // zero while active
	Accepted      []Consent
}

// RecordConsent records that localpart accepted each version in versions (policy id to
// version) at ts. A version accepted before keeps its first acceptance time.
func (tx *Tx) RecordConsent(ctx context.Context, localpart string, versions map[string]string, ts int64) error {
	ids := make([]string, 0, len(versions))
	for id := range versions {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if _, err := tx.Exec(ctx, `INSERT INTO user_consent (localpart, policy_id, version, accepted_ts)
			VALUES ($1, $2, $3, $4) ON CONFLICT (localpart, policy_id, version) DO NOTHING`,
			localpart, id, versions[id], ts); err != nil {
			return fmt.Errorf("storage: recording consent to %s: %w", id, err)
		}
	}
	return nil
}

// ConsentOf returns the policy versions localpart accepted, by policy, oldest first.
func ConsentOf(ctx context.Context, r Reader, localpart string) ([]Consent, error) {
	rows, err := r.Query(ctx, `SELECT policy_id, version, accepted_ts FROM user_consent
		WHERE localpart = $1 ORDER BY policy_id, accepted_ts, version`, localpart)
	if err != nil {
		return nil, fmt.Errorf("storage: reading consent: %w", err)
	}
	defer rows.Close()
	out := []Consent{}
	for rows.Next() {
		var c Consent
		if err := rows.Scan(&c.PolicyID, &c.Version, &c.AcceptedTS); err != nil {
			return nil, fmt.Errorf("storage: reading consent: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ConsentByAccount returns every account, deactivated ones included, in localpart order, with
// the versions it accepted (of policyID only, when it is not empty), so that accounts that
// accepted nothing are listed too.
func ConsentByAccount(ctx context.Context, r Reader, policyID string) ([]AccountConsent, error) {
	join, args := `c.localpart = a.localpart`, []any{}
	if policyID != "" {
		join, args = join+` AND c.policy_id = $1`, append(args, policyID)
	}
	rows, err := r.Query(ctx, `SELECT a.localpart, a.deactivated_ts, c.policy_id, c.version, c.accepted_ts
		FROM accounts a LEFT JOIN user_consent c ON `+join+`
		ORDER BY a.localpart, c.policy_id, c.accepted_ts, c.version`, args...)
	if err != nil {
		return nil, fmt.Errorf("storage: listing consent: %w", err)
	}
	defer rows.Close()
	var out []AccountConsent
	for rows.Next() {
		var (
			localpart       string
			deactivated, ts sql.NullInt64
			policy, version sql.NullString
		)
		if err := rows.Scan(&localpart, &deactivated, &policy, &version, &ts); err != nil {
			return nil, fmt.Errorf("storage: listing consent: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].Localpart != localpart {
			out = append(out, AccountConsent{Localpart: localpart, DeactivatedTS: deactivated.Int64})
		}
		if policy.Valid {
			a := &out[len(out)-1]
			a.Accepted = append(a.Accepted, Consent{PolicyID: policy.String, Version: version.String, AcceptedTS: ts.Int64})
		}
	}
	return out, rows.Err()
}

// DeleteUserConsent forgets what localpart accepted, when the account is erased.
func (tx *Tx) DeleteUserConsent(ctx context.Context, localpart string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM user_consent WHERE localpart = $1`, localpart); err != nil {
		return fmt.Errorf("storage: deleting consent: %w", err)
	}
	return nil
}
