package storage

import (
	"context"
	"database/sql"
	"fmt"
)

// AccountRestrictions are the reversible limits an administrator put on an account: a locked
// account can do nothing but log out; a suspended one can read but not act in rooms.
type AccountRestrictions struct {
	Locked    bool
	Suspended bool
}

// GetAccountRestrictions returns an account's lock and suspension; ErrNotFound if there is no
// such account.
func GetAccountRestrictions(ctx context.Context, r Reader, localpart string) (AccountRestrictions, error) {
	var locked, suspended sql.NullInt64
	err := r.QueryRow(ctx, `SELECT locked_ts, suspended_ts FROM accounts WHERE localpart = $1`, localpart).
		Scan(&locked, &suspended)
	if err != nil {
		return AccountRestrictions{}, fmt.Errorf("storage: account restrictions: %w", err)
	}
	return AccountRestrictions{Locked: locked.Valid, Suspended: suspended.Valid}, nil
}

// SetAccountLocked locks (at ts) or unlocks an account; ErrNotFound if there is no such account.
func (tx *Tx) SetAccountLocked(ctx context.Context, localpart string, locked bool, ts int64) error {
	return tx.setRestriction(ctx, "locked_ts", localpart, locked, ts)
}

// SetAccountSuspended suspends (at ts) or unsuspends an account; ErrNotFound if there is no
// such account.
func (tx *Tx) SetAccountSuspended(ctx context.Context, localpart string, suspended bool, ts int64) error {
	return tx.setRestriction(ctx, "suspended_ts", localpart, suspended, ts)
}

// setRestriction keeps the time a restriction was first applied: applying it again is a no-op.
func (tx *Tx) setRestriction(ctx context.Context, column, localpart string, on bool, ts int64) error {
	var q string
	args := []any{localpart}
	if on {
		q = `UPDATE accounts SET ` + column + ` = COALESCE(` + column + `, $2) WHERE localpart = $1`
		args = append(args, ts)
	} else {
		q = `UPDATE accounts SET ` + column + ` = NULL WHERE localpart = $1`
	}
	res, err := tx.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("storage: setting %s: %w", column, err)
	}
	return requireRow(res)
}
