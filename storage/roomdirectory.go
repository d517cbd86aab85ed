package storage

import (
	"context"
	"fmt"
)

// PublishedRoom is a room of the room directory (room_directory, migration 0007) with the
// number of its members joined now, the key the directory is listed by.
type PublishedRoom struct {
	RoomID        string
	JoinedMembers int
}

// PublishedRoomsByMembers returns every published room, the most joined members first and
// then by room id, so that a page boundary (members, room id) is a stable position in the
// list. Rooms this server has no record of are left out.
//
// The count comes from memberships, whose key starts with the room, so the directory is read
// in one query without a derived counter table to keep in step with state resolution.
func PublishedRoomsByMembers(ctx context.Context, r Reader) ([]PublishedRoom, error) {
	rows, err := r.Query(ctx, `SELECT d.room_id,
			(SELECT COUNT(*) FROM memberships m WHERE m.room_nid = rm.room_nid AND m.membership = 'join') AS joined
		FROM room_directory d JOIN rooms rm ON rm.room_id = d.room_id
		ORDER BY joined DESC, d.room_id`)
	if err != nil {
		return nil, fmt.Errorf("storage: listing the room directory: %w", err)
	}
	defer rows.Close()
	var out []PublishedRoom
	for rows.Next() {
		var p PublishedRoom
		if err := rows.Scan(&p.RoomID, &p.JoinedMembers); err != nil {
			return nil, fmt.Errorf("storage: listing the room directory: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
