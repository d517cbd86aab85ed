package storage

import (
	"context"
	"fmt"
)

// InsertOpenIDToken stores the hash of an OpenID token issued to userID, valid until expiresTS.
// Expired tokens are deleted on the way, so that the table holds only live ones.
func (tx *Tx) InsertOpenIDToken(ctx context.Context, hash, userID string, expiresTS, nowTS int64) error {
	if _, err := tx.Exec(ctx, `DELETE FROM openid_tokens WHERE expires_ts <= $1`, nowTS); err != nil {
		return fmt.Errorf("storage: expiring OpenID tokens: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO openid_tokens (token_hash, user_id, expires_ts) VALUES ($1, $2, $3)`,
		hash, userID, expiresTS); err != nil {
		return fmt.Errorf("storage: storing an OpenID token: %w", err)
	}
	return nil
}

// LookupOpenIDToken returns the user an OpenID token was issued to; ErrNotFound if it is
// unknown or expired at nowTS.
func LookupOpenIDToken(ctx context.Context, r Reader, hash string, nowTS int64) (string, error) {
	var userID string
	err := r.QueryRow(ctx, `SELECT user_id FROM openid_tokens WHERE token_hash = $1 AND expires_ts > $2`,
		hash, nowTS).Scan(&userID)
	if err != nil {
		return "", fmt.Errorf("storage: OpenID token: %w", err)
	}
	return userID, nil
}

// DeleteUserOpenIDTokens revokes every OpenID token of a user, for account deactivation: a
// third party must not learn a deactivated account's id from a token issued before.
func (tx *Tx) DeleteUserOpenIDTokens(ctx context.Context, userID string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM openid_tokens WHERE user_id = $1`, userID); err != nil {
		return fmt.Errorf("storage: revoking OpenID tokens: %w", err)
	}
	return nil
}
