package storage

import (
	"context"
	"database/sql"
	"fmt"
)

// AccessToken is an access token as stored: by hash, never the token itself.
type AccessToken struct {
	Hash        string
	Localpart   string
	DeviceID    string
	RefreshHash string // the refresh token it was issued with; empty if none
	CreatedTS   int64
	ExpiresTS   int64 // 0: never expires
}

// RefreshToken is a refresh token as stored: by hash.
type RefreshToken struct {
	Hash      string
	Localpart string
	DeviceID  string
	PrevHash  string // the token this one replaced, still valid until this pair is first used
	CreatedTS int64
}

// TokenOwner is what authenticating a request with an access token needs to know.
type TokenOwner struct {
	Localpart  string
	DeviceID   string
	ExpiresTS  int64
	LastSeenTS int64
	// PendingPrevRefresh is set when the token comes from a refresh whose old refresh token has
	// not yet been revoked: the first use of the new access token revokes it.
	RefreshHash        string
	PendingPrevRefresh bool
	// Locked and Suspended are the account's restrictions (account_restrictions.go).
	Locked, Suspended bool
}

// InsertAccessToken stores a new access token for an existing device.
func (tx *Tx) InsertAccessToken(ctx context.Context, t AccessToken) error {
	_, err := tx.Exec(ctx, `INSERT INTO access_tokens (token_hash, localpart, device_id, refresh_hash, created_ts, expires_ts)
		VALUES ($1, $2, $3, $4, $5, $6)`, t.Hash, t.Localpart, t.DeviceID, nullString(t.RefreshHash), t.CreatedTS, t.ExpiresTS)
	if err != nil {
		return fmt.Errorf("storage: inserting access token: %w", err)
	}
	return nil
}

// InsertRefreshToken stores a new refresh token for an existing device.
func (tx *Tx) InsertRefreshToken(ctx context.Context, t RefreshToken) error {
	_, err := tx.Exec(ctx, `INSERT INTO refresh_tokens (token_hash, localpart, device_id, prev_hash, created_ts)
		VALUES ($1, $2, $3, $4, $5)`, t.Hash, t.Localpart, t.DeviceID, nullString(t.PrevHash), t.CreatedTS)
	if err != nil {
		return fmt.Errorf("storage: inserting refresh token: %w", err)
	}
	return nil
}

// LookupAccessToken returns the owner of an access token; ErrNotFound if it is unknown.
// Expiry is the caller's to judge, so that an expired token can be told from an unknown one.
func LookupAccessToken(ctx context.Context, r Reader, hash string) (TokenOwner, error) {
	var (
		o           TokenOwner
		refreshHash sql.NullString
		prevHash    sql.NullString
		locked      sql.NullInt64
		suspended   sql.NullInt64
	)
	err := r.QueryRow(ctx, `SELECT a.localpart, a.device_id, a.expires_ts, d.last_seen_ts, a.refresh_hash, rt.prev_hash,
		ac.locked_ts, ac.suspended_ts
		FROM access_tokens a
		JOIN devices d ON d.localpart = a.localpart AND d.device_id = a.device_id
		LEFT JOIN refresh_tokens rt ON rt.token_hash = a.refresh_hash
		LEFT JOIN accounts ac ON ac.localpart = a.localpart
		WHERE a.token_hash = $1`, hash).Scan(&o.Localpart, &o.DeviceID, &o.ExpiresTS, &o.LastSeenTS, &refreshHash, &prevHash,
		&locked, &suspended)
	o.RefreshHash, o.PendingPrevRefresh = refreshHash.String, prevHash.Valid
	o.Locked, o.Suspended = locked.Valid, suspended.Valid
	return o, err
}

// GetRefreshToken returns a refresh token by hash; ErrNotFound if it is unknown or revoked.
func GetRefreshToken(ctx context.Context, r Reader, hash string) (RefreshToken, error) {
	var (
		t    RefreshToken
		prev sql.NullString
	)
	err := r.QueryRow(ctx, `SELECT token_hash, localpart, device_id, prev_hash, created_ts FROM refresh_tokens WHERE token_hash = $1`,
		hash).Scan(&t.Hash, &t.Localpart, &t.DeviceID, &prev, &t.CreatedTS)
	t.PrevHash = prev.String
	return t, err
}

// DeleteAccessToken revokes one access token.
func (tx *Tx) DeleteAccessToken(ctx context.Context, hash string) error {
	_, err := tx.Exec(ctx, `DELETE FROM access_tokens WHERE token_hash = $1`, hash)
	return err
}

// DeleteDeviceTokens revokes every access and refresh token of a device, keeping the device.
func (tx *Tx) DeleteDeviceTokens(ctx context.Context, localpart, deviceID string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM access_tokens WHERE localpart = $1 AND device_id = $2`, localpart, deviceID); err != nil {
		return fmt.Errorf("storage: revoking access tokens: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM refresh_tokens WHERE localpart = $1 AND device_id = $2`, localpart, deviceID); err != nil {
		return fmt.Errorf("storage: revoking refresh tokens: %w", err)
	}
	return nil
}

