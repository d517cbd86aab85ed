package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
)

// Reads for exporting what the server holds about one local user (`myelin export-user`, package
// export). They complement the per-feature reads elsewhere in this package with the "everything
// of this user" queries that only an export needs. None of them returns a token hash or a
// password hash: where a table holds one, only what the user may learn about it is selected.

// UserFilter is a filter a user uploaded, as uploaded.
type UserFilter struct {
	ID     int64
	Filter json.RawMessage
}

// UserFilters returns every filter of a user, by id.
func UserFilters(ctx context.Context, r Reader, userID string) ([]UserFilter, error) {
	rows, err := r.Query(ctx, `SELECT filter_id, filter_json FROM filters WHERE user_id = $1 ORDER BY filter_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("storage: listing filters: %w", err)
	}
	defer rows.Close()
	var out []UserFilter
	for rows.Next() {
		var f UserFilter
		var js string
		if err := rows.Scan(&f.ID, &js); err != nil {
			return nil, err
		}
		f.Filter = json.RawMessage(js)
		out = append(out, f)
	}
	return out, rows.Err()
}

// AllAccountData returns every entry of a user's account data, global and per room, in stream
// order.
func AllAccountData(ctx context.Context, r Reader, userID string) ([]AccountData, error) {
	return AccountDataBetween(ctx, r, userID, math.MinInt64, math.MaxInt64)
}

// FirstStreamPosition is below every stream position, backfilled history's negative ones
// included: the cursor to start reading a whole timeline from.
const FirstStreamPosition = math.MinInt64

// UserRoomEvents returns, in stream order, up to limit timeline events of a room with
// stream_pos > after that the user sent, or that are the user's m.room.member events (whoever
// sent them).
func UserRoomEvents(ctx context.Context, r Reader, room RoomNID, userID string, after int64, limit int) ([]EventRecord, error) {
	return queryEvents(ctx, r, `SELECT `+eventColumns+` FROM events
		WHERE room_nid = $1 AND stream_pos > $2 AND NOT rejected
			AND (sender = $3 OR (event_type = 'm.room.member' AND state_key = $3))
		ORDER BY stream_pos LIMIT $4`, room, after, userID, limit)
}

// ReceiptsOfUser returns every receipt a user sent (public and private), by room.
func ReceiptsOfUser(ctx context.Context, r Reader, userID string) ([]Receipt, error) {
	rows, err := r.Query(ctx, `SELECT room_id, receipt_type, thread_id, event_id, ts, stream_pos
		FROM receipts WHERE user_id = $1 ORDER BY room_id, receipt_type, thread_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("storage: listing receipts: %w", err)
	}
	defer rows.Close()
	var out []Receipt
	for rows.Next() {
		rc := Receipt{UserID: userID}
		if err := rows.Scan(&rc.RoomID, &rc.Type, &rc.ThreadID, &rc.EventID, &rc.TS, &rc.StreamPos); err != nil {
			return nil, err
		}
		out = append(out, rc)
	}
	return out, rows.Err()
}

