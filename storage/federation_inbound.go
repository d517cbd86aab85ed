package storage

import (
	"context"
	"errors"
	"fmt"
)

// InboundTxnResponse returns the response recorded for a transaction of origin; ErrNotFound if
// the transaction was not seen.
func InboundTxnResponse(ctx context.Context, r Reader, origin, txnID string) ([]byte, error) {
	var resp string
	err := r.QueryRow(ctx, `SELECT response_json FROM federation_inbound_txns WHERE origin = $1 AND txn_id = $2`,
		origin, txnID).Scan(&resp)
	if err != nil {
		return nil, fmt.Errorf("storage: inbound transaction: %w", err)
	}
	return []byte(resp), nil
}

// InsertInboundTxn records the response to a transaction of origin. A transaction recorded
// already keeps its first response.
func (tx *Tx) InsertInboundTxn(ctx context.Context, origin, txnID string, response []byte, receivedTS int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO federation_inbound_txns (origin, txn_id, response_json, received_ts)
		VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, origin, txnID, string(response), receivedTS)
	if err != nil {
		return fmt.Errorf("storage: recording inbound transaction: %w", err)
	}
	return nil
}

// PruneInboundTxns forgets the transactions received before the given time.
func (tx *Tx) PruneInboundTxns(ctx context.Context, before int64) error {
	_, err := tx.Exec(ctx, `DELETE FROM federation_inbound_txns WHERE received_ts < $1`, before)
	return err
}

// RemoteInvite is an invite of one of our users to a room this server is not in.
type RemoteInvite struct {
	UserID      string
	RoomID      string
	RoomVersion string
	EventID     string
	// EventJSON is the invite event as counter-signed by us.
	EventJSON []byte
	// InviteState is the JSON list of stripped state events the inviting server sent.
	InviteState []byte
	StreamPos   int64
}

// UpsertRemoteInvite records an invite, replacing an earlier one of the user to the room.
func (tx *Tx) UpsertRemoteInvite(ctx context.Context, inv RemoteInvite) error {
	_, err := tx.Exec(ctx, `INSERT INTO remote_invites (user_id, room_id, room_version, event_id, event_json, invite_state, stream_pos)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (user_id, room_id) DO UPDATE SET room_version = excluded.room_version, event_id = excluded.event_id,
			event_json = excluded.event_json, invite_state = excluded.invite_state, stream_pos = excluded.stream_pos`,
		inv.UserID, inv.RoomID, inv.RoomVersion, inv.EventID, string(inv.EventJSON), string(inv.InviteState), inv.StreamPos)
	if err != nil {
		return fmt.Errorf("storage: recording remote invite: %w", err)
	}
	return nil
}

// DeleteRemoteInvite forgets the invite of a user to a room, if any.
func (tx *Tx) DeleteRemoteInvite(ctx context.Context, userID, roomID string) error {
	_, err := tx.Exec(ctx, `DELETE FROM remote_invites WHERE user_id = $1 AND room_id = $2`, userID, roomID)
	return err
}

// RemoteInvites returns the pending remote invites of a user with from < stream_pos <= to
// (to 0: no upper bound), in stream order.
func RemoteInvites(ctx context.Context, r Reader, userID string, from, to int64) ([]RemoteInvite, error) {
	q := `SELECT user_id, room_id, room_version, event_id, event_json, invite_state, stream_pos FROM remote_invites
		WHERE user_id = $1 AND stream_pos > $2`
	args := []any{userID, from}
	if to > 0 {
		q += ` AND stream_pos <= $3`
		args = append(args, to)
	}
	rows, err := r.Query(ctx, q+` ORDER BY stream_pos`, args...)
	if err != nil {
		return nil, fmt.Errorf("storage: remote invites: %w", err)
	}
	defer rows.Close()
	var out []RemoteInvite
	for rows.Next() {
		var inv RemoteInvite
		var ev, st string
		if err := rows.Scan(&inv.UserID, &inv.RoomID, &inv.RoomVersion, &inv.EventID, &ev, &st, &inv.StreamPos); err != nil {
			return nil, err
		}
		inv.EventJSON, inv.InviteState = []byte(ev), []byte(st)
		out = append(out, inv)
	}
	return out, rows.Err()
}

// PrevEventIDs returns the prev_events of each of the given events.
func PrevEventIDs(ctx context.Context, r Reader, nids []EventNID) (map[EventNID][]string, error) {
	out := make(map[EventNID][]string, len(nids))
	for chunk := range chunks(nids, maxInArgs) {
		rows, err := r.Query(ctx, `SELECT event_nid, prev_event_id FROM event_prev_edges
			WHERE event_nid IN (`+placeholders(1, len(chunk))+`) ORDER BY event_nid, prev_event_id`, anys(chunk)...)
		if err != nil {
			return nil, fmt.Errorf("storage: prev events: %w", err)
		}
		for rows.Next() {
			var n EventNID
			var id string
			if err := rows.Scan(&n, &id); err != nil {
				rows.Close()
				return nil, err
			}
			out[n] = append(out[n], id)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// EventNearTimestamp returns the timeline event of a room closest to ts: the first at or after
// it, or when backwards the last at or before it. ErrNotFound if there is none.
func EventNearTimestamp(ctx context.Context, r Reader, room RoomNID, ts int64, backwards bool) (EventRecord, error) {
	cmp, order := ">=", "ASC"
	if backwards {
		cmp, order = "<=", "DESC"
	}
	got, err := queryEvents(ctx, r, `SELECT `+eventColumns+` FROM events
		WHERE room_nid = $1 AND stream_pos IS NOT NULL AND origin_server_ts `+cmp+` $2
		ORDER BY origin_server_ts `+order+`, stream_pos `+order+` LIMIT 1`, room, ts)
	if err != nil {
		return EventRecord{}, err
	}
	if len(got) == 0 {
		return EventRecord{}, fmt.Errorf("storage: event near %d: %w", ts, ErrNotFound)
	}
	return got[0], nil
}
