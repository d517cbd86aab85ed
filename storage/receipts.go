package storage

import (
	"context"
	"errors"
	"fmt"
)

// ReceiptsStream is the stream whose positions order receipt changes.
const ReceiptsStream = "receipts"

// Receipt is a user's latest receipt of one type in a room (and thread). ThreadID is "" for an
// unthreaded receipt.
type Receipt struct {
	RoomID    string
	UserID    string
	Type      string
	ThreadID  string
	EventID   string
	TS        int64
	StreamPos int64
}

// UpsertReceipt stores r, replacing the user's previous receipt of the same type and thread in
// the room, at a new position on ReceiptsStream, which it returns. A receipt identical to the
// stored one (same event) changes nothing and returns 0.
func (tx *Tx) UpsertReceipt(ctx context.Context, r Receipt) (int64, error) {
	var current string
	err := tx.QueryRow(ctx, `SELECT event_id FROM receipts
		WHERE room_id = $1 AND user_id = $2 AND receipt_type = $3 AND thread_id = $4`,
		r.RoomID, r.UserID, r.Type, r.ThreadID).Scan(&current)
	switch {
	case err == nil && current == r.EventID:
		return 0, nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return 0, fmt.Errorf("storage: reading a receipt: %w", err)
	}
	pos, err := tx.NextStreamPosition(ctx, ReceiptsStream)
	if err != nil {
		return 0, err
	}
	_, err = tx.Exec(ctx, `INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id, ts, stream_pos)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (room_id, user_id, receipt_type, thread_id)
		DO UPDATE SET event_id = excluded.event_id, ts = excluded.ts, stream_pos = excluded.stream_pos`,
		r.RoomID, r.UserID, r.Type, r.ThreadID, r.EventID, r.TS, pos)
	if err != nil {
		return 0, fmt.Errorf("storage: storing a receipt: %w", err)
	}
	return pos, nil
}

// ReceiptsBetween returns the receipts in rooms changed at a position in (from, to], in stream
// order.
func ReceiptsBetween(ctx context.Context, r Reader, rooms []string, from, to int64) ([]Receipt, error) {
	var out []Receipt
	// IN lists are bounded so that a user in thousands of rooms does not exceed the
	// databases' parameter limits.
	const chunk = 500
	for len(rooms) > 0 {
		n := min(chunk, len(rooms))
		args := []any{from, to}
		for _, room := range rooms[:n] {
			args = append(args, room)
		}
		rows, err := r.Query(ctx, `SELECT room_id, user_id, receipt_type, thread_id, event_id, ts, stream_pos FROM receipts
			WHERE stream_pos > $1 AND stream_pos <= $2 AND room_id IN (`+placeholders(3, n)+`) ORDER BY stream_pos`, args...)
		if err != nil {
			return nil, fmt.Errorf("storage: reading receipts: %w", err)
		}
		for rows.Next() {
			var rc Receipt
			if err := rows.Scan(&rc.RoomID, &rc.UserID, &rc.Type, &rc.ThreadID, &rc.EventID, &rc.TS, &rc.StreamPos); err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, rc)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
		rooms = rooms[n:]
	}
	return out, nil
}

// UserReceipt returns a user's receipt of one type and thread in a room; ErrNotFound if none.
func UserReceipt(ctx context.Context, r Reader, roomID, userID, receiptType, threadID string) (Receipt, error) {
	rc := Receipt{RoomID: roomID, UserID: userID, Type: receiptType, ThreadID: threadID}
	err := r.QueryRow(ctx, `SELECT event_id, ts, stream_pos FROM receipts
		WHERE room_id = $1 AND user_id = $2 AND receipt_type = $3 AND thread_id = $4`,
		roomID, userID, receiptType, threadID).Scan(&rc.EventID, &rc.TS, &rc.StreamPos)
	if err != nil {
		return Receipt{}, fmt.Errorf("storage: reading a receipt: %w", err)
	}
	return rc, nil
}

// DeleteUserReceipts removes every receipt of a user, for account deactivation.
func (tx *Tx) DeleteUserReceipts(ctx context.Context, userID string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM receipts WHERE user_id = $1`, userID); err != nil {
		return fmt.Errorf("storage: deleting receipts: %w", err)
	}
	return nil
}
