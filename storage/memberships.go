package storage

import (
	"context"
	"fmt"
)

// Membership is a user's current membership of a room.
type Membership struct {
	Room       RoomNID
	UserID     string
	Membership string
	Event      EventNID
	StreamPos  int64
	// JoinPos is the stream position of the user's latest join, 0 if they never joined.
	JoinPos int64
}

// SetMembership records a user's membership after a membership event entered the current
// state. A join also moves JoinPos.
func (tx *Tx) SetMembership(ctx context.Context, m Membership) error {
	joinPos := int64(0)
	if m.Membership == "join" {
		joinPos = m.StreamPos
	}
	_, err := tx.Exec(ctx, `INSERT INTO memberships (room_nid, user_id, membership, event_nid, stream_pos, join_pos)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (room_nid, user_id) DO UPDATE SET membership = excluded.membership, event_nid = excluded.event_nid,
			stream_pos = excluded.stream_pos,
			join_pos = CASE WHEN excluded.join_pos > 0 THEN excluded.join_pos ELSE memberships.join_pos END`,
		m.Room, m.UserID, m.Membership, m.Event, m.StreamPos, joinPos)
	if err != nil {
		return fmt.Errorf("storage: setting membership: %w", err)
	}
	return nil
}

// GetMembership returns a user's membership of a room; ErrNotFound if they never had one.
func GetMembership(ctx context.Context, r Reader, room RoomNID, userID string) (Membership, error) {
	m := Membership{Room: room, UserID: userID}
	err := r.QueryRow(ctx, `SELECT membership, event_nid, stream_pos, join_pos FROM memberships WHERE room_nid = $1 AND user_id = $2`,
		room, userID).Scan(&m.Membership, &m.Event, &m.StreamPos, &m.JoinPos)
	if err != nil {
		return Membership{}, fmt.Errorf("storage: membership of %s: %w", userID, err)
	}
	return m, nil
}

// RoomMembers returns the users with the given membership of a room now, sorted.
func RoomMembers(ctx context.Context, r Reader, room RoomNID, membership string) ([]string, error) {
	return queryStrings(ctx, r, `SELECT user_id FROM memberships WHERE room_nid = $1 AND membership = $2 ORDER BY user_id`, room, membership)
}

// RoomsOfUser returns the ids of the rooms where a user has the given membership now, sorted.
func RoomsOfUser(ctx context.Context, r Reader, userID, membership string) ([]string, error) {
	return queryStrings(ctx, r, `SELECT r.room_id FROM memberships m JOIN rooms r ON r.room_nid = m.room_nid
		WHERE m.user_id = $1 AND m.membership = $2 ORDER BY r.room_id`, userID, membership)
}

func queryStrings(ctx context.Context, r Reader, query string, args ...any) ([]string, error) {
	rows, err := r.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
