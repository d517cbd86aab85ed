package storage

import (
	"context"
	"errors"
	"fmt"
)

// ClientTxn is a client request that sent an event, by its transaction id.
type ClientTxn struct {
	Localpart string
	DeviceID  string
	// Endpoint names the kind of request and its room ("send:!room:server"), since a
	// transaction id is unique per device and endpoint only.
	Endpoint  string
	TxnID     string
	EventID   string
	CreatedTS int64
}

// InsertClientTxn records the event a request sent; ErrConflict if the transaction id is taken.
func (tx *Tx) InsertClientTxn(ctx context.Context, t ClientTxn) error {
	_, err := tx.Exec(ctx, `INSERT INTO client_txns (localpart, device_id, endpoint, txn_id, event_id, created_ts)
		VALUES ($1, $2, $3, $4, $5, $6)`, t.Localpart, t.DeviceID, t.Endpoint, t.TxnID, t.EventID, t.CreatedTS)
	if err != nil {
		return fmt.Errorf("storage: recording transaction id: %w", err)
	}
	return nil
}

// ClientTxnEvent returns the event a request with this transaction id sent; ErrNotFound if none.
func ClientTxnEvent(ctx context.Context, r Reader, localpart, deviceID, endpoint, txnID string) (string, error) {
	var id string
	err := r.QueryRow(ctx, `SELECT event_id FROM client_txns
		WHERE localpart = $1 AND device_id = $2 AND endpoint = $3 AND txn_id = $4`,
		localpart, deviceID, endpoint, txnID).Scan(&id)
	if err != nil {
		return "", fmt.Errorf("storage: transaction id: %w", err)
	}
	return id, nil
}

// TransactionIDs returns, for the events among eventIDs that one device sent with a transaction
// id, that id: clients see it as unsigned.transaction_id on their own echoes.
func TransactionIDs(ctx context.Context, r Reader, localpart, deviceID string, eventIDs []string) (map[string]string, error) {
	out := map[string]string{}
	for chunk := range chunks(eventIDs, maxInArgs) {
		args := append([]any{localpart, deviceID}, anys(chunk)...)
		rows, err := r.Query(ctx, `SELECT event_id, txn_id FROM client_txns
			WHERE localpart = $1 AND device_id = $2 AND event_id IN (`+placeholders(3, len(chunk))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("storage: transaction ids: %w", err)
		}
		for rows.Next() {
			var ev, txn string
			if err := rows.Scan(&ev, &txn); err != nil {
				rows.Close()
				return nil, err
			}
			out[ev] = txn
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// PruneClientTxns forgets the transaction ids recorded before beforeTS (milliseconds) and
// returns how many went. A transaction id is kept for retries and for the sender's own echo
// (unsigned.transaction_id), both a matter of minutes; kept longer it would only record which
// device sent which event.
func (tx *Tx) PruneClientTxns(ctx context.Context, beforeTS int64) (int64, error) {
	res, err := tx.Exec(ctx, `DELETE FROM client_txns WHERE created_ts < $1`, beforeTS)
	if err != nil {
		return 0, fmt.Errorf("storage: pruning transaction ids: %w", err)
	}
	return res.RowsAffected()
}
