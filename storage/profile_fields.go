package storage

import (
	"context"
	"encoding/json"
	"fmt"
)

// ProfileFields returns a local user's profile fields other than displayname and avatar_url
// (m.tz and custom keys), each value as JSON.
func ProfileFields(ctx context.Context, r Reader, localpart string) (map[string]json.RawMessage, error) {
	rows, err := r.Query(ctx, `SELECT field, value FROM profile_fields WHERE localpart = $1`, localpart)
	if err != nil {
		return nil, fmt.Errorf("storage: reading profile fields: %w", err)
	}
	defer rows.Close()
	out := map[string]json.RawMessage{}
	for rows.Next() {
		var field, value string
		if err := rows.Scan(&field, &value); err != nil {
			return nil, fmt.Errorf("storage: reading a profile field: %w", err)
		}
		out[field] = json.RawMessage(value)
	}
	return out, rows.Err()
}

// SetProfileField stores one custom profile field of a local user (value is JSON).
func (tx *Tx) SetProfileField(ctx context.Context, localpart, field string, value []byte) error {
	_, err := tx.Exec(ctx, `INSERT INTO profile_fields (localpart, field, value) VALUES ($1, $2, $3)
		ON CONFLICT (localpart, field) DO UPDATE SET value = excluded.value`, localpart, field, string(value))
	if err != nil {
		return fmt.Errorf("storage: setting a profile field: %w", err)
	}
	return nil
}

// DeleteProfileField removes one custom profile field; removing an unset one is not an error.
func (tx *Tx) DeleteProfileField(ctx context.Context, localpart, field string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM profile_fields WHERE localpart = $1 AND field = $2`, localpart, field); err != nil {
		return fmt.Errorf("storage: deleting a profile field: %w", err)
	}
	return nil
}

// DeleteProfileFields removes every custom profile field of a local user, for erasure.
func (tx *Tx) DeleteProfileFields(ctx context.Context, localpart string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM profile_fields WHERE localpart = $1`, localpart); err != nil {
		return fmt.Errorf("storage: deleting profile fields: %w", err)
	}
	return nil
}
