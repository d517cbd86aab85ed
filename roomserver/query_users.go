package roomserver

import (
	"context"
	"errors"
	"fmt"
)

// SharedRoomUsers returns the users, local and remote, who are joined to at least one room to
// which userID is joined too, sorted, without userID. It is what the end-to-end encryption key
// store needs to decide whose device list changes a user hears of (e2e.RoomMembership).
//
// One query over the memberships table (indexed by user and by room), so that its cost follows
// the size of the user's rooms, not the number of rooms on the server.
func (s *Server) SharedRoomUsers(ctx context.Context, userID string) ([]string, error) {
	rows, err := s.db.Query(ctx, `SELECT DISTINCT other.user_id FROM memberships mine
		JOIN memberships other ON other.room_nid = mine.room_nid
		WHERE mine.user_id = $1 AND mine.membership = 'join' AND other.membership = 'join' AND other.user_id <> $1
		ORDER BY other.user_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("roomserver: users sharing a room with %s: %w", userID, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// LeaveAllRooms makes a local user leave every room they are joined to, invited to or knocking
// on, for account deactivation. It goes on past a room that fails and returns the failures
// joined, so that one unreachable room does not keep the user in all the others.
func (s *Server) LeaveAllRooms(ctx context.Context, userID string) error {
	var errs []error
	for _, membership := range []string{"join", "invite", "knock"} {
		rooms, err := s.RoomsWithMembership(ctx, userID, membership)
		if err != nil {
			return err
		}
		for _, roomID := range rooms {
			if _, err := s.Leave(ctx, roomID, userID, ""); err != nil {
				errs = append(errs, fmt.Errorf("leaving %s: %w", roomID, err))
			}
		}
	}
	invites, err := s.RemoteInvites(ctx, userID, 0, 0)
	if err != nil {
		return err
	}
	for _, inv := range invites {
		if _, err := s.Leave(ctx, inv.RoomID, userID, ""); err != nil {
			// The inviting server may be gone; the invite must not outlive the account.
			if err := s.ForgetRemoteInvite(ctx, userID, inv.RoomID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// SharedMembershipChange is a membership of another user in a room the user has (or had) a
// membership of, where one of the two memberships changed in a range of the events stream.
type SharedMembershipChange struct {
	UserID     string
	Membership string // the other user's membership now
	Changed    bool   // the other user's membership changed in the range
	// Own is the user's own membership of the room now; OwnChanged: it changed in the range.
	Own        string
	OwnChanged bool
}

// SharedMembershipChanges returns, for the device list tracking of /sync, the memberships of
// other users in the rooms of userID where either theirs or userID's changed at a position in
// (from, to]: who newly shares a room with the user, and who may have stopped sharing one.
// One query over the memberships table, whose rows hold each membership's stream position.
func (s *Server) SharedMembershipChanges(ctx context.Context, userID string, from, to int64) ([]SharedMembershipChange, error) {
	rows, err := s.db.Query(ctx, `SELECT other.user_id, other.membership, other.stream_pos > $2 AND other.stream_pos <= $3,
			mine.membership, mine.stream_pos > $2 AND mine.stream_pos <= $3
		FROM memberships mine JOIN memberships other ON other.room_nid = mine.room_nid
		WHERE mine.user_id = $1 AND other.user_id <> $1 AND mine.membership IN ('join', 'leave', 'ban')
			AND ((other.stream_pos > $2 AND other.stream_pos <= $3) OR (mine.stream_pos > $2 AND mine.stream_pos <= $3))`,
		userID, from, to)
	if err != nil {
		return nil, fmt.Errorf("roomserver: membership changes around %s: %w", userID, err)
	}
	defer rows.Close()
	var out []SharedMembershipChange
	for rows.Next() {
		var c SharedMembershipChange
		if err := rows.Scan(&c.UserID, &c.Membership, &c.Changed, &c.Own, &c.OwnChanged); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
