// Package storage is Myelin's one storage layer. It opens SQLite or PostgreSQL, applies the
// embedded migrations, and runs every query through one code path for both databases: SQL is
// written once with $1 placeholders, and where a statement must differ, Dialect.Pick keeps both
// forms side by side.
//
// Writes happen only inside WithTx. With SQLite they go through a single writer connection, so
// a nested WithTx inside fn waits for itself until its context ends: pass the *Tx down instead.
// Reads outside a transaction (DB.Query, DB.QueryRow) use a separate pool of read-only
// connections and do not see the writes of a transaction that has not committed yet.
package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync/atomic"
)

// Config says which database to open and how.
type Config struct {
	// URL selects the backend: "" or "sqlite:<path>" (also "sqlite://<path>") for SQLite,
	// "postgres://..." or "postgresql://..." for PostgreSQL.
	URL string
	// SQLitePath is the SQLite database file used when URL is empty.
	SQLitePath string
	// Synchronous is SQLite's PRAGMA synchronous: "normal" (the default) survives a process
	// crash but may lose the last transactions on power loss; "full" survives power loss too.
	Synchronous string
	// MaxOpenConns is the PostgreSQL pool size; 0 means 20.
	MaxOpenConns int
}

const defaultPostgresConns = 20

// DB is an open database with its schema migrated to the binary's newest version.
type DB struct {
	dialect Dialect
	// writer takes every transaction. With SQLite it is a pool of exactly one connection;
	// with PostgreSQL it is the same pool as reader.
	writer *sql.DB
	// reader serves reads outside transactions. With SQLite its connections are query_only.
	reader *sql.DB
	// tokens caches the owners of access tokens (tokencache.go).
	tokens accessTokenCache
	// pushDeletions counts the committed transactions that deleted push actions
	// (PushActionDeletions).
	pushDeletions atomic.Uint64
	// ignoreListChanges counts the committed transactions that changed or deleted an
	// m.ignored_user_list (IgnoreListChanges).
	ignoreListChanges atomic.Uint64
	// ignoreLists caches ignore lists between their changes (IgnoredUserListContent).
	ignoreLists ignoreListCache
	// checkpoints folds SQLite's write-ahead log back in the background (checkpoint.go); nil
	// with PostgreSQL.
	checkpoints *checkpointer
	// positions are the stream positions SQLite's writer committed last (streams.go); nil with
	// PostgreSQL.
	positions *streamPositionCache
}

// Open opens the database cfg names, creating it if needed, and applies pending migrations.
// A database whose schema is newer than this binary is refused with ErrSchemaTooNew.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	return open(ctx, cfg, embeddedMigrations())
}

// open is Open, applying the migrations found in migrations.
func open(ctx context.Context, cfg Config, migrations fs.FS) (*DB, error) {
	dialect, target, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	var db *DB
	switch dialect {
	case SQLite:
		sync, err := sqliteSynchronous(cfg.Synchronous)
		if err != nil {
			return nil, err
		}
		db, err = openSQLite(ctx, target, sync)
		if err != nil {
			return nil, err
		}
	case Postgres:
		conns := cfg.MaxOpenConns
		if conns <= 0 {
			conns = defaultPostgresConns
		}
		db, err = openPostgres(ctx, target, conns)
		if err != nil {
			return nil, err
		}
	}
	if err := db.migrate(ctx, migrations); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return db, nil
}

// resolve returns the backend and its target: a file path for SQLite, the URL for PostgreSQL.
func (c Config) resolve() (Dialect, string, error) {
	u := strings.TrimSpace(c.URL)
	switch {
	case u == "":
		if c.SQLitePath == "" {
			return 0, "", errors.New("storage: no database configured: set a URL or an SQLite path")
		}
		return SQLite, c.SQLitePath, nil
	case strings.HasPrefix(u, "sqlite:"):
		path := strings.TrimPrefix(u, "sqlite:")
		// sqlite:///abs/path and sqlite://rel/path are both common spellings.
		path = strings.TrimPrefix(path, "//")
		if path == "" {
			return 0, "", errors.New("storage: sqlite URL has no path")
		}
		return SQLite, path, nil
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		return Postgres, u, nil
	default:
		// The URL may hold a password, so it is not repeated in the error.
		return 0, "", errors.New(`storage: unsupported database URL: want "sqlite:<path>", "postgres://..." or "postgresql://..."`)
	}
}

// Dialect reports which database this is, for statements that must differ.
func (db *DB) Dialect() Dialect { return db.dialect }

// Close closes every connection. With SQLite it first folds the write-ahead log back into the
// database file, so that a stopped server leaves one self-contained file behind.
func (db *DB) Close() error {
	if db.dialect != SQLite {
		return db.writer.Close()
	}
	errReader := errors.Join(db.checkpoints.close(), db.reader.Close())
	// Readers are closed first: a checkpoint cannot truncate the log under an open snapshot.
	_, errCheckpoint := db.writer.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	if errCheckpoint != nil {
		errCheckpoint = fmt.Errorf("storage: checkpointing the write-ahead log: %w", errCheckpoint)
	}
	return errors.Join(errReader, errCheckpoint, db.writer.Close())
}

// Query runs a read on the reader pool.
func (db *DB) Query(ctx context.Context, query string, args ...any) (*Rows, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows, err := db.reader.QueryContext(db.dialect.statementContext(ctx), db.dialect.rebind(query), args...)
	if err != nil {
		return nil, db.dialect.mapErr(err)
	}
	return &Rows{rows: rows, dialect: db.dialect}, nil
}

// QueryRow runs a read that returns at most one row on the reader pool. Scan returns
// ErrNotFound when there is no row.
func (db *DB) QueryRow(ctx context.Context, query string, args ...any) *Row {
	return &Row{row: db.reader.QueryRowContext(db.dialect.statementContext(ctx), db.dialect.rebind(query), args...), dialect: db.dialect}
}

var _ Reader = (*DB)(nil)
