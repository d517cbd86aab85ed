package storage

import (
	"context"
	"database/sql"
	"fmt"
)

// Report kinds: what a content report is about.
const (
	ReportEvent = "event"
	ReportRoom  = "room"
	ReportUser  = "user"
)

// ContentReport is one report a user made to the server's administrators. The ids that do not
// apply to its Kind are empty; Score is nil when the reporter gave none.
type ContentReport struct {
	ID           string
	Kind         string
	Reporter     string
	RoomID       string
	EventID      string
	TargetUserID string
	Reason       string
	Score        *int64
	ReceivedTS   int64
}

// InsertContentReport stores a report.
func (tx *Tx) InsertContentReport(ctx context.Context, r ContentReport) error {
	var score sql.NullInt64
	if r.Score != nil {
		score = sql.NullInt64{Int64: *r.Score, Valid: true}
	}
	_, err := tx.Exec(ctx, `INSERT INTO content_reports
		(report_id, kind, reporter, room_id, event_id, target_user_id, reason, score, received_ts)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		r.ID, r.Kind, r.Reporter, r.RoomID, r.EventID, r.TargetUserID, r.Reason, score, r.ReceivedTS)
	if err != nil {
		return fmt.Errorf("storage: storing a content report: %w", err)
	}
	return nil
}

// ListContentReports returns the stored reports received at or after sinceTS, oldest first,
// at most limit of them (limit <= 0: all).
func ListContentReports(ctx context.Context, r Reader, sinceTS int64, limit int) ([]ContentReport, error) {
	q := `SELECT report_id, kind, reporter, room_id, event_id, target_user_id, reason, score, received_ts
		FROM content_reports WHERE received_ts >= $1 ORDER BY received_ts, report_id`
	args := []any{sinceTS}
	if limit > 0 {
		q += ` LIMIT $2`
		args = append(args, limit)
	}
	rows, err := r.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("storage: listing content reports: %w", err)
	}
	defer rows.Close()
	var out []ContentReport
	for rows.Next() {
		var c ContentReport
		var score sql.NullInt64
		if err := rows.Scan(&c.ID, &c.Kind, &c.Reporter, &c.RoomID, &c.EventID, &c.TargetUserID, &c.Reason, &score, &c.ReceivedTS); err != nil {
			return nil, fmt.Errorf("storage: reading a content report: %w", err)
		}
		if score.Valid {
			c.Score = &score.Int64
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// DeleteContentReportsBefore deletes the reports received before ts (retention) and returns
// how many went.
func (tx *Tx) DeleteContentReportsBefore(ctx context.Context, ts int64) (int64, error) {
	res, err := tx.Exec(ctx, `DELETE FROM content_reports WHERE received_ts < $1`, ts)
	if err != nil {
		return 0, fmt.Errorf("storage: expiring content reports: %w", err)
	}
	return res.RowsAffected()
}

// ErasedReporter stands for the reporter of a report whose author erased their account.
const ErasedReporter = "(erased)"

// EraseReportsOf forgets what an erased account wrote in its reports (account deactivation
// with erase): the reason and score go, and the reporter becomes ErasedReporter. What the
// report was about (kind, room, event, reported user) and when it came stay for the
// administrators: that someone reported an event is the server's moderation record, not the
// erased user's words. It returns how many reports were erased.
func (tx *Tx) EraseReportsOf(ctx context.Context, reporter string) (int64, error) {
	res, err := tx.Exec(ctx, `UPDATE content_reports SET reporter = $1, reason = '', score = NULL
		WHERE reporter = $2`, ErasedReporter, reporter)
	if err != nil {
		return 0, fmt.Errorf("storage: erasing the reports of a user: %w", err)
	}
	return res.RowsAffected()
}
