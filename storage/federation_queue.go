package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// queueStream orders the entries of every destination's outbound queue; txnStream numbers the
// transactions this server sends.
const (
	queueStream = "federation_queue"
	txnStream   = "federation_txn"
)

// QueuedPDU is an event waiting in a destination's queue.
type QueuedPDU struct {
	Pos   int64
	Event EventNID
}

// QueuedEDU is an EDU waiting in a destination's queue, as the JSON object of the transaction.
type QueuedEDU struct {
	Pos  int64
	JSON []byte
}

// Destination is the sending state of one destination server.
type Destination struct {
	Name string
	// TxnID is the transaction being attempted, "" when none; it covers the queued PDUs up to
	// TxnPDUPos and EDUs up to TxnEDUPos.
	TxnID     string
	TxnPDUPos int64
	TxnEDUPos int64
	// Failures counts the attempts that failed since the last success; RetryAtTS is when the
	// next attempt may be made (milliseconds).
	Failures  int64
	RetryAtTS int64
}

// QueuePDU appends an event to the queues of destinations.
func (tx *Tx) QueuePDU(ctx context.Context, destinations []string, event EventNID) error {
	if len(destinations) == 0 {
		return nil
	}
	pos, err := tx.NextStreamPosition(ctx, queueStream)
	if err != nil {
		return err
	}
	for _, d := range destinations {
		if _, err := tx.Exec(ctx, `INSERT INTO federation_queue_pdus (destination, queue_pos, event_nid) VALUES ($1, $2, $3)`,
			d, pos, event); err != nil {
			return fmt.Errorf("storage: queueing event for %s: %w", d, err)
		}
	}
	return nil
}

// QueueEDU appends an EDU (the JSON object with edu_type and content) to the queues of
// destinations.
func (tx *Tx) QueueEDU(ctx context.Context, destinations []string, edu []byte) error {
	if len(destinations) == 0 {
		return nil
	}
	pos, err := tx.NextStreamPosition(ctx, queueStream)
	if err != nil {
		return err
	}
	for _, d := range destinations {
		if _, err := tx.Exec(ctx, `INSERT INTO federation_queue_edus (destination, queue_pos, edu_json) VALUES ($1, $2, $3)`,
			d, pos, string(edu)); err != nil {
			return fmt.Errorf("storage: queueing EDU for %s: %w", d, err)
		}
	}
	return nil
}