// deleteRefreshToken revokes a refresh token and every access token issued with it.
func (tx *Tx) deleteRefreshToken(ctx context.Context, hash string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM access_tokens WHERE refresh_hash = $1`, hash); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `DELETE FROM refresh_tokens WHERE token_hash = $1`, hash)
	return err
}

// RotateRefreshToken replaces the refresh token old by a new pair of tokens. The access tokens
// issued with old are revoked at once; old itself stays valid, so that a client that lost the
// answer can repeat the refresh, until the new pair is first used (ConfirmRefresh). Repeating a
// refresh with old discards the pair the earlier attempt issued. Using old's own replacement of
// an earlier token (old.PrevHash) revokes that earlier token.
func (tx *Tx) RotateRefreshToken(ctx context.Context, old RefreshToken, next RefreshToken, access AccessToken) error {
	rows, err := tx.Query(ctx, `SELECT token_hash FROM refresh_tokens WHERE prev_hash = $1`, old.Hash)
	if err != nil {
		return fmt.Errorf("storage: rotating refresh token: %w", err)
	}
	var earlier []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			rows.Close()
			return err
		}
		earlier = append(earlier, h)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return err
	}
	rows.Close()
	for _, h := range earlier {
		if err := tx.deleteRefreshToken(ctx, h); err != nil {
			return fmt.Errorf("storage: rotating refresh token: %w", err)
		}
	}
	if old.PrevHash != "" {
		if err := tx.ConfirmRefresh(ctx, old.Hash); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM access_tokens WHERE refresh_hash = $1`, old.Hash); err != nil {
		return fmt.Errorf("storage: rotating refresh token: %w", err)
	}
	next.PrevHash = old.Hash
	if err := tx.InsertRefreshToken(ctx, next); err != nil {
		return err
	}
	access.RefreshHash = next.Hash
	return tx.InsertAccessToken(ctx, access)
}

// ConfirmRefresh records that the refresh token hash (or an access token issued with it) has been
// used: the token it replaced is revoked for good.
func (tx *Tx) ConfirmRefresh(ctx context.Context, hash string) error {
	var prev sql.NullString
	err := tx.QueryRow(ctx, `SELECT prev_hash FROM refresh_tokens WHERE token_hash = $1`, hash).Scan(&prev)
	if err != nil || !prev.Valid {
		return ignoreNotFound(err)
	}
	if err := tx.deleteRefreshToken(ctx, prev.String); err != nil {
		return fmt.Errorf("storage: revoking a replaced refresh token: %w", err)
	}
	_, err = tx.Exec(ctx, `UPDATE refresh_tokens SET prev_hash = NULL WHERE token_hash = $1`, hash)
	return err
}

// RegistrationToken lets someone register when registration requires a token; stored by hash.
type RegistrationToken struct {
	Hash        string
	UsesAllowed int64 // 0: unlimited
	Completed   int64
	ExpiryTS    int64 // 0: never expires
	CreatedTS   int64
}

// InsertRegistrationToken stores a new registration token; ErrConflict if it exists.
func (tx *Tx) InsertRegistrationToken(ctx context.Context, t RegistrationToken) error {
	_, err := tx.Exec(ctx, `INSERT INTO registration_tokens (token_hash, uses_allowed, completed, expiry_ts, created_ts)
		VALUES ($1, $2, 0, $3, $4)`, t.Hash, nullInt(t.UsesAllowed), nullInt(t.ExpiryTS), t.CreatedTS)
	return err
}

// RegistrationTokenValid reports whether a registration token exists, has uses left and has not
// expired at now.
func RegistrationTokenValid(ctx context.Context, r Reader, hash string, now int64) (bool, error) {
	var n int
	err := r.QueryRow(ctx, `SELECT COUNT(*) FROM registration_tokens WHERE token_hash = $1
		AND (uses_allowed IS NULL OR completed < uses_allowed) AND (expiry_ts IS NULL OR expiry_ts > $2)`, hash, now).Scan(&n)
	return n > 0, err
}

// UseRegistrationToken counts one completed registration against a token, atomically with the
// registration's transaction; ErrNotFound if the token is unknown, used up or expired.
func (tx *Tx) UseRegistrationToken(ctx context.Context, hash string, now int64) error {
	res, err := tx.Exec(ctx, `UPDATE registration_tokens SET completed = completed + 1 WHERE token_hash = $1
		AND (uses_allowed IS NULL OR completed < uses_allowed) AND (expiry_ts IS NULL OR expiry_ts > $2)`, hash, now)
	if err != nil {
		return fmt.Errorf("storage: using registration token: %w", err)
	}
	return requireRow(res)
}

func nullInt(v int64) sql.NullInt64 { return sql.NullInt64{Int64: v, Valid: v != 0} }
