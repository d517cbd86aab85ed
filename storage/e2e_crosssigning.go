package storage

import (
	"context"
	"fmt"
)

// UpsertCrossSigningKey stores a user's cross-signing key of one type ("master",
// "self_signing", "user_signing"), replacing the previous one.
func (tx *Tx) UpsertCrossSigningKey(ctx context.Context, userID, keyType string, keyJSON []byte) error {
	_, err := tx.Exec(ctx, `INSERT INTO e2e_cross_signing_keys (user_id, key_type, key_json) VALUES ($1, $2, $3)
		ON CONFLICT (user_id, key_type) DO UPDATE SET key_json = excluded.key_json`, userID, keyType, string(keyJSON))
	if err != nil {
		return fmt.Errorf("storage: storing cross-signing key: %w", err)
	}
	return nil
}

// CrossSigningKeys returns a user's cross-signing keys by type; types without a key are absent.
func CrossSigningKeys(ctx context.Context, r Reader, userID string) (map[string][]byte, error) {
	rows, err := r.Query(ctx, `SELECT key_type, key_json FROM e2e_cross_signing_keys WHERE user_id = $1`, userID)
	if err != nil {
		return nil, fmt.Errorf("storage: reading cross-signing keys: %w", err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var typ, js string
		if err := rows.Scan(&typ, &js); err != nil {
			return nil, err
		}
		out[typ] = []byte(js)
	}
	return out, rows.Err()
}

// KeySignature is one signature uploaded through /keys/signatures/upload.
type KeySignature struct {
	TargetUserID string
	TargetKeyID  string // a device id, or the public key of a cross-signing key
	SignerUserID string
	SignerKeyID  string // "ed25519:<device id or public key>"
	Signature    string
}

// UpsertKeySignature stores a signature, replacing an earlier one by the same signer key.
func (tx *Tx) UpsertKeySignature(ctx context.Context, s KeySignature) error {
	_, err := tx.Exec(ctx, `INSERT INTO e2e_signatures (target_user_id, target_key_id, signer_user_id, signer_key_id, signature)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (target_user_id, target_key_id, signer_user_id, signer_key_id) DO UPDATE SET signature = excluded.signature`,
		s.TargetUserID, s.TargetKeyID, s.SignerUserID, s.SignerKeyID, s.Signature)
	if err != nil {
		return fmt.Errorf("storage: storing signature: %w", err)
	}
	return nil
}

// KeySignaturesOn returns every stored signature on the keys of a user.
func KeySignaturesOn(ctx context.Context, r Reader, targetUserID string) ([]KeySignature, error) {
	rows, err := r.Query(ctx, `SELECT target_key_id, signer_user_id, signer_key_id, signature FROM e2e_signatures
		WHERE target_user_id = $1 ORDER BY target_key_id, signer_user_id, signer_key_id`, targetUserID)
	if err != nil {
		return nil, fmt.Errorf("storage: reading signatures: %w", err)
	}
	defer rows.Close()
	var out []KeySignature
	for rows.Next() {
		s := KeySignature{TargetUserID: targetUserID}
		if err := rows.Scan(&s.TargetKeyID, &s.SignerUserID, &s.SignerKeyID, &s.Signature); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// DeleteKeySignaturesOn removes the signatures on one key of a user (when it is replaced).
func (tx *Tx) DeleteKeySignaturesOn(ctx context.Context, targetUserID, targetKeyID string) error {
	_, err := tx.Exec(ctx, `DELETE FROM e2e_signatures WHERE target_user_id = $1 AND target_key_id = $2`, targetUserID, targetKeyID)
	return err
}

// DeleteKeySignaturesBy removes the signatures made with one key of a user (when it is replaced).
func (tx *Tx) DeleteKeySignaturesBy(ctx context.Context, signerUserID, signerKeyID string) error {
	_, err := tx.Exec(ctx, `DELETE FROM e2e_signatures WHERE signer_user_id = $1 AND signer_key_id = $2`, signerUserID, signerKeyID)
	return err
}

// DeviceListStream is the stream whose positions order device list changes.
const DeviceListStream = "device_lists"

// MarkDeviceListsChanged records that the devices or cross-signing keys of users changed, at one
// new position on the device_lists stream, which it returns.
func (tx *Tx) MarkDeviceListsChanged(ctx context.Context, userIDs ...string) (int64, error) {
	pos, err := tx.NextStreamPosition(ctx, DeviceListStream)
	if err != nil {
		return 0, err
	}
	for _, u := range userIDs {
		_, err := tx.Exec(ctx, `INSERT INTO e2e_device_list_changes (user_id, stream_pos) VALUES ($1, $2)
			ON CONFLICT (user_id) DO UPDATE SET stream_pos = excluded.stream_pos`, u, pos)
		if err != nil {
			return 0, fmt.Errorf("storage: recording a device list change: %w", err)
		}
	}
	return pos, nil
}

// DeviceListsChangedBetween returns the users whose device lists last changed at a position in
// (from, to]. A user who changed again after to is not returned: the caller will see that change
// in its next range.
func DeviceListsChangedBetween(ctx context.Context, r Reader, from, to int64) ([]string, error) {
	rows, err := r.Query(ctx, `SELECT user_id FROM e2e_device_list_changes WHERE stream_pos > $1 AND stream_pos <= $2
		ORDER BY user_id`, from, to)
	if err != nil {
		return nil, fmt.Errorf("storage: reading device list changes: %w", err)
	}
	return scanE2EStrings(rows)
}

// CrossSigningKeysOfUsers returns the cross-signing keys of users, by user id and type. Users
// without any are absent.
func CrossSigningKeysOfUsers(ctx context.Context, r Reader, userIDs []string) (map[string]map[string][]byte, error) {
	out := map[string]map[string][]byte{}
	err := eachRowAmong(ctx, r, `SELECT user_id, key_type, key_json FROM e2e_cross_signing_keys WHERE user_id IN (`,
		`)`, userIDs, func(scan func(...any) error) error {
			var user, typ, js string
			if err := scan(&user, &typ, &js); err != nil {
				return err
			}
			if out[user] == nil {
				out[user] = map[string][]byte{}
			}
			out[user][typ] = []byte(js)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("storage: reading cross-signing keys: %w", err)
	}
	return out, nil
}

// KeySignaturesOnUsers returns every stored signature on the keys of users, by target user id,
// each user's in the order of KeySignaturesOn.
func KeySignaturesOnUsers(ctx context.Context, r Reader, targetUserIDs []string) (map[string][]KeySignature, error) {
	out := map[string][]KeySignature{}
	err := eachRowAmong(ctx, r, `SELECT target_user_id, target_key_id, signer_user_id, signer_key_id, signature FROM e2e_signatures
		WHERE target_user_id IN (`, `) ORDER BY target_user_id, target_key_id, signer_user_id, signer_key_id`,
		targetUserIDs, func(scan func(...any) error) error {
			var s KeySignature
			if err := scan(&s.TargetUserID, &s.TargetKeyID, &s.SignerUserID, &s.SignerKeyID, &s.Signature); err != nil {
				return err
			}
			out[s.TargetUserID] = append(out[s.TargetUserID], s)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("storage: reading signatures: %w", err)
	}
	return out, nil
}
