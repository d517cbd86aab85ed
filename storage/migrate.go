package storage

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// Migrations are files in migrations/ named NNNN_name.sql, or, when the two databases need
// different SQL, a pair NNNN_name.sqlite.sql and NNNN_name.postgres.sql. Each is applied once,
// in version order, in its own transaction, and recorded in schema_migrations.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

func embeddedMigrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return sub
}

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+?)(?:\.(sqlite|postgres))?\.sql$`)

type migration struct {
	version int
	name    string
	sql     string
}

// schemaMigrations holds one row per applied migration.
// Personal data: none. Deleted: never; it lives and dies with the database.
const schemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version BIGINT PRIMARY KEY,
	name TEXT NOT NULL,
	applied_ts BIGINT NOT NULL
)`

// migrationLockKey is an arbitrary constant: with PostgreSQL, processes starting together
// take this advisory lock so that each migration is applied by exactly one of them.
const migrationLockKey = 0x6d79656c696e // "myelin"

// loadMigrations reads the migrations for dialect d from fsys, sorted by version. It checks
// the files of both dialects, so that a half-written pair fails on either backend.
func loadMigrations(fsys fs.FS, d Dialect) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("storage: reading migrations: %w", err)
	}
	type files struct {
		name                     string
		common, sqlite, postgres string // file names
	}
	byVersion := map[int]*files{}
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			return nil, fmt.Errorf("storage: migration file %q is not named NNNN_name.sql, NNNN_name.sqlite.sql or NNNN_name.postgres.sql", e.Name())
		}
		version, _ := strconv.Atoi(m[1])
		if version == 0 {
			return nil, fmt.Errorf("storage: migration file %q: versions start at 0001", e.Name())
		}
		f := byVersion[version]
		if f == nil {
			f = &files{name: m[2]}
			byVersion[version] = f
		}
		if f.name != m[2] {
			return nil, fmt.Errorf("storage: migration version %04d has two names, %q and %q", version, f.name, m[2])
		}
		slot := map[string]*string{"": &f.common, "sqlite": &f.sqlite, "postgres": &f.postgres}[m[3]]
		*slot = e.Name()
	}

	var out []migration
	for version, f := range byVersion {
		if f.common != "" && (f.sqlite != "" || f.postgres != "") {
			return nil, fmt.Errorf("storage: migration %04d has both a shared file and a per-dialect file", version)
		}
		if f.common == "" && (f.sqlite == "" || f.postgres == "") {
			return nil, fmt.Errorf("storage: migration %04d needs both a .sqlite.sql and a .postgres.sql file", version)
		}
		file := f.common
		if file == "" {
			file = d.Pick(f.sqlite, f.postgres)
		}
		text, err := fs.ReadFile(fsys, file)
		if err != nil {
			return nil, fmt.Errorf("storage: reading migration %s: %w", file, err)
		}
		out = append(out, migration{version: version, name: f.name, sql: string(text)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	return out, nil
}

// migrate applies every migration in fsys that the database has not recorded yet.
func (db *DB) migrate(ctx context.Context, fsys fs.FS) error {
	migrations, err := loadMigrations(fsys, db.dialect)
	if err != nil {
		return err
	}
	newest := 0
	if len(migrations) > 0 {
		newest = migrations[len(migrations)-1].version
	}
	if err := db.WithTx(ctx, func(tx *Tx) error {
		if err := lockMigrations(ctx, tx); err != nil {
			return err
		}
		if err := tx.execScript(ctx, schemaMigrations); err != nil {
			return fmt.Errorf("storage: creating schema_migrations: %w", err)
		}
		_, err := appliedMigrations(ctx, tx, newest)
		return err
	}); err != nil {
		return err
	}
	for _, m := range migrations {
		if err := db.WithTx(ctx, func(tx *Tx) error {
			if err := lockMigrations(ctx, tx); err != nil {
				return err
			}
			// Read again under the lock: another process may have applied it meanwhile.
			applied, err := appliedMigrations(ctx, tx, newest)
			if err != nil || applied[m.version] {
				return err
			}
			if err := tx.execScript(ctx, m.sql); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_ts) VALUES ($1, $2, $3)`,
				m.version, m.name, time.Now().UnixMilli())
			return err
		}); err != nil {
			return fmt.Errorf("storage: applying migration %04d_%s: %w", m.version, m.name, err)
		}
	}
	return nil
}

func lockMigrations(ctx context.Context, tx *Tx) error {
	if tx.Dialect() != Postgres {
		return nil // BEGIN IMMEDIATE already holds SQLite's one write lock
	}
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLockKey))
	return err
}

// appliedMigrations returns the recorded versions, refusing a database that has one newer
// than newest, the binary's newest migration.
func appliedMigrations(ctx context.Context, r Reader, newest int) (map[int]bool, error) {
	rows, err := r.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return nil, fmt.Errorf("storage: reading schema_migrations: %w", err)
	}
	defer rows.Close()
	applied := map[int]bool{}
	highest := 0
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		applied[v] = true
		highest = max(highest, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if highest > newest {
		return nil, fmt.Errorf("%w: the database is at schema version %d but this binary knows versions up to %d; run a newer myelin or restore a backup taken before the upgrade",
			ErrSchemaTooNew, highest, newest)
	}
	return applied, nil
}
