package roomserver

import (
	"context"
	"encoding/json"
	"errors"

	"myelin/storage"
)

// Ignoring users (client-server API, "Ignoring Users"): a user's m.ignored_user_list account
// data names users whose events the server no longer sends them, except state events (so that
// the room's name and members look the same to everyone), and whose invites they never see.
// It is part of the one visibility mechanism: VisibleEvents applies it, so every read path
// that returns events to a user (sync, /messages, /context, relations, search) ignores alike,
// from the moment the list changes.

// IgnoredUserListType is the account data type of the list.
const IgnoredUserListType = storage.IgnoredUserListType

// IgnoredUsers returns the users userID ignores; nil if none. Read through the database (not
// a transaction), the list comes from storage's cache of committed lists.
func IgnoredUsers(ctx context.Context, r storage.Reader, userID string) (map[string]bool, error) {
	var content json.RawMessage
	if db, ok := r.(*storage.DB); ok {
		var err error
		if content, err = db.IgnoredUserListContent(ctx, userID); err != nil {
			return nil, err
		}
	} else {
		d, err := storage.GetAccountData(ctx, r, userID, "", IgnoredUserListType)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
		content = d.Content
	}
	if content == nil {
		return nil, nil
	}
	var c struct {
		Ignored map[string]json.RawMessage `json:"ignored_users"`
	}
	if json.Unmarshal(content, &c) != nil || len(c.Ignored) == 0 {
		return nil, nil // a malformed list ignores nobody
	}
	out := make(map[string]bool, len(c.Ignored))
	for u := range c.Ignored {
		if u != userID { // nobody can ignore themself away
			out[u] = true
		}
	}
	return out, nil
}
