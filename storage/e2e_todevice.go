package storage

import (
	"context"
	"errors"
	"fmt"
)

// ToDeviceStream is the stream whose positions order send-to-device messages.
const ToDeviceStream = "to_device"

// ToDeviceMessage is a send-to-device message waiting for a local device.
type ToDeviceMessage struct {
	UserID, DeviceID string // the recipient
	Pos              int64  // on ToDeviceStream
	Sender           string
	Type             string
	Content          []byte // as sent
	Created          int64  // unix milliseconds, for expiry
}

// InsertToDeviceMessage queues a message for a device.
func (tx *Tx) InsertToDeviceMessage(ctx context.Context, m ToDeviceMessage) error {
	_, err := tx.Exec(ctx, `INSERT INTO e2e_to_device (user_id, device_id, stream_pos, sender, event_type, content, created_ts)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, m.UserID, m.DeviceID, m.Pos, m.Sender, m.Type, string(m.Content), m.Created)
	if err != nil {
		return fmt.Errorf("storage: queueing to-device message: %w", err)
	}
	return nil
}

// ToDeviceMessagesAfter returns up to limit messages queued for a device after position since
// and at or after createdFrom (unix milliseconds; older ones have expired), oldest first.
func ToDeviceMessagesAfter(ctx context.Context, r Reader, userID, deviceID string, since, createdFrom int64, limit int) ([]ToDeviceMessage, error) {
	rows, err := r.Query(ctx, `SELECT stream_pos, sender, event_type, content, created_ts FROM e2e_to_device
		WHERE user_id = $1 AND device_id = $2 AND stream_pos > $3 AND created_ts >= $4 ORDER BY stream_pos LIMIT $5`,
		userID, deviceID, since, createdFrom, limit)
	if err != nil {
		return nil, fmt.Errorf("storage: reading to-device messages: %w", err)
	}
	defer rows.Close()
	var out []ToDeviceMessage
	for rows.Next() {
		m := ToDeviceMessage{UserID: userID, DeviceID: deviceID}
		var content string
		if err := rows.Scan(&m.Pos, &m.Sender, &m.Type, &content, &m.Created); err != nil {
			return nil, err
		}
		m.Content = []byte(content)
		out = append(out, m)
	}
	return out, rows.Err()
}

// HasToDeviceMessagesUpTo reports whether a device has messages queued at positions up to upTo.
func HasToDeviceMessagesUpTo(ctx context.Context, r Reader, userID, deviceID string, upTo int64) (bool, error) {
	var one int
	err := r.QueryRow(ctx, `SELECT 1 FROM e2e_to_device WHERE user_id = $1 AND device_id = $2 AND stream_pos <= $3 LIMIT 1`,
		userID, deviceID, upTo).Scan(&one)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("storage: reading to-device messages: %w", err)
	}
	return true, nil
}

// DeleteToDeviceMessagesUpTo removes the messages of a device at positions up to upTo: they
// have been delivered.
func (tx *Tx) DeleteToDeviceMessagesUpTo(ctx context.Context, userID, deviceID string, upTo int64) error {
	_, err := tx.Exec(ctx, `DELETE FROM e2e_to_device WHERE user_id = $1 AND device_id = $2 AND stream_pos <= $3`,
		userID, deviceID, upTo)
	if err != nil {
		return fmt.Errorf("storage: deleting delivered to-device messages: %w", err)
	}
	return nil
}

// DeleteExpiredToDeviceMessages removes the messages of every device queued before
// createdBefore (unix milliseconds) and reports how many went.
func (tx *Tx) DeleteExpiredToDeviceMessages(ctx context.Context, createdBefore int64) (int64, error) {
	res, err := tx.Exec(ctx, `DELETE FROM e2e_to_device WHERE created_ts < $1`, createdBefore)
	if err != nil {
		return 0, fmt.Errorf("storage: deleting expired to-device messages: %w", err)
	}
	return res.RowsAffected()
}

// InsertToDeviceTxn records that a device performed the /sendToDevice transaction txnID, first
// purging records created before purgeBefore. It reports false when the transaction was
// already recorded: the request is a retry.
func (tx *Tx) InsertToDeviceTxn(ctx context.Context, userID, deviceID, txnID string, now, purgeBefore int64) (bool, error) {
	if _, err := tx.Exec(ctx, `DELETE FROM e2e_to_device_txns WHERE created_ts < $1`, purgeBefore); err != nil {
		return false, fmt.Errorf("storage: purging to-device transactions: %w", err)
	}
	res, err := tx.Exec(ctx, `INSERT INTO e2e_to_device_txns (user_id, device_id, txn_id, created_ts) VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING`, userID, deviceID, txnID, now)
	if err != nil {
		return false, fmt.Errorf("storage: recording to-device transaction: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
