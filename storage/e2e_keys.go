package storage

import (
	"context"
	"errors"
	"fmt"
)

// The end-to-end encryption key store's tables (migration 0006). These functions know columns,
// not Matrix rules: validation, claim order and visibility live in keys/e2e. Keys are stored and
// returned as the bytes the client uploaded.

// DeviceKeys is a device's published identity keys.
type DeviceKeys struct {
	UserID   string
	DeviceID string
	KeyJSON  []byte
}

// UpsertDeviceKeys stores a device's identity keys, replacing earlier ones, and reports whether
// anything changed.
func (tx *Tx) UpsertDeviceKeys(ctx context.Context, k DeviceKeys) (changed bool, err error) {
	var old string
	err = tx.QueryRow(ctx, `SELECT key_json FROM e2e_device_keys WHERE user_id = $1 AND device_id = $2`,
		k.UserID, k.DeviceID).Scan(&old)
	switch {
	case err == nil && old == string(k.KeyJSON):
		return false, nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return false, fmt.Errorf("storage: reading device keys: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO e2e_device_keys (user_id, device_id, key_json) VALUES ($1, $2, $3)
		ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json`, k.UserID, k.DeviceID, string(k.KeyJSON))
	if err != nil {
		return false, fmt.Errorf("storage: storing device keys: %w", err)
	}
	return true, nil
}

// ListDeviceKeys returns the identity keys of a user's devices: those named, or all when
// deviceIDs is empty. Devices without keys are left out.
func ListDeviceKeys(ctx context.Context, r Reader, userID string, deviceIDs []string) ([]DeviceKeys, error) {
	rows, err := r.Query(ctx, `SELECT device_id, key_json FROM e2e_device_keys WHERE user_id = $1 ORDER BY device_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("storage: listing device keys: %w", err)
	}
	defer rows.Close()
	want := make(map[string]bool, len(deviceIDs))
	for _, id := range deviceIDs {
		want[id] = true
	}
	var out []DeviceKeys
	for rows.Next() {
		var id, js string
		if err := rows.Scan(&id, &js); err != nil {
			return nil, err
		}
		if len(want) == 0 || want[id] {
			out = append(out, DeviceKeys{UserID: userID, DeviceID: id, KeyJSON: []byte(js)})
		}
	}
	return out, rows.Err()
}

// OneTimeKey is an unclaimed one-time key. Algorithm and KeyID are the two halves of the
// "<algorithm>:<key_id>" name it was uploaded under.
type OneTimeKey struct {
	UserID, DeviceID  string
	Algorithm, KeyID  string
	KeyJSON           []byte
	UploadPos         int64 // orders keys by upload call; keys of one call are equivalent
	FallbackKeyIsUsed bool  // only for fallback keys: handed out since uploaded
}

// InsertOneTimeKeys stores unclaimed one-time keys of one device, in as few statements as the
// argument limit allows. Where the device already has an unclaimed key by a name it stores
// nothing and returns that key's JSON in existing (by algorithm and key id), for the caller to
// compare. One statement rather than one per key: on PostgreSQL an upload holds its stream
// positions' row locks until it commits, so each round trip inside it delayed every other
// upload (issue 9).
func (tx *Tx) InsertOneTimeKeys(ctx context.Context, keys []OneTimeKey) (existing map[[2]string][]byte, err error) {
	const perKey = 6
	inserted := map[[2]string]bool{}
	for chunk := range binaryChunks(keys, maxRowsPerInsert) {
		args := make([]any, 0, perKey*len(chunk))
		for _, k := range chunk {
			args = append(args, k.UserID, k.DeviceID, k.Algorithm, k.KeyID, string(k.KeyJSON), k.UploadPos)
		}
		rows, err := tx.Query(ctx, `INSERT INTO e2e_one_time_keys (user_id, device_id, algorithm, key_id, key_json, upload_pos)
			VALUES `+rowValues(len(chunk), perKey)+` ON CONFLICT DO NOTHING RETURNING algorithm, key_id`, args...)
		if err != nil {
			return nil, fmt.Errorf("storage: storing one-time keys: %w", err)
		}
		for rows.Next() {
			var alg, id string
			if err := rows.Scan(&alg, &id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("storage: storing one-time keys: %w", err)
			}
			inserted[[2]string{alg, id}] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("storage: storing one-time keys: %w", err)
		}
	}
	for _, k := range keys {
		name := [2]string{k.Algorithm, k.KeyID}
		if inserted[name] {
			continue
		}
		var js string
		err = tx.QueryRow(ctx, `SELECT key_json FROM e2e_one_time_keys
			WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 AND key_id = $4`,
			k.UserID, k.DeviceID, k.Algorithm, k.KeyID).Scan(&js)
		if err != nil {
			return nil, fmt.Errorf("storage: reading one-time key: %w", err)
		}
		if existing == nil {
			existing = map[[2]string][]byte{}
		}
		existing[name] = []byte(js)
	}
	return existing, nil
}

// OneTimeKeyCounts returns the number of unclaimed one-time keys of a device per algorithm.
func OneTimeKeyCounts(ctx context.Context, r Reader, userID, deviceID string) (map[string]int, error) {
	rows, err := r.Query(ctx, `SELECT algorithm, COUNT(*) FROM e2e_one_time_keys
		WHERE user_id = $1 AND device_id = $2 GROUP BY algorithm`, userID, deviceID)
	if err != nil {
		return nil, fmt.Errorf("storage: counting one-time keys: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var alg string
		var n int
		if err := rows.Scan(&alg, &n); err != nil {
			return nil, err
		}
		out[alg] = n
	}
	return out, rows.Err()
}

// claimOneTimeKey deletes and returns the oldest unclaimed key. With PostgreSQL, SKIP LOCKED
// lets concurrent claims each take a different key instead of queueing on the same row.
var claimOneTimeKey = [2]string{
	`DELETE FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 AND key_id = (
		SELECT key_id FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3
		ORDER BY upload_pos, key_id LIMIT 1)
	RETURNING key_id, key_json`,
	`DELETE FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 AND key_id = (
		SELECT key_id FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3
		ORDER BY upload_pos, key_id LIMIT 1 FOR UPDATE SKIP LOCKED)
	RETURNING key_id, key_json`,
}

// maxClaimAttempts bounds the retries of a claim that lost every race for a key.
const maxClaimAttempts = 10

// ClaimOneTimeKey removes the device's oldest unclaimed one-time key of an algorithm and returns
// it. Each key is returned by at most one claim, however many run at once. ErrNotFound: the
// device has no key of that algorithm left.
func (tx *Tx) ClaimOneTimeKey(ctx context.Context, userID, deviceID, algorithm string) (keyID string, keyJSON []byte, err error) {
	q := tx.dialect.Pick(claimOneTimeKey[0], claimOneTimeKey[1])
	for range maxClaimAttempts {
		var js string
		err := tx.QueryRow(ctx, q, userID, deviceID, algorithm).Scan(&keyID, &js)
		if err == nil {
			return keyID, []byte(js), nil
		}
		if !errors.Is(err, ErrNotFound) {
			return "", nil, fmt.Errorf("storage: claiming one-time key: %w", err)
		}
		// Nothing came back: either there is no key, or (PostgreSQL) every remaining key is
		// being claimed by a concurrent transaction, which may yet roll back.
		var left int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3`,
			userID, deviceID, algorithm).Scan(&left); err != nil {
			return "", nil, fmt.Errorf("storage: claiming one-time key: %w", err)
		}
		if left == 0 {
			return "", nil, ErrNotFound
		}
	}
	return "", nil, ErrNotFound
}

// UpsertFallbackKey stores the device's fallback key for an algorithm, replacing the previous
// one. Uploading the same key again keeps its used flag; a new key starts unused.
func (tx *Tx) UpsertFallbackKey(ctx context.Context, k OneTimeKey) error {
	_, err := tx.Exec(ctx, `INSERT INTO e2e_fallback_keys (user_id, device_id, algorithm, key_id, key_json, used)
		VALUES ($1, $2, $3, $4, $5, FALSE)
		ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET key_id = excluded.key_id, key_json = excluded.key_json,
			used = CASE WHEN e2e_fallback_keys.key_id = excluded.key_id AND e2e_fallback_keys.key_json = excluded.key_json
				THEN e2e_fallback_keys.used ELSE FALSE END`,
		k.UserID, k.DeviceID, k.Algorithm, k.KeyID, string(k.KeyJSON))
	if err != nil {
		return fmt.Errorf("storage: storing fallback key: %w", err)
	}
	return nil
}

// ClaimFallbackKey returns the device's fallback key of an algorithm and marks it used; the key
// stays until replaced. ErrNotFound: the device has none.
func (tx *Tx) ClaimFallbackKey(ctx context.Context, userID, deviceID, algorithm string) (keyID string, keyJSON []byte, err error) {
	var js string
	err = tx.QueryRow(ctx, `UPDATE e2e_fallback_keys SET used = TRUE WHERE user_id = $1 AND device_id = $2 AND algorithm = $3
		RETURNING key_id, key_json`, userID, deviceID, algorithm).Scan(&keyID, &js)
	if err != nil {
		return "", nil, fmt.Errorf("storage: claiming fallback key: %w", err)
	}
	return keyID, []byte(js), nil
}

// UnusedFallbackKeyAlgorithms returns, sorted, the algorithms for which the device has a
// fallback key that has not been handed out.
func UnusedFallbackKeyAlgorithms(ctx context.Context, r Reader, userID, deviceID string) ([]string, error) {
	rows, err := r.Query(ctx, `SELECT algorithm FROM e2e_fallback_keys WHERE user_id = $1 AND device_id = $2 AND NOT used
		ORDER BY algorithm`, userID, deviceID)
	if err != nil {
		return nil, fmt.Errorf("storage: listing fallback keys: %w", err)
	}
	return scanE2EStrings(rows)
}

// DeleteDeviceE2E removes everything the key store holds for one device: its identity, one-time
// and fallback keys, signatures on and by its key, pending to-device messages and to-device
// transaction ids. It reports whether the device had published identity keys, which is when
// other users must learn that it went away.
func (tx *Tx) DeleteDeviceE2E(ctx context.Context, userID, deviceID string) (hadKeys bool, err error) {
	res, err := tx.Exec(ctx, `DELETE FROM e2e_device_keys WHERE user_id = $1 AND device_id = $2`, userID, deviceID)
	if err != nil {
		return false, fmt.Errorf("storage: deleting device keys: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	for _, q := range []string{
		`DELETE FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2`,
		`DELETE FROM e2e_fallback_keys WHERE user_id = $1 AND device_id = $2`,
		`DELETE FROM e2e_to_device WHERE user_id = $1 AND device_id = $2`,
		`DELETE FROM e2e_to_device_txns WHERE user_id = $1 AND device_id = $2`,
		`DELETE FROM e2e_signatures WHERE target_user_id = $1 AND target_key_id = $2`,
	} {
		if _, err := tx.Exec(ctx, q, userID, deviceID); err != nil {
			return false, fmt.Errorf("storage: deleting device keys: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM e2e_signatures WHERE signer_user_id = $1 AND signer_key_id = $2`,
		userID, "ed25519:"+deviceID); err != nil {
		return false, fmt.Errorf("storage: deleting device keys: %w", err)
	}
	return n > 0, nil
}

// DeleteUserE2E removes everything the key store holds for a user, except the record that their
// device list changed (e2e_device_list_changes), which other users still need: their devices,
// cross-signing keys, signatures made by them or on their keys, queued to-device messages,
// and key backups.
func (tx *Tx) DeleteUserE2E(ctx context.Context, userID string) error {
	for _, q := range []string{
		`DELETE FROM e2e_device_keys WHERE user_id = $1`,
		`DELETE FROM e2e_one_time_keys WHERE user_id = $1`,
		`DELETE FROM e2e_fallback_keys WHERE user_id = $1`,
		`DELETE FROM e2e_cross_signing_keys WHERE user_id = $1`,
		`DELETE FROM e2e_signatures WHERE target_user_id = $1 OR signer_user_id = $1`,
		`DELETE FROM e2e_to_device WHERE user_id = $1`,
		`DELETE FROM e2e_to_device_txns WHERE user_id = $1`,
		`DELETE FROM e2e_backup_keys WHERE user_id = $1`,
		`DELETE FROM e2e_backup_versions WHERE user_id = $1`,
	} {
		if _, err := tx.Exec(ctx, q, userID); err != nil {
			return fmt.Errorf("storage: deleting a user's keys: %w", err)
		}
	}
	return nil
}

func scanE2EStrings(rows *Rows) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// ListDeviceKeysOfUsers returns the identity keys of all devices of users, by user id, each
// user's sorted by device id. Users without keys are absent.
func ListDeviceKeysOfUsers(ctx context.Context, r Reader, userIDs []string) (map[string][]DeviceKeys, error) {
	out := map[string][]DeviceKeys{}
	err := eachRowAmong(ctx, r, `SELECT user_id, device_id, key_json FROM e2e_device_keys WHERE user_id IN (`,
		`) ORDER BY user_id, device_id`, userIDs, func(scan func(...any) error) error {
			var k DeviceKeys
			var js string
			if err := scan(&k.UserID, &k.DeviceID, &js); err != nil {
				return err
			}
			k.KeyJSON = []byte(js)
			out[k.UserID] = append(out[k.UserID], k)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("storage: listing device keys: %w", err)
	}
	return out, nil
}

// DeviceDisplayNames returns the display names of the devices of local users, by localpart and
// device id. Devices without a name are absent.
func DeviceDisplayNames(ctx context.Context, r Reader, localparts []string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	err := eachRowAmong(ctx, r, `SELECT localpart, device_id, display_name FROM devices WHERE display_name IS NOT NULL AND localpart IN (`,
		`)`, localparts, func(scan func(...any) error) error {
			var localpart, id, name string
			if err := scan(&localpart, &id, &name); err != nil {
				return err
			}
			if out[localpart] == nil {
				out[localpart] = map[string]string{}
			}
			out[localpart][id] = name
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("storage: listing device names: %w", err)
	}
	return out, nil
}

// eachRowAmong runs prefix+"$1, ..."+suffix once per chunk of ids, as many at a time as a
// statement takes, and hands every row to row.
func eachRowAmong(ctx context.Context, r Reader, prefix, suffix string, ids []string, row func(scan func(...any) error) error) error {
	return eachRowIn(ctx, r, func(in string) string { return prefix + in + suffix }, nil, ids, row)
}

// eachRowIn runs query(in) once per chunk of ids, as many at a time as a statement takes after
// the fixed arguments: in is the chunk's placeholder list, numbered after fixed, and the
// arguments are fixed then the chunk. Every row goes to row.
func eachRowIn[T any](ctx context.Context, r Reader, query func(in string) string, fixed []any, ids []T, row func(scan func(...any) error) error) error {
	for chunk := range chunks(ids, maxInArgs-len(fixed)) {
		args := append(append(make([]any, 0, len(fixed)+len(chunk)), fixed...), anys(chunk)...)
		rows, err := r.Query(ctx, query(placeholders(len(fixed)+1, len(chunk))), args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			if err := row(rows.Scan); err != nil {
				rows.Close()
				return err
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
