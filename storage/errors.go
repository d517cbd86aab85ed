package storage

import (
	"database/sql"
	"errors"
	"fmt"
)

// Errors callers test with errors.Is. Driver errors are translated into these at the query
// boundary (Dialect.mapErr), by one small file per backend; the driver's error stays wrapped
// alongside for logs.
var (
	// ErrNotFound: the query matched no row.
	ErrNotFound = errors.New("storage: not found")
	// ErrConflict: a unique or primary-key constraint refused the write.
	ErrConflict = errors.New("storage: conflicts with an existing row")
	// ErrForeignKey: the write refers to a row that does not exist, or removes one still referred to.
	ErrForeignKey = errors.New("storage: foreign key violation")
	// ErrSchemaTooNew: the database was migrated by a newer binary than this one.
	ErrSchemaTooNew = errors.New("storage: database schema is newer than this binary")
)

// mapErr translates a driver error into a storage sentinel, wrapping both.
func (d Dialect) mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	var sentinel error
	switch d {
	case SQLite:
		sentinel = sqliteSentinel(err)
	case Postgres:
		sentinel = postgresSentinel(err)
	}
	if sentinel == nil {
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}
