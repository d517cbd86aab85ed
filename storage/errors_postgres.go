package storage

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// postgresSentinel returns the storage sentinel for a PostgreSQL error, or nil.
// Codes: https://www.postgresql.org/docs/current/errcodes-appendix.html
func postgresSentinel(err error) error {
	var e *pgconn.PgError
	if !errors.As(err, &e) {
		return nil
	}
	switch e.Code {
	case "23505": // unique_violation, which primary keys raise too
		return ErrConflict
	case "23503": // foreign_key_violation
		return ErrForeignKey
	}
	return nil
}
