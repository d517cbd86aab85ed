package storage

import (
	"errors"

	"github.com/mattn/go-sqlite3"
)

// sqliteSentinel returns the storage sentinel for an SQLite error, or nil.
func sqliteSentinel(err error) error {
	var e sqlite3.Error
	if !errors.As(err, &e) {
		return nil
	}
	switch e.ExtendedCode {
	case sqlite3.ErrConstraintUnique, sqlite3.ErrConstraintPrimaryKey:
		return ErrConflict
	case sqlite3.ErrConstraintForeignKey:
		return ErrForeignKey
	}
	return nil
}
