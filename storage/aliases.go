package storage

import (
	"context"
	"fmt"
)

// RoomAlias is an alias of this server's namespace. RoomID is empty while the alias is
// reserved for a room being created.
type RoomAlias struct {
	Alias     string
	RoomID    string
	Creator   string
	CreatedTS int64
}

// InsertRoomAlias records an alias; ErrConflict if it exists (reserved or not).
func (tx *Tx) InsertRoomAlias(ctx context.Context, a RoomAlias) error {
	_, err := tx.Exec(ctx, `INSERT INTO room_aliases (alias, room_id, creator, created_ts) VALUES ($1, $2, $3, $4)`,
		a.Alias, a.RoomID, a.Creator, a.CreatedTS)
	if err != nil {
		return fmt.Errorf("storage: inserting room alias: %w", err)
	}
	return nil
}

// SetRoomAliasRoom points a reserved alias at its room.
func (tx *Tx) SetRoomAliasRoom(ctx context.Context, alias, roomID string) error {
	_, err := tx.Exec(ctx, `UPDATE room_aliases SET room_id = $1 WHERE alias = $2`, roomID, alias)
	return err
}

// GetRoomAlias returns an alias, reserved or not; ErrNotFound if it does not exist.
func GetRoomAlias(ctx context.Context, r Reader, alias string) (RoomAlias, error) {
	a := RoomAlias{Alias: alias}
	err := r.QueryRow(ctx, `SELECT room_id, creator, created_ts FROM room_aliases WHERE alias = $1`, alias).
		Scan(&a.RoomID, &a.Creator, &a.CreatedTS)
	if err != nil {
		return RoomAlias{}, fmt.Errorf("storage: room alias: %w", err)
	}
	return a, nil
}

// DeleteRoomAlias removes an alias; ErrNotFound if it did not exist.
func (tx *Tx) DeleteRoomAlias(ctx context.Context, alias string) error {
	res, err := tx.Exec(ctx, `DELETE FROM room_aliases WHERE alias = $1`, alias)
	if err != nil {
		return fmt.Errorf("storage: deleting room alias: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("storage: room alias %s: %w", alias, ErrNotFound)
	}
	return nil
}

// AliasesOfRoom returns the aliases pointing at a room, sorted.
func AliasesOfRoom(ctx context.Context, r Reader, roomID string) ([]string, error) {
	return queryStrings(ctx, r, `SELECT alias FROM room_aliases WHERE room_id = $1 ORDER BY alias`, roomID)
}

// SetRoomPublished publishes a room in the room directory or withdraws it.
func (tx *Tx) SetRoomPublished(ctx context.Context, roomID string, published bool, ts int64) error {
	var err error
	if published {
		_, err = tx.Exec(ctx, `INSERT INTO room_directory (room_id, published_ts) VALUES ($1, $2) ON CONFLICT (room_id) DO NOTHING`, roomID, ts)
	} else {
		_, err = tx.Exec(ctx, `DELETE FROM room_directory WHERE room_id = $1`, roomID)
	}
	if err != nil {
		return fmt.Errorf("storage: room directory: %w", err)
	}
	return nil
}

// RoomPublished reports whether a room is in the room directory.
func RoomPublished(ctx context.Context, r Reader, roomID string) (bool, error) {
	var n int
	err := r.QueryRow(ctx, `SELECT COUNT(*) FROM room_directory WHERE room_id = $1`, roomID).Scan(&n)
	return n > 0, err
}

// PublishedRooms returns the rooms of the room directory, oldest publication first.
func PublishedRooms(ctx context.Context, r Reader) ([]string, error) {
	return queryStrings(ctx, r, `SELECT room_id FROM room_directory ORDER BY published_ts, room_id`)
}

// MoveRoomAliases points every alias of one room at another, as a room upgrade does.
func (tx *Tx) MoveRoomAliases(ctx context.Context, fromRoom, toRoom string) error {
	if _, err := tx.Exec(ctx, `UPDATE room_aliases SET room_id = $1 WHERE room_id = $2`, toRoom, fromRoom); err != nil {
		return fmt.Errorf("storage: moving room aliases: %w", err)
	}
	return nil
}
