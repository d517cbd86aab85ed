package storage

import (
	"context"
	"encoding/json"
	"fmt"
)

// Pusher is a pusher of a local user (POST /pushers/set), with its delivery progress.
type Pusher struct {
	UserID            string
	Localpart         string
	DeviceID          string
	Kind              string
	AppID             string
	PushKey           string
	AppDisplayName    string
	DeviceDisplayName string
	ProfileTag        string
	Lang              string
	Data              json.RawMessage
	// PushKeyTS is when the pushkey was first set, in milliseconds.
	PushKeyTS int64
	// DeliveredPos is the events stream position up to which notifications were sent.
	DeliveredPos int64
	// Failures and RetryAtTS are the back-off after the push gateway failed.
	Failures  int64
	RetryAtTS int64
}

const pusherColumns = `user_id, localpart, device_id, kind, app_id, pushkey, app_display_name, device_display_name,
	profile_tag, lang, data, pushkey_ts, delivered_pos, failures, retry_at_ts`

// SetPusher creates or updates the pusher (p.UserID, p.AppID, p.PushKey); an updated pusher
// keeps its pushkey_ts and delivery progress. Unless keepOthers (the request's "append"),
// pushers of other users with the same app id and pushkey are deleted, as the spec asks.
func (tx *Tx) SetPusher(ctx context.Context, p Pusher, keepOthers bool) error {
	if !keepOthers {
		if _, err := tx.Exec(ctx, `DELETE FROM pushers WHERE app_id = $1 AND pushkey = $2 AND user_id <> $3`,
			p.AppID, p.PushKey, p.UserID); err != nil {
			return fmt.Errorf("storage: replacing pushers: %w", err)
		}
	}
	_, err := tx.Exec(ctx, `INSERT INTO pushers (`+pusherColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, 0)
		ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET localpart = excluded.localpart,
			device_id = excluded.device_id, kind = excluded.kind, app_display_name = excluded.app_display_name,
			device_display_name = excluded.device_display_name, profile_tag = excluded.profile_tag,
			lang = excluded.lang, data = excluded.data`,
		p.UserID, p.Localpart, p.DeviceID, p.Kind, p.AppID, p.PushKey, p.AppDisplayName, p.DeviceDisplayName,
		p.ProfileTag, p.Lang, string(p.Data), p.PushKeyTS, p.DeliveredPos)
	if err != nil {
		return fmt.Errorf("storage: setting a pusher: %w", err)
	}
	return nil
}

// DeletePusher deletes one pusher of a user; deleting one that does not exist is no error.
func (tx *Tx) DeletePusher(ctx context.Context, userID, appID, pushKey string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3`,
		userID, appID, pushKey); err != nil {
		return fmt.Errorf("storage: deleting a pusher: %w", err)
	}
	return nil
}

// DeleteUserPushers deletes every pusher of a user, for account deactivation (their devices
// take their pushers with them too).
func (tx *Tx) DeleteUserPushers(ctx context.Context, userID string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM pushers WHERE user_id = $1`, userID); err != nil {
		return fmt.Errorf("storage: deleting pushers: %w", err)
	}
	return nil
}

// PushersOfUser returns a user's pushers, oldest first.
func PushersOfUser(ctx context.Context, r Reader, userID string) ([]Pusher, error) {
	return queryPushers(ctx, r, `SELECT `+pusherColumns+` FROM pushers WHERE user_id = $1 ORDER BY pushkey_ts, app_id, pushkey`, userID)
}

// AllPushers returns every pusher of kind, for the delivery worker's start.
func AllPushers(ctx context.Context, r Reader, kind string) ([]Pusher, error) {
	return queryPushers(ctx, r, `SELECT `+pusherColumns+` FROM pushers WHERE kind = $1`, kind)
}

// GetPusher returns one pusher; ErrNotFound if it is gone.
func GetPusher(ctx context.Context, r Reader, userID, appID, pushKey string) (Pusher, error) {
	ps, err := queryPushers(ctx, r, `SELECT `+pusherColumns+` FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3`,
		userID, appID, pushKey)
	if err != nil {
		return Pusher{}, err
	}
	if len(ps) == 0 {
		return Pusher{}, fmt.Errorf("storage: pusher: %w", ErrNotFound)
	}
	return ps[0], nil
}

func queryPushers(ctx context.Context, r Reader, query string, args ...any) ([]Pusher, error) {
	rows, err := r.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("storage: reading pushers: %w", err)
	}
	defer rows.Close()
	var out []Pusher
	for rows.Next() {
		var (
			p    Pusher
			data string
		)
		if err := rows.Scan(&p.UserID, &p.Localpart, &p.DeviceID, &p.Kind, &p.AppID, &p.PushKey, &p.AppDisplayName,
			&p.DeviceDisplayName, &p.ProfileTag, &p.Lang, &data, &p.PushKeyTS, &p.DeliveredPos, &p.Failures, &p.RetryAtTS); err != nil {
			return nil, fmt.Errorf("storage: reading pushers: %w", err)
		}
		p.Data = json.RawMessage(data)
		out = append(out, p)
	}
	return out, rows.Err()
}

// SetPusherProgress records a pusher's delivery progress and back-off. A pusher deleted in
// the meantime stays deleted.
func (tx *Tx) SetPusherProgress(ctx context.Context, userID, appID, pushKey string, deliveredPos, failures, retryAtTS int64) error {
	_, err := tx.Exec(ctx, `UPDATE pushers SET delivered_pos = $4, failures = $5, retry_at_ts = $6
		WHERE user_id = $1 AND app_id = $2 AND pushkey = $3`, userID, appID, pushKey, deliveredPos, failures, retryAtTS)
	if err != nil {
		return fmt.Errorf("storage: storing pusher progress: %w", err)
	}
	return nil
}
