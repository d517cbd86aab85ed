package storage

import (
	"context"
	"errors"
	"fmt"
)

// NextStreamPosition allocates the next position on stream, starting at 1. The row stays
// locked until the transaction ends, so transactions on one stream commit in the order of
// their positions: a reader never sees position n+1 committed while n is still pending.
func (tx *Tx) NextStreamPosition(ctx context.Context, stream string) (int64, error) {
	var pos int64
	// An UPDATE first: the stream's row nearly always exists, and an upsert costs SQLite a
	// failed insert before its update.
	err := tx.QueryRow(ctx, `UPDATE stream_positions SET pos = pos + 1 WHERE stream = $1 RETURNING pos`, stream).Scan(&pos)
	if errors.Is(err, ErrNotFound) {
		err = tx.QueryRow(ctx, `INSERT INTO stream_positions (stream, pos) VALUES ($1, 1)
			ON CONFLICT (stream) DO UPDATE SET pos = stream_positions.pos + 1
			RETURNING pos`, stream).Scan(&pos)
	}
	if err != nil {
		return 0, fmt.Errorf("storage: next position on stream %q: %w", stream, err)
	}
	return pos, nil
}

// CurrentStreamPositions returns the last position allocated on each of streams, in their
// order, 0 for a stream with none yet: one read where a /sync would make one per stream.
func CurrentStreamPositions(ctx context.Context, r Reader, streams ...string) ([]int64, error) {
	out := make([]int64, len(streams))
	rows, err := r.Query(ctx, `SELECT stream, pos FROM stream_positions WHERE stream IN (`+placeholders(1, len(streams))+`)`, anys(streams)...)
	if err != nil {
		return nil, fmt.Errorf("storage: stream positions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			stream string
			pos    int64
		)
		if err := rows.Scan(&stream, &pos); err != nil {
			return nil, err
		}
		for i, s := range streams {
			if s == stream {
				out[i] = pos
			}
		}
	}
	return out, rows.Err()
}

// CurrentStreamPosition returns the last position allocated on stream, 0 if none yet.
func CurrentStreamPosition(ctx context.Context, r Reader, stream string) (int64, error) {
	var pos int64
	err := r.QueryRow(ctx, `SELECT pos FROM stream_positions WHERE stream = $1`, stream).Scan(&pos)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("storage: position of stream %q: %w", stream, err)
	}
	return pos, nil
}
