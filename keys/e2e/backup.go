package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"

	"myelin/storage"
)

// BackupVersion is a key backup's information, as GET /room_keys/version returns it.
type BackupVersion struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Count     int64           `json:"count"`
	Etag      string          `json:"etag"`
	Version   string          `json:"version"`
}

// KeyBackupData is one room key in a backup; the pointers tell a missing field from a zero one.
type KeyBackupData struct {
	FirstMessageIndex *int64          `json:"first_message_index"`
	ForwardedCount    *int64          `json:"forwarded_count"`
	IsVerified        *bool           `json:"is_verified"`
	SessionData       json.RawMessage `json:"session_data"`
}

// BackupUpdate is what PUT and DELETE on /room_keys/keys return.
type BackupUpdate struct {
	Etag  string `json:"etag"`
	Count int64  `json:"count"`
}

// parseVersion turns an opaque version string into the stored number; anything else is a
// version that does not exist.
func parseVersion(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || strconv.FormatInt(n, 10) != v {
		return 0, fail(ErrNotFound, "unknown backup version")
	}
	return n, nil
}

func checkAuthData(algorithm string, authData json.RawMessage) error {
	if algorithm == "" {
		return fail(ErrMissingParam, "missing algorithm")
	}
	if _, err := parseObjectShape(authData); err != nil {
		return fail(ErrInvalidParam, "auth_data must be a JSON object")
	}
	return nil
}

// CreateBackup creates a backup version, which becomes the current one, and returns it.
// Unknown algorithms are accepted: the server never uses the data, and clients may adopt new
// algorithms before this server knows their names.
func (s *Store) CreateBackup(ctx context.Context, userID, algorithm string, authData json.RawMessage) (string, error) {
	if err := checkAuthData(algorithm, authData); err != nil {
		return "", err
	}
	var v int64
	err := s.db.WithTx(ctx, func(tx *storage.Tx) error {
		var err error
		v, err = tx.InsertKeyBackup(ctx, userID, algorithm, authData)
		return err
	})
	return strconv.FormatInt(v, 10), err
}

// Backup returns a backup version's information; version "" means the current one.
func (s *Store) Backup(ctx context.Context, userID, version string) (BackupVersion, error) {
	var (
		b   storage.KeyBackup
		err error
	)
	if version == "" {
		b, err = storage.LatestKeyBackup(ctx, s.db, userID)
	} else {
		var n int64
		if n, err = parseVersion(version); err != nil {
			return BackupVersion{}, err
		}
		b, err = storage.GetKeyBackup(ctx, s.db, userID, n)
	}
	if errors.Is(err, storage.ErrNotFound) {
		if version == "" {
			return BackupVersion{}, fail(ErrNotFound, "no current backup version")
		}
		return BackupVersion{}, fail(ErrNotFound, "unknown backup version")
	}
	if err != nil {
		return BackupVersion{}, err
	}
	return backupVersion(b), nil
}

func backupVersion(b storage.KeyBackup) BackupVersion {
	return BackupVersion{
		Algorithm: b.Algorithm, AuthData: b.AuthData, Count: b.Count,
		Etag: strconv.FormatInt(b.Etag, 10), Version: strconv.FormatInt(b.Version, 10),
	}
}

// UpdateBackup replaces a backup's auth_data. The algorithm must be the backup's, and
// bodyVersion, when given, the version in the path.
func (s *Store) UpdateBackup(ctx context.Context, userID, version, algorithm, bodyVersion string, authData json.RawMessage) error {
	n, err := parseVersion(version)
	if err != nil {
		return err
	}
	if err := checkAuthData(algorithm, authData); err != nil {
		return err
	}
	if bodyVersion != "" && bodyVersion != version {
		return fail(ErrInvalidParam, "version does not match the version in the path")
	}
	return s.db.WithTx(ctx, func(tx *storage.Tx) error {
		b, err := storage.GetKeyBackup(ctx, tx, userID, n)
		if errors.Is(err, storage.ErrNotFound) {
			return fail(ErrNotFound, "unknown backup version")
		}
		if err != nil {
			return err
		}
		if b.Algorithm != algorithm {
			return fail(ErrInvalidParam, "algorithm does not match the backup's")
		}
		return tx.UpdateKeyBackupAuthData(ctx, userID, n, authData)
	})
}

// DeleteBackup deletes a backup version and its keys. Deleting one already deleted succeeds;
// one that never existed is ErrNotFound.
func (s *Store) DeleteBackup(ctx context.Context, userID, version string) error {
	n, err := parseVersion(version)
	if err != nil {
		return err
	}
	return s.db.WithTx(ctx, func(tx *storage.Tx) error {
		existed, err := tx.DeleteKeyBackup(ctx, userID, n)
		if err == nil && !existed {
			return fail(ErrNotFound, "unknown backup version")
		}
		return err
	})
}

