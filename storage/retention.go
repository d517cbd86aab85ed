package storage

import (
	"context"
	"database/sql"
	"fmt"
)

// Message retention: the bodies of non-state timeline events older than their room's lifetime
// are purged. A purged event keeps its row in events (id, room, type, sender, depth, stream
// position, state snapshots) and its DAG edges, with event_json NULL, so that every reader
// that serves clients finds nothing to show; its redacted form is kept in purged_events for
// federation. Which rooms and which lifetime is the room server's business (Matrix rules).

// RetentionRoom is a room as the purge job sees it.
type RetentionRoom struct {
	NID     RoomNID
	ID      string
	Version string
	// Policy is the room's current m.room.retention event (state key ""), 0 if it has none.
	Policy EventNID
}

// RetentionRooms returns the rooms the purge job looks at: every room when all is true (the
// server has a default lifetime), else only those with an m.room.retention in their current
// state.
func RetentionRooms(ctx context.Context, r Reader, all bool) ([]RetentionRoom, error) {
	q := `SELECT r.room_nid, r.room_id, r.room_version, cs.event_nid FROM rooms r
		LEFT JOIN current_state cs ON cs.room_nid = r.room_nid
			AND cs.type_nid = (SELECT type_nid FROM event_types WHERE event_type = 'm.room.retention')
			AND cs.state_key_nid = (SELECT state_key_nid FROM event_state_keys WHERE state_key = '')`
	if !all {
		q += ` WHERE cs.event_nid IS NOT NULL`
	}
	rows, err := r.Query(ctx, q+` ORDER BY r.room_nid`)
	if err != nil {
		return nil, fmt.Errorf("storage: listing rooms for retention: %w", err)
	}
	defer rows.Close()
	var out []RetentionRoom
	for rows.Next() {
		var room RetentionRoom
		var policy sql.NullInt64
		if err := rows.Scan(&room.NID, &room.ID, &room.Version, &policy); err != nil {
			return nil, fmt.Errorf("storage: listing rooms for retention: %w", err)
		}
		room.Policy = EventNID(policy.Int64)
		out = append(out, room)
	}
	return out, rows.Err()
}

// ExpiredEvents returns up to limit events of a room that retention may purge, oldest first:
// non-state events on the timeline (not outliers, not rejected nor soft-failed) sent before
// the given time (origin_server_ts, ms) whose body is still stored. A forward extremity is never
// one: the room's next event cites it as a prev_event, and a server answering for it must have
// it whole. The create event and the events of current state are state events, never returned.
func ExpiredEvents(ctx context.Context, r Reader, room RoomNID, before int64, limit int) ([]EventRecord, error) {
	return queryEvents(ctx, r, `SELECT `+eventColumns+` FROM events
		WHERE room_nid = $1 AND origin_server_ts < $2
			AND state_key IS NULL AND stream_pos IS NOT NULL AND event_json IS NOT NULL
			AND NOT rejected AND NOT soft_failed AND NOT outlier
			AND NOT EXISTS (SELECT 1 FROM forward_extremities f
				WHERE f.room_nid = events.room_nid AND f.event_nid = events.event_nid)
		ORDER BY origin_server_ts, event_nid LIMIT $3`, room, before, limit)
}

// PurgeEvent replaces the body of an event of room by nothing, keeping stub (its redacted form)
// for federation, at ts (ms). The old body is overwritten, not kept anywhere. Purging an event
// again changes nothing. The caller removes what derived tables hold of the event in the same
// transaction.
func (tx *Tx) PurgeEvent(ctx context.Context, room RoomNID, nid EventNID, stub []byte, ts int64) error {
	body, err := encodeEventJSON(stub)
	if err != nil {
		return fmt.Errorf("storage: encoding the stub of event %d: %w", nid, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO purged_events (event_nid, room_nid, stub_json, purged_ts) VALUES ($1, $2, $3, $4)
		ON CONFLICT (event_nid) DO NOTHING`, nid, room, body, ts); err != nil {
		return fmt.Errorf("storage: recording the stub of event %d: %w", nid, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE events SET event_json = NULL WHERE event_nid = $1`, nid); err != nil {
		return fmt.Errorf("storage: purging event %d: %w", nid, err)
	}
	return nil
}

// PurgedStubs returns the stubs (redacted forms) of those of nids that retention purged.
func PurgedStubs(ctx context.Context, r Reader, nids []EventNID) (map[EventNID][]byte, error) {
	out := map[EventNID][]byte{}
	err := eachRowIn(ctx, r, func(in string) string {
		return `SELECT event_nid, stub_json FROM purged_events WHERE event_nid IN (` + in + `)`
	}, nil, nids, func(scan func(...any) error) error {
		var nid EventNID
		var body []byte
		if err := scan(&nid, &body); err != nil {
			return err
		}
		var err error
		if out[nid], err = decodeEventJSON(body); err != nil {
			return fmt.Errorf("decoding the stub of event %d: %w", nid, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: reading purged stubs: %w", err)
	}
	return out, nil
}

// WithPurgedStubs returns recs with the body of each purged event replaced by its stub, for
// answers to other servers; events without a body that were not purged stay without one.
func WithPurgedStubs(ctx context.Context, r Reader, recs []EventRecord) ([]EventRecord, error) {
	var nids []EventNID
	for _, rec := range recs {
		if rec.JSON == nil {
			nids = append(nids, rec.NID)
		}
	}
	if len(nids) == 0 {
		return recs, nil
	}
	stubs, err := PurgedStubs(ctx, r, nids)
	if err != nil {
		return nil, err
	}
	out := make([]EventRecord, len(recs))
	for i, rec := range recs {
		if rec.JSON == nil {
			rec.JSON = stubs[rec.NID]
		}
		out[i] = rec
	}
	return out, nil
}