// ContentReportsBy returns the content reports a user sent, oldest first.
func ContentReportsBy(ctx context.Context, r Reader, reporter string) ([]ContentReport, error) {
	rows, err := r.Query(ctx, `SELECT report_id, kind, reporter, room_id, event_id, target_user_id, reason, score, received_ts
		FROM content_reports WHERE reporter = $1 ORDER BY received_ts, report_id`, reporter)
	if err != nil {
		return nil, fmt.Errorf("storage: listing the reports of a user: %w", err)
	}
	defer rows.Close()
	var out []ContentReport
	for rows.Next() {
		var c ContentReport
		var score sql.NullInt64
		if err := rows.Scan(&c.ID, &c.Kind, &c.Reporter, &c.RoomID, &c.EventID, &c.TargetUserID, &c.Reason, &score, &c.ReceivedTS); err != nil {
			return nil, err
		}
		if score.Valid {
			c.Score = &score.Int64
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// OpenIDTokenExpiries returns when each OpenID token of a user expires, soonest first. The
// tokens' hashes are not returned.
func OpenIDTokenExpiries(ctx context.Context, r Reader, userID string) ([]int64, error) {
	rows, err := r.Query(ctx, `SELECT expires_ts FROM openid_tokens WHERE user_id = $1 ORDER BY expires_ts`, userID)
	if err != nil {
		return nil, fmt.Errorf("storage: listing OpenID tokens: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var ts int64
		if err := rows.Scan(&ts); err != nil {
			return nil, err
		}
		out = append(out, ts)
	}
	return out, rows.Err()
}

// KeySignaturesBy returns the signatures a user made with /keys/signatures/upload, on their own
// keys and on other users' keys. Signatures others made on this user's keys are not theirs.
func KeySignaturesBy(ctx context.Context, r Reader, signerUserID string) ([]KeySignature, error) {
	rows, err := r.Query(ctx, `SELECT target_user_id, target_key_id, signer_user_id, signer_key_id, signature
		FROM e2e_signatures WHERE signer_user_id = $1 ORDER BY target_user_id, target_key_id, signer_key_id`, signerUserID)
	if err != nil {
		return nil, fmt.Errorf("storage: listing signatures: %w", err)
	}
	defer rows.Close()
	var out []KeySignature
	for rows.Next() {
		var s KeySignature
		if err := rows.Scan(&s.TargetUserID, &s.TargetKeyID, &s.SignerUserID, &s.SignerKeyID, &s.Signature); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// KeyBackupVersion is one of a user's key backups, deleted ones included (without their
// auth_data, which deletion erased).
type KeyBackupVersion struct {
	Version   int64
	Algorithm string
	AuthData  json.RawMessage // nil for a deleted backup
	Etag      int64
	Deleted   bool
}

// KeyBackupVersions returns every key backup of a user, oldest version first.
func KeyBackupVersions(ctx context.Context, r Reader, userID string) ([]KeyBackupVersion, error) {
	rows, err := r.Query(ctx, `SELECT version, algorithm, auth_data, etag, deleted
		FROM e2e_backup_versions WHERE user_id = $1 ORDER BY version`, userID)
	if err != nil {
		return nil, fmt.Errorf("storage: listing key backups: %w", err)
	}
	defer rows.Close()
	var out []KeyBackupVersion
	for rows.Next() {
		var v KeyBackupVersion
		var auth string
		if err := rows.Scan(&v.Version, &v.Algorithm, &auth, &v.Etag, &v.Deleted); err != nil {
			return nil, err
		}
		if !v.Deleted && auth != "" {
			v.AuthData = json.RawMessage(auth)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// PendingToDeviceCounts returns, per device of a user, how many send-to-device messages wait
// for it. Only the counts: the messages belong to their senders until delivered.
func PendingToDeviceCounts(ctx context.Context, r Reader, userID string) (map[string]int, error) {
	rows, err := r.Query(ctx, `SELECT device_id, COUNT(*) FROM e2e_to_device WHERE user_id = $1 GROUP BY device_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("storage: counting to-device messages: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var dev string
		var n int
		if err := rows.Scan(&dev, &n); err != nil {
			return nil, err
		}
		out[dev] = n
	}
	return out, rows.Err()
}

// RoomAliasesBy returns the room aliases a user created, by alias.
func RoomAliasesBy(ctx context.Context, r Reader, creator string) ([]RoomAlias, error) {
	rows, err := r.Query(ctx, `SELECT alias, room_id, creator, created_ts FROM room_aliases
		WHERE creator = $1 ORDER BY alias`, creator)
	if err != nil {
		return nil, fmt.Errorf("storage: listing aliases: %w", err)
	}
	defer rows.Close()
	var out []RoomAlias
	for rows.Next() {
		var a RoomAlias
		if err := rows.Scan(&a.Alias, &a.RoomID, &a.Creator, &a.CreatedTS); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
