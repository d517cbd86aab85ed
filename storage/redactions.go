package storage

import (
	"context"
	"fmt"
)

// InsertRedaction records that the m.room.redaction redactionID redacts redactsID, not yet
// validated. Recording it again changes nothing.
func (tx *Tx) InsertRedaction(ctx context.Context, redactionID, redactsID string) error {
	_, err := tx.Exec(ctx, `INSERT INTO redactions (redaction_event_id, redacts_event_id) VALUES ($1, $2)
		ON CONFLICT (redaction_event_id) DO NOTHING`, redactionID, redactsID)
	if err != nil {
		return fmt.Errorf("storage: recording redaction %s: %w", redactionID, err)
	}
	return nil
}

// PendingRedactions returns the redactions of an event that have not taken effect: those that
// arrived before it, or whose check failed so far.
func PendingRedactions(ctx context.Context, r Reader, redactsID string) ([]string, error) {
	rows, err := r.Query(ctx, `SELECT redaction_event_id FROM redactions WHERE redacts_event_id = $1 AND NOT validated
		ORDER BY redaction_event_id`, redactsID)
	if err != nil {
		return nil, fmt.Errorf("storage: pending redactions: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// ApplyRedaction makes a redaction take effect: the body of the redacted event (short id
// target) is replaced by pruned, its redacted form, and the redaction is marked validated at
// ts (ms). The old body is overwritten, not kept anywhere.
func (tx *Tx) ApplyRedaction(ctx context.Context, redactionID string, target EventNID, pruned []byte, ts int64) error {
	body, err := encodeEventJSON(pruned)
	if err != nil {
		return fmt.Errorf("storage: encoding redacted event %d: %w", target, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE events SET event_json = $1 WHERE event_nid = $2`, body, target); err != nil {
		return fmt.Errorf("storage: pruning redacted event %d: %w", target, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE redactions SET validated = TRUE, redacted_ts = $1 WHERE redaction_event_id = $2`,
		ts, redactionID); err != nil {
		return fmt.Errorf("storage: validating redaction %s: %w", redactionID, err)
	}
	return nil
}

// RedactionsOf returns, for those of ids that were redacted, the redaction that took effect
// first (redacted event id -> redaction event id).
func RedactionsOf(ctx context.Context, r Reader, ids []string) (map[string]string, error) {
	out := map[string]string{}
	for chunk := range chunks(ids, maxInArgs) {
		rows, err := r.Query(ctx, `SELECT redacts_event_id, redaction_event_id FROM redactions
			WHERE validated AND redacts_event_id IN (`+placeholders(1, len(chunk))+`)
			ORDER BY redacted_ts DESC, redaction_event_id DESC`, anys(chunk)...)
		if err != nil {
			return nil, fmt.Errorf("storage: redactions: %w", err)
		}
		for rows.Next() {
			var target, redaction string
			if err := rows.Scan(&target, &redaction); err != nil {
				rows.Close()
				return nil, err
			}
			out[target] = redaction // rows come latest first: the earliest is written last
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// UnappliedRedactions returns which of ids are redactions that have not taken effect (their
// target is unknown or they were not allowed): such a redaction is not shown to clients.
func UnappliedRedactions(ctx context.Context, r Reader, ids []string) (map[string]bool, error) {
	out, err := idsAmong(ctx, r, `SELECT redaction_event_id FROM redactions
			WHERE NOT validated AND redaction_event_id IN (`, ids)
	if err != nil {
		return nil, fmt.Errorf("storage: unapplied redactions: %w", err)
	}
	return out, nil
}