// QueuedPDUs returns the first queued events of a destination with a position up to maxPos
// (math.MaxInt64 for any), at most limit, in queue order.
func QueuedPDUs(ctx context.Context, r Reader, destination string, maxPos int64, limit int) ([]QueuedPDU, error) {
	rows, err := r.Query(ctx, `SELECT queue_pos, event_nid FROM federation_queue_pdus
		WHERE destination = $1 AND queue_pos <= $2 ORDER BY queue_pos LIMIT $3`, destination, maxPos, limit)
	if err != nil {
		return nil, fmt.Errorf("storage: reading the queue of %s: %w", destination, err)
	}
	defer rows.Close()
	var out []QueuedPDU
	for rows.Next() {
		var q QueuedPDU
		if err := rows.Scan(&q.Pos, &q.Event); err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, rows.Err()
}

// QueuedEDUs is QueuedPDUs for EDUs.
func QueuedEDUs(ctx context.Context, r Reader, destination string, maxPos int64, limit int) ([]QueuedEDU, error) {
	rows, err := r.Query(ctx, `SELECT queue_pos, edu_json FROM federation_queue_edus
		WHERE destination = $1 AND queue_pos <= $2 ORDER BY queue_pos LIMIT $3`, destination, maxPos, limit)
	if err != nil {
		return nil, fmt.Errorf("storage: reading the EDU queue of %s: %w", destination, err)
	}
	defer rows.Close()
	var out []QueuedEDU
	for rows.Next() {
		var (
			q   QueuedEDU
			doc string
		)
		if err := rows.Scan(&q.Pos, &doc); err != nil {
			return nil, err
		}
		q.JSON = []byte(doc)
		out = append(out, q)
	}
	return out, rows.Err()
}

// DequeueUpTo removes the PDUs of a destination's queue up to pduPos and its EDUs up to
// edu_pos: those a transaction delivered.
func (tx *Tx) DequeueUpTo(ctx context.Context, destination string, pduPos, eduPos int64) error {
	if _, err := tx.Exec(ctx, `DELETE FROM federation_queue_pdus WHERE destination = $1 AND queue_pos <= $2`, destination, pduPos); err != nil {
		return fmt.Errorf("storage: dequeueing for %s: %w", destination, err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM federation_queue_edus WHERE destination = $1 AND queue_pos <= $2`, destination, eduPos); err != nil {
		return fmt.Errorf("storage: dequeueing EDUs for %s: %w", destination, err)
	}
	return nil
}

// QueuedDestinations returns every destination with something queued.
func QueuedDestinations(ctx context.Context, r Reader) ([]string, error) {
	return queryStrings(ctx, r, `SELECT destination FROM federation_queue_pdus
		UNION SELECT destination FROM federation_queue_edus ORDER BY 1`)
}

// GetDestination returns the sending state of a destination; the zero state (with Name) when
// none is stored.
func GetDestination(ctx context.Context, r Reader, destination string) (Destination, error) {
	d := Destination{Name: destination}
	err := r.QueryRow(ctx, `SELECT txn_id, txn_pdu_pos, txn_edu_pos, failures, retry_at_ts
		FROM federation_destinations WHERE destination = $1`, destination).
		Scan(&d.TxnID, &d.TxnPDUPos, &d.TxnEDUPos, &d.Failures, &d.RetryAtTS)
	if errors.Is(err, ErrNotFound) {
		return Destination{Name: destination}, nil
	}
	if err != nil {
		return Destination{}, fmt.Errorf("storage: sending state of %s: %w", destination, err)
	}
	return d, nil
}

// SetDestination stores the sending state of a destination.
func (tx *Tx) SetDestination(ctx context.Context, d Destination) error {
	_, err := tx.Exec(ctx, `INSERT INTO federation_destinations (destination, txn_id, txn_pdu_pos, txn_edu_pos, failures, retry_at_ts)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (destination) DO UPDATE SET txn_id = excluded.txn_id, txn_pdu_pos = excluded.txn_pdu_pos,
			txn_edu_pos = excluded.txn_edu_pos, failures = excluded.failures, retry_at_ts = excluded.retry_at_ts`,
		d.Name, d.TxnID, d.TxnPDUPos, d.TxnEDUPos, d.Failures, d.RetryAtTS)
	if err != nil {
		return fmt.Errorf("storage: storing the sending state of %s: %w", d.Name, err)
	}
	return nil
}

// NextTxnID allocates a transaction id, unique among those this server ever sends.
func (tx *Tx) NextTxnID(ctx context.Context) (string, error) {
	pos, err := tx.NextStreamPosition(ctx, txnStream)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("m%d", pos), nil
}

// SenderPosition returns the position on the events stream up to which events have been
// queued; ok is false before the sender first ran.
func SenderPosition(ctx context.Context, r Reader) (pos int64, ok bool, err error) {
	err = r.QueryRow(ctx, `SELECT stream_pos FROM federation_sender_position WHERE id = 1`).Scan(&pos)
	if errors.Is(err, ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("storage: federation sender position: %w", err)
	}
	return pos, true, nil
}

// SetSenderPosition records the position on the events stream up to which events are queued.
func (tx *Tx) SetSenderPosition(ctx context.Context, pos int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO federation_sender_position (id, stream_pos) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET stream_pos = excluded.stream_pos`, pos)
	if err != nil {
		return fmt.Errorf("storage: storing the federation sender position: %w", err)
	}
	return nil
}

// EventHeadersAfterStream returns the events after a stream position, in stream order, without
// their bodies: only the columns that say where an event belongs (NID, Room, EventID, Type, StateKey, Sender, StreamPos), for readers
// that route events rather than read them.
func EventHeadersAfterStream(ctx context.Context, r Reader, from int64, limit int) ([]EventRecord, error) {
	rows, err := r.Query(ctx, `SELECT event_nid, room_nid, event_id, event_type, state_key, sender, stream_pos
		FROM events WHERE stream_pos > $1 ORDER BY stream_pos LIMIT $2`, from, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []EventRecord
	for rows.Next() {
		var (
			e        EventRecord
			stateKey sql.NullString
		)
		if err := rows.Scan(&e.NID, &e.Room, &e.EventID, &e.Type, &stateKey, &e.Sender, &e.StreamPos); err != nil {
			return nil, err
		}
		if stateKey.Valid {
			e.StateKey = &stateKey.String
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// RoomJoinedMembers returns the users joined to a room now, by room id.
func RoomJoinedMembers(ctx context.Context, r Reader, roomID string) ([]string, error) {
	return queryStrings(ctx, r, `SELECT m.user_id FROM memberships m JOIN rooms r ON r.room_nid = m.room_nid
		WHERE r.room_id = $1 AND m.membership = 'join' ORDER BY m.user_id`, roomID)
}

// RoomHasJoinedMemberOn reports whether any user of server is joined to a room, stopping at the
// first one rather than reading the member list.
func RoomHasJoinedMemberOn(ctx context.Context, r Reader, roomID, server string) (bool, error) {
	suffix := ":" + server
	var one int
	err := r.QueryRow(ctx, `SELECT 1 FROM memberships m JOIN rooms r ON r.room_nid = m.room_nid
		WHERE r.room_id = $1 AND m.membership = 'join'
		AND substr(m.user_id, length(m.user_id) - length(CAST($2 AS TEXT)) + 1) = CAST($2 AS TEXT) LIMIT 1`, roomID, suffix).Scan(&one)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
