package storage

import (
	"context"
	"encoding/json"
	"fmt"
)

// InsertFilter stores a user's filter as uploaded and returns its id. An identical filter of
// the same user keeps its id, so that clients uploading the same filter at every start do not
// grow the table.
func (tx *Tx) InsertFilter(ctx context.Context, userID string, filterJSON []byte) (int64, error) {
	var id int64
	err := tx.QueryRow(ctx, `SELECT filter_id FROM filters WHERE user_id = $1 AND filter_json = $2`, userID, string(filterJSON)).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !isNotFound(err) {
		return 0, fmt.Errorf("storage: looking up filter: %w", err)
	}
	err = tx.QueryRow(ctx, `INSERT INTO filters (user_id, filter_id, filter_json)
		SELECT CAST($1 AS TEXT), COALESCE(MAX(filter_id), -1) + 1, CAST($2 AS TEXT) FROM filters WHERE user_id = $1
		RETURNING filter_id`, userID, string(filterJSON)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("storage: inserting filter: %w", err)
	}
	return id, nil
}

// GetFilter returns a user's filter as uploaded; ErrNotFound if there is none of that id.
func GetFilter(ctx context.Context, r Reader, userID string, filterID int64) (json.RawMessage, error) {
	var s string
	err := r.QueryRow(ctx, `SELECT filter_json FROM filters WHERE user_id = $1 AND filter_id = $2`, userID, filterID).Scan(&s)
	if err != nil {
		return nil, fmt.Errorf("storage: filter %d: %w", filterID, err)
	}
	return json.RawMessage(s), nil
}

// DeleteUserSyncData removes what /sync keeps for a user (filters, account data, lazy-loading
// records), when the account is erased.
func (tx *Tx) DeleteUserSyncData(ctx context.Context, userID, localpart string) error {
	tx.ignoreListsChanged = true
	for _, q := range []struct{ sql, arg string }{
		{`DELETE FROM filters WHERE user_id = $1`, userID},
		{`DELETE FROM account_data WHERE user_id = $1`, userID},
		{`DELETE FROM sync_lazy_members WHERE localpart = $1`, localpart},
	} {
		if _, err := tx.Exec(ctx, q.sql, q.arg); err != nil {
			return fmt.Errorf("storage: deleting sync data: %w", err)
		}
	}
	return nil
}

// LazyMembersSent returns, for one device and room, the membership event last sent to the
// device for each member, when lazy-loading.
func LazyMembersSent(ctx context.Context, r Reader, localpart, deviceID, roomID string) (map[string]string, error) {
	rows, err := r.Query(ctx, `SELECT member, event_id FROM sync_lazy_members
		WHERE localpart = $1 AND device_id = $2 AND room_id = $3`, localpart, deviceID, roomID)
	if err != nil {
		return nil, fmt.Errorf("storage: lazy-loaded members: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var m, ev string
		if err := rows.Scan(&m, &ev); err != nil {
			return nil, err
		}
		out[m] = ev
	}
	return out, rows.Err()
}

// RecordLazyMembersSent records that membership events (member -> event id) were sent to a
// device for a room.
func (tx *Tx) RecordLazyMembersSent(ctx context.Context, localpart, deviceID, roomID string, sent map[string]string) error {
	for m, ev := range sent {
		_, err := tx.Exec(ctx, `INSERT INTO sync_lazy_members (localpart, device_id, room_id, member, event_id)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (localpart, device_id, room_id, member) DO UPDATE SET event_id = excluded.event_id`,
			localpart, deviceID, roomID, m, ev)
		if err != nil {
			return fmt.Errorf("storage: recording lazy-loaded members: %w", err)
		}
	}
	return nil
}

// ForgetLazyMembers drops a device's lazy-loading records: it starts over with an initial sync
// and must be sent every member it needs again.
func (tx *Tx) ForgetLazyMembers(ctx context.Context, localpart, deviceID string) error {
	_, err := tx.Exec(ctx, `DELETE FROM sync_lazy_members WHERE localpart = $1 AND device_id = $2`, localpart, deviceID)
	if err != nil {
		return fmt.Errorf("storage: forgetting lazy-loaded members: %w", err)
	}
	return nil
}
