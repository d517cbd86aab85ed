package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Profile is a local user's display name and avatar; empty means unset.
type Profile struct {
	DisplayName string
	AvatarURL   string
}

// GetProfile returns a local user's profile; a user who never set one has the zero Profile.
func GetProfile(ctx context.Context, r Reader, localpart string) (Profile, error) {
	var name, avatar sql.NullString
	err := r.QueryRow(ctx, `SELECT displayname, avatar_url FROM profiles WHERE localpart = $1`, localpart).Scan(&name, &avatar)
	if errors.Is(err, ErrNotFound) {
		return Profile{}, nil
	}
	if err != nil {
		return Profile{}, fmt.Errorf("storage: reading a profile: %w", err)
	}
	return Profile{DisplayName: name.String, AvatarURL: avatar.String}, nil
}

// SetDisplayName sets (or, with "", clears) a local user's display name.
func (tx *Tx) SetDisplayName(ctx context.Context, localpart, name string) error {
	_, err := tx.Exec(ctx, `INSERT INTO profiles (localpart, displayname) VALUES ($1, $2)
		ON CONFLICT (localpart) DO UPDATE SET displayname = excluded.displayname`, localpart, nullString(name))
	if err != nil {
		return fmt.Errorf("storage: setting a display name: %w", err)
	}
	return nil
}

// SetAvatarURL sets (or, with "", clears) a local user's avatar.
func (tx *Tx) SetAvatarURL(ctx context.Context, localpart, url string) error {
	_, err := tx.Exec(ctx, `INSERT INTO profiles (localpart, avatar_url) VALUES ($1, $2)
		ON CONFLICT (localpart) DO UPDATE SET avatar_url = excluded.avatar_url`, localpart, nullString(url))
	if err != nil {
		return fmt.Errorf("storage: setting an avatar: %w", err)
	}
	return nil
}

// DeleteProfile removes a local user's profile, for account deactivation.
func (tx *Tx) DeleteProfile(ctx context.Context, localpart string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM profiles WHERE localpart = $1`, localpart); err != nil {
		return fmt.Errorf("storage: deleting a profile: %w", err)
	}
	return tx.DeleteProfileFields(ctx, localpart)
}

// UsersShareRoom reports whether two users are both joined to at least one room, as this
// server's membership table knows it.
func UsersShareRoom(ctx context.Context, r Reader, a, b string) (bool, error) {
	var one int
	err := r.QueryRow(ctx, `SELECT 1 FROM memberships x JOIN memberships y ON x.room_nid = y.room_nid
		WHERE x.user_id = $1 AND y.user_id = $2 AND x.membership = 'join' AND y.membership = 'join' LIMIT 1`, a, b).Scan(&one)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("storage: shared rooms: %w", err)
	}
	return true, nil
}

// ServerSharesRoom reports whether a user of server is joined to a room that userID is joined to.
func ServerSharesRoom(ctx context.Context, r Reader, userID, server string) (bool, error) {
	var one int
	err := r.QueryRow(ctx, `SELECT 1 FROM memberships x JOIN memberships y ON x.room_nid = y.room_nid
		WHERE x.user_id = $1 AND x.membership = 'join' AND y.membership = 'join' AND y.user_id LIKE $2 ESCAPE '\' LIMIT 1`,
		userID, "%:"+likeEscape(server)).Scan(&one)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("storage: shared rooms: %w", err)
	}
	return true, nil
}

// likeEscape escapes LIKE's wildcards (and the escape character) in s.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(s)
}
