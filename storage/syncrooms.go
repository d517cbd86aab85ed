package storage

import (
	"context"
	"fmt"
)

// UserRoom is a room a user has a membership of, as /sync reads it.
type UserRoom struct {
	Room       RoomNID
	RoomID     string
	Version    string
	Membership string
	// MembershipPos is the stream position of the user's membership event; MembershipEvent
	// its short id.
	MembershipPos   int64
	MembershipEvent EventNID
	// LatestPos is the position of the room's last event in the range asked for, 0 if none.
	LatestPos int64
}

// RoomsOfUserAll returns every room where the user has a membership, whatever it is.
func RoomsOfUserAll(ctx context.Context, r Reader, userID string) ([]UserRoom, error) {
	return queryUserRooms(ctx, r, `SELECT m.room_nid, r.room_id, r.room_version, m.membership, m.stream_pos, m.event_nid, 0
		FROM memberships m JOIN rooms r ON r.room_nid = m.room_nid WHERE m.user_id = $1 ORDER BY r.room_id`, userID)
}

// RoomsChangedForUser returns the rooms where the user has a membership and which have events
// at positions in (from, to], with the position of the last one. It reads the events of the
// range, not every room of the user, so that an incremental sync costs what changed.
func RoomsChangedForUser(ctx context.Context, r Reader, userID string, from, to int64) ([]UserRoom, error) {
	return queryUserRooms(ctx, r, `SELECT m.room_nid, r.room_id, r.room_version, m.membership, m.stream_pos, m.event_nid, c.latest
		FROM (SELECT room_nid, MAX(stream_pos) AS latest FROM events WHERE stream_pos > $2 AND stream_pos <= $3 GROUP BY room_nid) c
		JOIN memberships m ON m.room_nid = c.room_nid AND m.user_id = $1
		JOIN rooms r ON r.room_nid = m.room_nid ORDER BY r.room_id`, userID, from, to)
}

func queryUserRooms(ctx context.Context, r Reader, q string, args ...any) ([]UserRoom, error) {
	rows, err := r.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("storage: rooms of user: %w", err)
	}
	defer rows.Close()
	var out []UserRoom
	for rows.Next() {
		var u UserRoom
		if err := rows.Scan(&u.Room, &u.RoomID, &u.Version, &u.Membership, &u.MembershipPos, &u.MembershipEvent, &u.LatestPos); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// StateKeysChangedBetween returns the (type, state_key) of the timeline state events of a room
// at positions in (from, to]: what an incremental sync must look up again.
func StateKeysChangedBetween(ctx context.Context, r Reader, room RoomNID, from, to int64) ([]StateKey, error) {
	rows, err := r.Query(ctx, `SELECT DISTINCT type_nid, state_key_nid FROM events
		WHERE room_nid = $1 AND stream_pos > $2 AND stream_pos <= $3 AND state_key IS NOT NULL`, room, from, to)
	if err != nil {
		return nil, fmt.Errorf("storage: changed state keys: %w", err)
	}
	defer rows.Close()
	var out []StateKey
	for rows.Next() {
		var k StateKey
		if err := rows.Scan(&k.Type, &k.StateKey); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RoomMemberCounts returns how many users of a room have each membership now.
func RoomMemberCounts(ctx context.Context, r Reader, room RoomNID) (map[string]int, error) {
	rows, err := r.Query(ctx, `SELECT membership, COUNT(*) FROM memberships WHERE room_nid = $1 GROUP BY membership`, room)
	if err != nil {
		return nil, fmt.Errorf("storage: member counts: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var m string
		var n int
		if err := rows.Scan(&m, &n); err != nil {
			return nil, err
		}
		out[m] = n
	}
	return out, rows.Err()
}

// RoomHeroes returns up to limit users of a room, other than userID, with one of the given
// memberships, in the order of their membership events.
func RoomHeroes(ctx context.Context, r Reader, room RoomNID, userID string, memberships []string, limit int) ([]string, error) {
	args := []any{room, userID, limit}
	for _, m := range memberships {
		args = append(args, m)
	}
	return queryStrings(ctx, r, `SELECT user_id FROM memberships WHERE room_nid = $1 AND user_id <> $2
		AND membership IN (`+placeholders(4, len(memberships))+`) ORDER BY stream_pos LIMIT $3`, args...)
}
