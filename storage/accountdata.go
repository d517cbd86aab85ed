package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
)

// AccountDataStream is the stream whose positions order account data changes.
const AccountDataStream = "account_data"

// AccountData is one entry of a user's account data; RoomID is "" for global account data.
type AccountData struct {
	RoomID    string
	Type      string
	Content   json.RawMessage
	StreamPos int64
}

// SetAccountData stores an entry of a user's account data at a new position on
// AccountDataStream, which it returns.
func (tx *Tx) SetAccountData(ctx context.Context, userID, roomID, dataType string, content []byte) (int64, error) {
	if dataType == IgnoredUserListType {
		tx.ignoreListsChanged = true
	}
	pos, err := tx.NextStreamPosition(ctx, AccountDataStream)
	if err != nil {
		return 0, err
	}
	_, err = tx.Exec(ctx, `INSERT INTO account_data (user_id, room_id, data_type, content, stream_pos)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (user_id, room_id, data_type) DO UPDATE SET content = excluded.content, stream_pos = excluded.stream_pos`,
		userID, roomID, dataType, string(content), pos)
	if err != nil {
		return 0, fmt.Errorf("storage: setting account data: %w", err)
	}
	return pos, nil
}

// IgnoredUserListType is the account data type of a user's ignore list. Its readers may cache
// lists as long as IgnoreListChanges stays the same.
const IgnoredUserListType = "m.ignored_user_list"

// IgnoreListChanges counts the committed transactions of this process that set or deleted an
// ignore list. A transaction that failed to commit may count too.
func (db *DB) IgnoreListChanges() uint64 { return db.ignoreListChanges.Load() }

// maxCachedIgnoreLists bounds the ignore list cache; past it the cache starts over.
const maxCachedIgnoreLists = 20000

// ignoreListCache keeps the content of users' ignore lists (nil: none) as read while
// IgnoreListChanges was gen. Every /sync and every visibility check reads the list of the
// user it serves, and lists change rarely: a change empties the whole cache. Like the push
// rule cache, it does not see a change made by another process on the same PostgreSQL
// database.
type ignoreListCache struct {
	mu    sync.Mutex
	gen   uint64
	lists map[string]json.RawMessage
}

// IgnoredUserListContent returns the content of a user's m.ignored_user_list as committed, nil
// if they have none, from a cache where it can.
func (db *DB) IgnoredUserListContent(ctx context.Context, userID string) (json.RawMessage, error) {
	lists, err := db.IgnoredUserListContents(ctx, []string{userID})
	return lists[userID], err
}

// IgnoredUserListContents is IgnoredUserListContent for several users: the lists the cache
// lacks are read in one query.
func (db *DB) IgnoredUserListContents(ctx context.Context, users []string) (map[string]json.RawMessage, error) {
	c := &db.ignoreLists
	out := make(map[string]json.RawMessage, len(users))
	var missing []string
	gen := db.IgnoreListChanges()
	c.mu.Lock()
	if c.lists == nil || c.gen != gen || len(c.lists) >= maxCachedIgnoreLists {
		c.gen, c.lists = gen, map[string]json.RawMessage{}
	}
	for _, u := range users {
		if content, ok := c.lists[u]; ok {
			out[u] = content
		} else {
			missing = append(missing, u)
		}
	}
	c.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	read, err := GlobalAccountDataOfUsers(ctx, db, missing, IgnoredUserListType)
	if err != nil {
		return nil, err
	}
	// Kept only if no change committed since gen was taken: the read may have missed it.
	c.mu.Lock()
	keep := c.gen == gen && db.IgnoreListChanges() == gen
	for _, u := range missing {
		out[u] = read[u] // nil: no list
		if keep {
			c.lists[u] = read[u]
		}
	}
	c.mu.Unlock()
	return out, nil
}

// GetAccountData returns one entry of a user's account data; ErrNotFound if it was never set.
func GetAccountData(ctx context.Context, r Reader, userID, roomID, dataType string) (AccountData, error) {
	d := AccountData{RoomID: roomID, Type: dataType}
	var content string
	err := r.QueryRow(ctx, `SELECT content, stream_pos FROM account_data WHERE user_id = $1 AND room_id = $2 AND data_type = $3`,
		userID, roomID, dataType).Scan(&content, &d.StreamPos)
	if err != nil {
		return AccountData{}, fmt.Errorf("storage: account data %s: %w", dataType, err)
	}
	d.Content = json.RawMessage(content)
	return d, nil
}

// AccountDataBetween returns the entries of a user's account data, global and per room, last
// changed at a position in (from, to], in stream order.
func AccountDataBetween(ctx context.Context, r Reader, userID string, from, to int64) ([]AccountData, error) {
	rows, err := r.Query(ctx, `SELECT room_id, data_type, content, stream_pos FROM account_data
		WHERE user_id = $1 AND stream_pos > $2 AND stream_pos <= $3 ORDER BY stream_pos`, userID, from, to)
	if err != nil {
		return nil, fmt.Errorf("storage: reading account data: %w", err)
	}
	defer rows.Close()
	var out []AccountData
	for rows.Next() {
		var d AccountData
		var content string
		if err := rows.Scan(&d.RoomID, &d.Type, &content, &d.StreamPos); err != nil {
			return nil, err
		}
		d.Content = json.RawMessage(content)
		out = append(out, d)
	}
	return out, rows.Err()
}
