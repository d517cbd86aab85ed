package storage

import (
	"context"
	"database/sql"
)

// Account is a local user account as stored.
type Account struct {
	Localpart     string
	PasswordHash  string // empty when the account has no password (deactivated, or SSO-only)
	IsAdmin       bool
	CreatedTS     int64
	DeactivatedTS int64 // zero while active
}

// InsertAccount creates an account; ErrConflict if the localpart is taken (or was ever taken).
func (tx *Tx) InsertAccount(ctx context.Context, a Account) error {
	_, err := tx.Exec(ctx,
		`INSERT INTO accounts (localpart, password_hash, is_admin, created_ts) VALUES ($1, $2, $3, $4)`,
		a.Localpart, nullString(a.PasswordHash), a.IsAdmin, a.CreatedTS)
	return err
}

// GetAccount returns an account by localpart; ErrNotFound if there is none.
func GetAccount(ctx context.Context, r Reader, localpart string) (Account, error) {
	var (
		a           Account
		hash        sql.NullString
		deactivated sql.NullInt64
	)
	err := r.QueryRow(ctx,
		`SELECT localpart, password_hash, is_admin, created_ts, deactivated_ts FROM accounts WHERE localpart = $1`,
		localpart).Scan(&a.Localpart, &hash, &a.IsAdmin, &a.CreatedTS, &deactivated)
	a.PasswordHash, a.DeactivatedTS = hash.String, deactivated.Int64
	return a, err
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// SetPasswordHash replaces an account's password hash; ErrNotFound if there is no such account.
func (tx *Tx) SetPasswordHash(ctx context.Context, localpart, hash string) error {
	res, err := tx.Exec(ctx, `UPDATE accounts SET password_hash = $2 WHERE localpart = $1`, localpart, nullString(hash))
	if err != nil {
		return err
	}
	return requireRow(res)
}

// DeactivateAccount erases an account's password hash, marks it deactivated at ts and deletes all
// its devices with their tokens. The row stays as a tombstone so that the user id is never reused.
// It returns the ids of the devices deleted.
func (tx *Tx) DeactivateAccount(ctx context.Context, localpart string, ts int64) ([]string, error) {
	res, err := tx.Exec(ctx, `UPDATE accounts SET password_hash = NULL, deactivated_ts = $2 WHERE localpart = $1`, localpart, ts)
	if err != nil {
		return nil, err
	}
	if err := requireRow(res); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM uia_sessions WHERE localpart = $1`, localpart); err != nil {
		return nil, err
	}
	return tx.DeleteAllDevices(ctx, localpart, "")
}