// BetterBackupKey reports whether candidate should replace existing in a backup, by the rules
// of the spec's "Server-side key backups": a verified key beats an unverified one, then a lower
// first_message_index wins, then a lower forwarded_count. A key no better is not stored.
func BetterBackupKey(candidate, existing storage.BackupKey) bool {
	if candidate.IsVerified != existing.IsVerified {
		return candidate.IsVerified
	}
	if candidate.FirstMessageIndex != existing.FirstMessageIndex {
		return candidate.FirstMessageIndex < existing.FirstMessageIndex
	}
	return candidate.ForwardedCount < existing.ForwardedCount
}

// PutBackupKeys stores room keys (room id to session id to key) in the current backup, each
// replacing the stored key of its session only if it is better. Any other version is
// *WrongBackupVersionError.
func (s *Store) PutBackupKeys(ctx context.Context, userID, version string, rooms map[string]map[string]KeyBackupData) (BackupUpdate, error) {
	var incoming []storage.BackupKey
	for roomID, sessions := range rooms {
		for sessionID, d := range sessions {
			if roomID == "" || sessionID == "" {
				return BackupUpdate{}, fail(ErrInvalidParam, "empty room or session id")
			}
			if d.FirstMessageIndex == nil || d.ForwardedCount == nil || d.IsVerified == nil || len(d.SessionData) == 0 {
				return BackupUpdate{}, fail(ErrMissingParam, "key data needs first_message_index, forwarded_count, is_verified and session_data")
			}
			if _, err := parseObjectShape(d.SessionData); err != nil {
				return BackupUpdate{}, fail(ErrInvalidParam, "session_data must be a JSON object")
			}
			incoming = append(incoming, storage.BackupKey{
				UserID: userID, RoomID: roomID, SessionID: sessionID,
				FirstMessageIndex: *d.FirstMessageIndex, ForwardedCount: *d.ForwardedCount, IsVerified: *d.IsVerified,
				SessionData: d.SessionData,
			})
		}
	}
	var out BackupUpdate
	err := s.db.WithTx(ctx, func(tx *storage.Tx) error {
		current, err := storage.LatestKeyBackup(ctx, tx, userID)
		if errors.Is(err, storage.ErrNotFound) {
			return fail(ErrNotFound, "unknown backup version")
		}
		if err != nil {
			return err
		}
		if strconv.FormatInt(current.Version, 10) != version {
			return &WrongBackupVersionError{CurrentVersion: strconv.FormatInt(current.Version, 10)}
		}
		changed := 0
		for _, k := range incoming {
			k.Version = current.Version
			old, err := storage.ListBackupKeys(ctx, tx, userID, current.Version, k.RoomID, k.SessionID)
			if err != nil {
				return err
			}
			if len(old) > 0 && !BetterBackupKey(k, old[0]) {
				continue
			}
			if err := tx.UpsertBackupKey(ctx, k); err != nil {
				return err
			}
			changed++
		}
		if changed > 0 {
			if current.Etag, err = tx.BumpKeyBackupEtag(ctx, userID, current.Version); err != nil {
				return err
			}
		}
		after, err := storage.GetKeyBackup(ctx, tx, userID, current.Version)
		if err != nil {
			return err
		}
		out = BackupUpdate{Etag: strconv.FormatInt(after.Etag, 10), Count: after.Count}
		return nil
	})
	return out, err
}

// BackupKeys returns keys of a backup version: all of them when roomID is empty, a room's when
// sessionID is empty, or one session's. An unknown version is ErrNotFound.
func (s *Store) BackupKeys(ctx context.Context, userID, version, roomID, sessionID string) ([]storage.BackupKey, error) {
	n, err := parseVersion(version)
	if err != nil {
		return nil, err
	}
	var out []storage.BackupKey
	err = s.db.WithReadTx(ctx, func(r storage.Reader) error {
		if _, err := storage.GetKeyBackup(ctx, r, userID, n); errors.Is(err, storage.ErrNotFound) {
			return fail(ErrNotFound, "unknown backup version")
		} else if err != nil {
			return err
		}
		out, err = storage.ListBackupKeys(ctx, r, userID, n, roomID, sessionID)
		return err
	})
	return out, err
}

// DeleteBackupKeys removes keys from a backup version, selected as BackupKeys selects them.
func (s *Store) DeleteBackupKeys(ctx context.Context, userID, version, roomID, sessionID string) (BackupUpdate, error) {
	n, err := parseVersion(version)
	if err != nil {
		return BackupUpdate{}, err
	}
	var out BackupUpdate
	err = s.db.WithTx(ctx, func(tx *storage.Tx) error {
		b, err := storage.GetKeyBackup(ctx, tx, userID, n)
		if errors.Is(err, storage.ErrNotFound) {
			return fail(ErrNotFound, "unknown backup version")
		}
		if err != nil {
			return err
		}
		removed, err := tx.DeleteBackupKeys(ctx, userID, n, roomID, sessionID)
		if err != nil {
			return err
		}
		if removed > 0 {
			if b.Etag, err = tx.BumpKeyBackupEtag(ctx, userID, n); err != nil {
				return err
			}
		}
		out = BackupUpdate{Etag: strconv.FormatInt(b.Etag, 10), Count: b.Count - removed}
		return nil
	})
	return out, err
}
