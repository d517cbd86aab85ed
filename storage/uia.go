package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// UIASession is a User-Interactive Authentication session in progress.
type UIASession struct {
	ID        string
	Operation string // what the session authenticates, e.g. "POST /register"
	Localpart string // the user it authenticates; empty until known (registration)
	Completed []string
	Data      map[string]string // what completed stages established
	CreatedTS int64
	ExpiresTS int64
}

// InsertUIASession starts a session, first purging every session expired at s.CreatedTS.
func (tx *Tx) InsertUIASession(ctx context.Context, s UIASession) error {
	if _, err := tx.Exec(ctx, `DELETE FROM uia_sessions WHERE expires_ts <= $1`, s.CreatedTS); err != nil {
		return fmt.Errorf("storage: purging expired auth sessions: %w", err)
	}
	completed, data, err := encodeUIA(s)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO uia_sessions (session_id, operation, localpart, completed, data, created_ts, expires_ts)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, s.ID, s.Operation, s.Localpart, completed, data, s.CreatedTS, s.ExpiresTS)
	if err != nil {
		return fmt.Errorf("storage: inserting auth session: %w", err)
	}
	return nil
}

// GetUIASession returns a session that has not expired at now; ErrNotFound otherwise.
func GetUIASession(ctx context.Context, r Reader, id string, now int64) (UIASession, error) {
	var (
		s               UIASession
		completed, data string
	)
	err := r.QueryRow(ctx, `SELECT session_id, operation, localpart, completed, data, created_ts, expires_ts
		FROM uia_sessions WHERE session_id = $1 AND expires_ts > $2`, id, now).
		Scan(&s.ID, &s.Operation, &s.Localpart, &completed, &data, &s.CreatedTS, &s.ExpiresTS)
	if err != nil {
		return UIASession{}, err
	}
	if err := json.Unmarshal([]byte(completed), &s.Completed); err != nil {
		return UIASession{}, fmt.Errorf("storage: auth session %s: %w", id, err)
	}
	if err := json.Unmarshal([]byte(data), &s.Data); err != nil {
		return UIASession{}, fmt.Errorf("storage: auth session %s: %w", id, err)
	}
	return s, nil
}

// UpdateUIASession records a session's completed stages, data and bound user.
func (tx *Tx) UpdateUIASession(ctx context.Context, s UIASession) error {
	completed, data, err := encodeUIA(s)
	if err != nil {
		return err
	}
	res, err := tx.Exec(ctx, `UPDATE uia_sessions SET completed = $2, data = $3, localpart = $4 WHERE session_id = $1`,
		s.ID, completed, data, s.Localpart)
	if err != nil {
		return fmt.Errorf("storage: updating auth session: %w", err)
	}
	return requireRow(res)
}

// DeleteUIASession ends a session.
func (tx *Tx) DeleteUIASession(ctx context.Context, id string) error {
	_, err := tx.Exec(ctx, `DELETE FROM uia_sessions WHERE session_id = $1`, id)
	return err
}

func encodeUIA(s UIASession) (completed, data string, err error) {
	c, err := json.Marshal(append([]string{}, s.Completed...))
	if err != nil {
		return "", "", err
	}
	if s.Data == nil {
		s.Data = map[string]string{}
	}
	d, err := json.Marshal(s.Data)
	return string(c), string(d), err
}

func ignoreNotFound(err error) error {
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}
