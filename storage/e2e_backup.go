package storage

import (
	"context"
	"fmt"
)

// KeyBackup is a server-side key backup version of a user.
type KeyBackup struct {
	UserID    string
	Version   int64
	Algorithm string
	AuthData  []byte // as uploaded
	Etag      int64  // grows with every change to the backup's keys
	Count     int64  // number of keys stored
}

// BackupKey is one room key in a backup.
type BackupKey struct {
	UserID            string
	Version           int64
	RoomID            string
	SessionID         string
	FirstMessageIndex int64
	ForwardedCount    int64
	IsVerified        bool
	SessionData       []byte // ciphertext, as uploaded
}

// InsertKeyBackup creates a backup version numbered after every version the user ever had,
// deleted ones included, and returns its number.
func (tx *Tx) InsertKeyBackup(ctx context.Context, userID, algorithm string, authData []byte) (int64, error) {
	var version int64
	err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM e2e_backup_versions WHERE user_id = $1`, userID).Scan(&version)
	if err != nil {
		return 0, fmt.Errorf("storage: numbering key backup: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO e2e_backup_versions (user_id, version, algorithm, auth_data, etag, deleted)
		VALUES ($1, $2, $3, $4, 0, FALSE)`, userID, version, algorithm, string(authData))
	if err != nil {
		return 0, fmt.Errorf("storage: creating key backup: %w", err)
	}
	return version, nil
}

const selectKeyBackup = `SELECT v.version, v.algorithm, v.auth_data, v.etag,
		(SELECT COUNT(*) FROM e2e_backup_keys k WHERE k.user_id = v.user_id AND k.version = v.version)
	FROM e2e_backup_versions v WHERE v.user_id = $1 AND NOT v.deleted`

// GetKeyBackup returns a backup version that exists and is not deleted; ErrNotFound otherwise.
func GetKeyBackup(ctx context.Context, r Reader, userID string, version int64) (KeyBackup, error) {
	return scanKeyBackup(userID, r.QueryRow(ctx, selectKeyBackup+` AND v.version = $2`, userID, version))
}

// LatestKeyBackup returns the user's newest backup that is not deleted; ErrNotFound if none.
func LatestKeyBackup(ctx context.Context, r Reader, userID string) (KeyBackup, error) {
	return scanKeyBackup(userID, r.QueryRow(ctx, selectKeyBackup+` ORDER BY v.version DESC LIMIT 1`, userID))
}

func scanKeyBackup(userID string, row *Row) (KeyBackup, error) {
	b := KeyBackup{UserID: userID}
	var auth string
	if err := row.Scan(&b.Version, &b.Algorithm, &auth, &b.Etag, &b.Count); err != nil {
		return KeyBackup{}, err
	}
	b.AuthData = []byte(auth)
	return b, nil
}

// UpdateKeyBackupAuthData replaces a backup's auth_data; ErrNotFound if it does not exist or
// is deleted.
func (tx *Tx) UpdateKeyBackupAuthData(ctx context.Context, userID string, version int64, authData []byte) error {
	res, err := tx.Exec(ctx, `UPDATE e2e_backup_versions SET auth_data = $3 WHERE user_id = $1 AND version = $2 AND NOT deleted`,
		userID, version, string(authData))
	if err != nil {
		return fmt.Errorf("storage: updating key backup: %w", err)
	}
	return requireRow(res)
}

// DeleteKeyBackup deletes a backup's keys and auth_data, keeping a tombstone row. It reports
// whether the version ever existed (deleted before or not).
func (tx *Tx) DeleteKeyBackup(ctx context.Context, userID string, version int64) (existed bool, err error) {
	res, err := tx.Exec(ctx, `UPDATE e2e_backup_versions SET deleted = TRUE, auth_data = '' WHERE user_id = $1 AND version = $2`,
		userID, version)
	if err != nil {
		return false, fmt.Errorf("storage: deleting key backup: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	if _, err := tx.Exec(ctx, `DELETE FROM e2e_backup_keys WHERE user_id = $1 AND version = $2`, userID, version); err != nil {
		return false, fmt.Errorf("storage: deleting key backup: %w", err)
	}
	return true, nil
}

// BumpKeyBackupEtag advances a backup's etag after a change to its keys and returns it.
func (tx *Tx) BumpKeyBackupEtag(ctx context.Context, userID string, version int64) (int64, error) {
	var etag int64
	err := tx.QueryRow(ctx, `UPDATE e2e_backup_versions SET etag = etag + 1 WHERE user_id = $1 AND version = $2
		RETURNING etag`, userID, version).Scan(&etag)
	if err != nil {
		return 0, fmt.Errorf("storage: updating key backup etag: %w", err)
	}
	return etag, nil
}

// UpsertBackupKey stores a room key in a backup, replacing the one stored for that session.
func (tx *Tx) UpsertBackupKey(ctx context.Context, k BackupKey) error {
	_, err := tx.Exec(ctx, `INSERT INTO e2e_backup_keys (user_id, version, room_id, session_id, first_message_index,
			forwarded_count, is_verified, session_data)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET first_message_index = excluded.first_message_index,
			forwarded_count = excluded.forwarded_count, is_verified = excluded.is_verified, session_data = excluded.session_data`,
		k.UserID, k.Version, k.RoomID, k.SessionID, k.FirstMessageIndex, k.ForwardedCount, k.IsVerified, string(k.SessionData))
	if err != nil {
		return fmt.Errorf("storage: storing backup key: %w", err)
	}
	return nil
}

// ListBackupKeys returns the keys of a backup: all of them when roomID is empty, those of a room
// when sessionID is empty, or the one of a session.
func ListBackupKeys(ctx context.Context, r Reader, userID string, version int64, roomID, sessionID string) ([]BackupKey, error) {
	q := `SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data
		FROM e2e_backup_keys WHERE user_id = $1 AND version = $2`
	args := []any{userID, version}
	if roomID != "" {
		q += ` AND room_id = $3`
		args = append(args, roomID)
		if sessionID != "" {
			q += ` AND session_id = $4`
			args = append(args, sessionID)
		}
	}
	rows, err := r.Query(ctx, q+` ORDER BY room_id, session_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("storage: reading backup keys: %w", err)
	}
	defer rows.Close()
	var out []BackupKey
	for rows.Next() {
		k := BackupKey{UserID: userID, Version: version}
		var data string
		if err := rows.Scan(&k.RoomID, &k.SessionID, &k.FirstMessageIndex, &k.ForwardedCount, &k.IsVerified, &data); err != nil {
			return nil, err
		}
		k.SessionData = []byte(data)
		out = append(out, k)
	}
	return out, rows.Err()
}

// DeleteBackupKeys removes keys from a backup, selected as ListBackupKeys selects them, and
// returns how many it removed.
func (tx *Tx) DeleteBackupKeys(ctx context.Context, userID string, version int64, roomID, sessionID string) (int64, error) {
	q := `DELETE FROM e2e_backup_keys WHERE user_id = $1 AND version = $2`
	args := []any{userID, version}
	if roomID != "" {
		q += ` AND room_id = $3`
		args = append(args, roomID)
		if sessionID != "" {
			q += ` AND session_id = $4`
			args = append(args, sessionID)
		}
	}
	res, err := tx.Exec(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("storage: deleting backup keys: %w", err)
	}
	return res.RowsAffected()
}
