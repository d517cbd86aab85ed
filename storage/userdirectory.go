package storage

import (
	"context"
	"fmt"
	"strings"
)

// The user directory and mutual rooms, read from the memberships table and two small tables of
// migration 0019: member_names (the display name of each membership event, which SQL cannot read
// from the event body) and public_room_state.

// IndexMemberName records the display name and avatar a membership event carries.
func (tx *Tx) IndexMemberName(ctx context.Context, ev EventNID, displayName, avatarURL string) error {
	if displayName == "" && avatarURL == "" {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO member_names (event_nid, display_name, search_name, avatar_url) VALUES ($1, $2, $3, $4)
		ON CONFLICT (event_nid) DO UPDATE SET display_name = excluded.display_name, search_name = excluded.search_name,
			avatar_url = excluded.avatar_url`,
		ev, displayName, DirectorySearchName(displayName), avatarURL)
	if err != nil {
		return fmt.Errorf("storage: recording a member's name: %w", err)
	}
	return nil
}

// DirectorySearchName is the form of a name that the directory matches: its words, each
// preceded by a space, so that LIKE '% word%' finds names with a word starting with "word".
func DirectorySearchName(name string) string {
	words := SearchWords(name)
	if len(words) == 0 {
		return ""
	}
	return " " + strings.Join(words, " ")
}

// IndexPublicRoomState records that a state event (a public join rule, a world readable
// history visibility) makes its room's members visible to anyone while it is current.
func (tx *Tx) IndexPublicRoomState(ctx context.Context, ev EventNID) error {
	if _, err := tx.Exec(ctx, `INSERT INTO public_room_state (event_nid) VALUES ($1) ON CONFLICT (event_nid) DO NOTHING`, ev); err != nil {
		return fmt.Errorf("storage: recording public room state: %w", err)
	}
	return nil
}

// DirectoryCandidate is a joined member of a room the searcher may look into, with the name
// and avatar of their current membership event of that room.
type DirectoryCandidate struct {
	UserID      string
	DisplayName string
	AvatarURL   string
	Event       EventNID
	// Shared: the searcher is joined to the room too.
	Shared bool
}

// DirectoryCandidates returns the joined members of the rooms searcher shares with them and of
// the public rooms (public join rule or world readable history now, or published in the room
// directory) whose user id
// contains idPart or whose display name has a word starting with namePrefix (both lower case).
// A user appears once per room. The caller applies the full match.
func DirectoryCandidates(ctx context.Context, r Reader, searcher, idPart, namePrefix string, limit int) ([]DirectoryCandidate, error) {
	rows, err := r.Query(ctx, `WITH visible_rooms AS (
			SELECT room_nid, 1 AS shared FROM memberships WHERE user_id = $1 AND membership = 'join'
			UNION ALL
			SELECT r.room_nid, 0 FROM room_directory d JOIN rooms r ON r.room_id = d.room_id
			UNION ALL
			SELECT e.room_nid, 0 FROM public_room_state p
				JOIN events e ON e.event_nid = p.event_nid
				JOIN current_state cs ON cs.room_nid = e.room_nid AND cs.type_nid = e.type_nid
					AND cs.state_key_nid = e.state_key_nid AND cs.event_nid = p.event_nid
		), rooms_seen AS (SELECT room_nid, MAX(shared) AS shared FROM visible_rooms GROUP BY room_nid)
		SELECT m.user_id, COALESCE(n.display_name, ''), COALESCE(n.avatar_url, ''), m.event_nid, rs.shared
		FROM rooms_seen rs JOIN memberships m ON m.room_nid = rs.room_nid
		LEFT JOIN member_names n ON n.event_nid = m.event_nid
		WHERE m.membership = 'join'
			AND (LOWER(m.user_id) LIKE $2 ESCAPE '\' OR n.search_name LIKE $3 ESCAPE '\')
		ORDER BY m.user_id LIMIT $4`,
		searcher, "%"+likeEscape(idPart)+"%", "% "+likeEscape(namePrefix)+"%", limit)
	if err != nil {
		return nil, fmt.Errorf("storage: searching the user directory: %w", err)
	}
	defer rows.Close()
	var out []DirectoryCandidate
	for rows.Next() {
		var c DirectoryCandidate
		var shared int
		if err := rows.Scan(&c.UserID, &c.DisplayName, &c.AvatarURL, &c.Event, &shared); err != nil {
			return nil, fmt.Errorf("storage: searching the user directory: %w", err)
		}
		c.Shared = shared == 1
		out = append(out, c)
	}
	return out, rows.Err()
}

// DeactivatedAmong returns which of the local users' localparts belong to deactivated accounts.
func DeactivatedAmong(ctx context.Context, r Reader, localparts []string) (map[string]bool, error) {
	out := map[string]bool{}
	for chunk := range chunks(localparts, maxInArgs) {
		got, err := queryStrings(ctx, r, `SELECT localpart FROM accounts
			WHERE deactivated_ts IS NOT NULL AND localpart IN (`+placeholders(1, len(chunk))+`)`, anys(chunk)...)
		if err != nil {
			return nil, fmt.Errorf("storage: reading deactivated accounts: %w", err)
		}
		for _, l := range got {
			out[l] = true
		}
	}
	return out, nil
}

// MutualRooms returns the ids of the rooms both users are joined to, sorted, after the room id
// after (exclusive, "" for the start), at most limit of them.
func MutualRooms(ctx context.Context, r Reader, a, b, after string, limit int) ([]string, error) {
	got, err := queryStrings(ctx, r, `SELECT r.room_id FROM memberships x
		JOIN memberships y ON y.room_nid = x.room_nid
		JOIN rooms r ON r.room_nid = x.room_nid
		WHERE x.user_id = $1 AND y.user_id = $2 AND x.membership = 'join' AND y.membership = 'join' AND r.room_id > $3
		ORDER BY r.room_id LIMIT $4`, a, b, after, limit)
	if err != nil {
		return nil, fmt.Errorf("storage: mutual rooms: %w", err)
	}
	return got, nil
}

// CountMutualRooms counts the rooms both users are joined to.
func CountMutualRooms(ctx context.Context, r Reader, a, b string) (int, error) {
	var n int
	err := r.QueryRow(ctx, `SELECT COUNT(*) FROM memberships x JOIN memberships y ON y.room_nid = x.room_nid
		WHERE x.user_id = $1 AND y.user_id = $2 AND x.membership = 'join' AND y.membership = 'join'`, a, b).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("storage: counting mutual rooms: %w", err)
	}
	return n, nil
}
