package storage

import (
	"context"
	"fmt"
)

// The room summary of a /sync is computed at the position the sync answers up to, while the
// memberships table holds only the latest membership of each user: these queries let the
// caller tell the memberships set after that position apart, and read those from the state.

// MembershipsChangedAfter returns the memberships of a room set by events past stream
// position pos.
func MembershipsChangedAfter(ctx context.Context, r Reader, room RoomNID, pos int64) ([]Membership, error) {
	out, err := queryMemberships(ctx, r, room, `SELECT user_id, membership, event_nid, stream_pos, join_pos FROM memberships
		WHERE room_nid = $1 AND stream_pos > $2 ORDER BY stream_pos`, room, pos)
	if err != nil {
		return nil, fmt.Errorf("storage: memberships changed after %d: %w", pos, err)
	}
	return out, nil
}

// RoomHeroesUpTo is RoomHeroes among the users whose membership was set at or before stream
// position pos, with the position of each one's membership event.
func RoomHeroesUpTo(ctx context.Context, r Reader, room RoomNID, userID string, memberships []string, limit int, pos int64) ([]Membership, error) {
	args := []any{room, userID, limit, pos}
	for _, m := range memberships {
		args = append(args, m)
	}
	out, err := queryMemberships(ctx, r, room, `SELECT user_id, membership, event_nid, stream_pos, join_pos FROM memberships
		WHERE room_nid = $1 AND user_id <> $2 AND stream_pos <= $4
		AND membership IN (`+placeholders(5, len(memberships))+`) ORDER BY stream_pos LIMIT $3`, args...)
	if err != nil {
		return nil, fmt.Errorf("storage: room heroes: %w", err)
	}
	return out, nil
}

func queryMemberships(ctx context.Context, r Reader, room RoomNID, q string, args ...any) ([]Membership, error) {
	rows, err := r.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Membership
	for rows.Next() {
		m := Membership{Room: room}
		if err := rows.Scan(&m.UserID, &m.Membership, &m.Event, &m.StreamPos, &m.JoinPos); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
