package storage

import (
	"context"
	"fmt"
)

// JoinedCoMembers returns the users joined to at least one room that userID is joined to,
// userID included, sorted. Presence is shown to them and sent to their servers.
func JoinedCoMembers(ctx context.Context, r Reader, userID string) ([]string, error) {
	users, err := queryStrings(ctx, r, `SELECT DISTINCT y.user_id FROM memberships x JOIN memberships y ON x.room_nid = y.room_nid
		WHERE x.user_id = $1 AND x.membership = 'join' AND y.membership = 'join' ORDER BY y.user_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("storage: users sharing a room with %s: %w", userID, err)
	}
	return users, nil
}
