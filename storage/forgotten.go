package storage

import (
	"context"
	"fmt"
)

// ForgetRoom records that a user forgot a room whose membership (leave or ban) is at stream
// position membershipPos; forgetting again moves it forward.
func (tx *Tx) ForgetRoom(ctx context.Context, userID, roomID string, membershipPos, ts int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO forgotten_rooms (user_id, room_id, membership_pos, forgotten_ts) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id, room_id) DO UPDATE SET membership_pos = excluded.membership_pos, forgotten_ts = excluded.forgotten_ts`,
		userID, roomID, membershipPos, ts)
	if err != nil {
		return fmt.Errorf("storage: forgetting room: %w", err)
	}
	return nil
}

// ForgottenRooms returns the rooms a user forgot, each with the stream position of the
// membership that was forgotten. A later membership (a higher stream position) ends the
// forgetting: callers compare it with the user's current membership of the room.
func ForgottenRooms(ctx context.Context, r Reader, userID string) (map[string]int64, error) {
	rows, err := r.Query(ctx, `SELECT room_id, membership_pos FROM forgotten_rooms WHERE user_id = $1`, userID)
	if err != nil {
		return nil, fmt.Errorf("storage: forgotten rooms: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var room string
		var pos int64
		if err := rows.Scan(&room, &pos); err != nil {
			return nil, err
		}
		out[room] = pos
	}
	return out, rows.Err()
}
