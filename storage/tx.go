package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Reader is what a query function needs to read, so that it runs alike on the reader pool
// (*DB) and inside a transaction (*Tx), where it also sees that transaction's own writes.
type Reader interface {
	Query(ctx context.Context, query string, args ...any) (*Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) *Row
	Dialect() Dialect
}

// Tx is a read-write transaction. It is only valid inside the WithTx callback that received it.
type Tx struct {
	tx      *sql.Tx
	dialect Dialect
	// tokensChanged: a statement may have revoked access tokens; the token cache is emptied
	// after the commit (tokencache.go).
	tokensChanged bool
	// pushActionsDeleted: push actions were deleted; PushActionDeletions moves after the commit.
	pushActionsDeleted bool
	// ignoreListsChanged: an m.ignored_user_list was set or deleted; IgnoreListChanges moves
	// after the commit.
	ignoreListsChanged bool
	// positions are SQLite's committed stream positions (streams.go), nil with PostgreSQL;
	// allocated the positions this transaction allocated, by stream, published to positions
	// after the commit.
	positions *streamPositionCache
	allocated map[string]int64
}

var _ Reader = (*Tx)(nil)

// WithTx runs fn in a transaction on the writer: it commits when fn returns nil and rolls back
// when fn returns an error or panics (the panic then continues). The error from fn is returned
// unchanged; a failed commit is returned mapped to the storage sentinels.
//
// With SQLite only one WithTx runs at a time; do not call WithTx again inside fn.
func (db *DB) WithTx(ctx context.Context, fn func(tx *Tx) error) error {
	return db.withTx(ctx, db.writer, nil, fn)
}

// WithReadTx runs fn in a read-only transaction on the reader pool, so that several reads see
// one consistent snapshot of the database.
func (db *DB) WithReadTx(ctx context.Context, fn func(r Reader) error) error {
	// SQLite's readers are query_only and take snapshots anyway; PostgreSQL needs
	// REPEATABLE READ for one snapshot across statements.
	opts := &sql.TxOptions{ReadOnly: true}
	if db.dialect == Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	return db.withTx(ctx, db.reader, opts, func(tx *Tx) error { return fn(tx) })
}

func (db *DB) withTx(ctx context.Context, pool *sql.DB, opts *sql.TxOptions, fn func(tx *Tx) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	sqlTx, err := pool.BeginTx(db.dialect.statementContext(ctx), opts)
	if err != nil {
		return fmt.Errorf("storage: beginning a transaction: %w", db.dialect.mapErr(err))
	}
	committed := false
	defer func() {
		if committed {
			return
		}
		// Runs on error and on panic alike; a panic keeps unwinding after the rollback.
		if rbErr := sqlTx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) && err != nil {
			err = errors.Join(err, fmt.Errorf("storage: rolling back: %w", rbErr))
		}
	}()
	tx := &Tx{tx: sqlTx, dialect: db.dialect}
	if pool == db.writer {
		tx.positions = db.positions
	}
	if err := fn(tx); err != nil {
		return err
	}
	committed = true
	err = sqlTx.Commit()
	if tx.tokensChanged {
		// Also when the commit failed: whether it took effect may be unknown.
		db.invalidateAccessTokens()
	}
	if tx.pushActionsDeleted {
		db.pushDeletions.Add(1)
	}
	if tx.ignoreListsChanged {
		db.ignoreListChanges.Add(1)
	}
	if err != nil {
		return fmt.Errorf("storage: committing: %w", db.dialect.mapErr(err))
	}
	if tx.positions != nil && len(tx.allocated) > 0 {
		tx.positions.committed(tx.allocated)
	}
	if db.checkpoints != nil && pool == db.writer {
		db.checkpoints.committed()
	}
	return nil
}

// Dialect reports which database the transaction runs on.
func (tx *Tx) Dialect() Dialect { return tx.dialect }

// Exec runs a statement that returns no rows. PostgreSQL has no LastInsertId: use RETURNING.
func (tx *Tx) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	tx.noteStatement(query)
	res, err := tx.tx.ExecContext(tx.dialect.statementContext(ctx), tx.dialect.rebind(query), args...)
	if err != nil {
		return nil, tx.dialect.mapErr(err)
	}
	return res, nil
}

// Query runs a statement that returns rows, within the transaction.
func (tx *Tx) Query(ctx context.Context, query string, args ...any) (*Rows, error) {
	tx.noteStatement(query)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows, err := tx.tx.QueryContext(tx.dialect.statementContext(ctx), tx.dialect.rebind(query), args...)
	if err != nil {
		return nil, tx.dialect.mapErr(err)
	}
	return &Rows{rows: rows, dialect: tx.dialect}, nil
}

// QueryRow runs a statement that returns at most one row, within the transaction. Scan
// returns ErrNotFound when there is no row.
func (tx *Tx) QueryRow(ctx context.Context, query string, args ...any) *Row {
	tx.noteStatement(query)
	return &Row{row: tx.tx.QueryRowContext(tx.dialect.statementContext(ctx), tx.dialect.rebind(query), args...), dialect: tx.dialect}
}

// noteStatement records a statement that may revoke access tokens (statementChangesTokens),
// whether it comes through Exec or, with RETURNING, through Query or QueryRow.
func (tx *Tx) noteStatement(query string) {
	if !tx.tokensChanged && statementChangesTokens(query) {
		tx.tokensChanged = true
	}
}

// execScript runs SQL text that may hold several statements and no arguments, as migrations
// do. It bypasses rebind, which is for argument placeholders only.
func (tx *Tx) execScript(ctx context.Context, script string) error {
	_, err := tx.tx.ExecContext(tx.dialect.statementContext(ctx), script)
	return tx.dialect.mapErr(err)
}

// Rows is the result of a query; its errors are mapped to the storage sentinels.
// Always Close it (or read it to the end).
type Rows struct {
	rows    *sql.Rows
	dialect Dialect
}

func (r *Rows) Next() bool                 { return r.rows.Next() }
func (r *Rows) Scan(dest ...any) error     { return r.dialect.mapErr(r.rows.Scan(dest...)) }
func (r *Rows) Err() error                 { return r.dialect.mapErr(r.rows.Err()) }
func (r *Rows) Close() error               { return r.dialect.mapErr(r.rows.Close()) }
func (r *Rows) Columns() ([]string, error) { return r.rows.Columns() }

// Row is the result of QueryRow; Scan returns ErrNotFound when there was no row.
type Row struct {
	row     *sql.Row
	dialect Dialect
}

func (r *Row) Scan(dest ...any) error { return r.dialect.mapErr(r.row.Scan(dest...)) }
func (r *Row) Err() error             { return r.dialect.mapErr(r.row.Err()) }
