// Package storagetest gives every storage test a fresh database on each backend: SQLite always,
// and PostgreSQL when MYELIN_TEST_POSTGRES holds a connection string to a server where the user
// may create databases, e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable.
package storagetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"

	"myelin/storage"
)

// PostgresEnv names the variable holding the admin connection string for PostgreSQL tests.
const PostgresEnv = "MYELIN_TEST_POSTGRES"

var logSkipOnce sync.Once

// ForEachBackend runs fn as a subtest per backend ("sqlite", "postgres"), each with a fresh,
// migrated database that is closed and removed when the subtest ends.
func ForEachBackend(t *testing.T, fn func(t *testing.T, db *storage.DB)) {
	t.Helper()
	ForEachConfig(t, func(t *testing.T, cfg storage.Config) {
		fn(t, open(t, cfg))
	})
}

// ForEachConfig is ForEachBackend for tests that open, close and reopen the database
// themselves: fn gets the Config of a fresh, empty database on each backend.
func ForEachConfig(t *testing.T, fn func(t *testing.T, cfg storage.Config)) {
	t.Helper()
	for _, d := range backends(t) {
		t.Run(d.String(), func(t *testing.T) { fn(t, NewConfig(t, d)) })
	}
}

// OpenTestDB opens a fresh, migrated database on backend d, closed and removed at the end of
// the test. PostgreSQL is skipped when MYELIN_TEST_POSTGRES is unset, since the test asked for
// it by name.
func OpenTestDB(t testing.TB, d storage.Dialect) *storage.DB {
	t.Helper()
	return open(t, NewConfig(t, d))
}

// NewConfig creates a fresh, empty database on backend d and returns its Config. The database
// is removed at the end of the test; the caller closes what it opens.
func NewConfig(t testing.TB, d storage.Dialect) storage.Config {
	t.Helper()
	switch d {
	case storage.SQLite:
		return storage.Config{SQLitePath: filepath.Join(t.TempDir(), "myelin.db")}
	case storage.Postgres:
		admin := os.Getenv(PostgresEnv)
		if admin == "" {
			t.Skipf("%s is not set; skipping PostgreSQL", PostgresEnv)
		}
		return storage.Config{URL: createPostgresDatabase(t, admin)}
	default:
		t.Fatalf("storagetest: unknown backend %v", d)
		return storage.Config{}
	}
}

func backends(t *testing.T) []storage.Dialect {
	if os.Getenv(PostgresEnv) == "" {
		logSkipOnce.Do(func() { t.Logf("%s is not set; storage tests run on SQLite only", PostgresEnv) })
		return []storage.Dialect{storage.SQLite}
	}
	return []storage.Dialect{storage.SQLite, storage.Postgres}
}

func open(t testing.TB, cfg storage.Config) *storage.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := storage.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("storagetest: opening the test database: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("storagetest: closing the test database: %v", err)
		}
	})
	return db
}

// createPostgresDatabase creates myelin_test_<random> through the admin connection and returns
// the URL of the new database. An unreachable server fails the test: CI set the variable
// because it expects PostgreSQL to be tested.
func createPostgresDatabase(t testing.TB, adminURL string) string {
	t.Helper()
	u, err := url.Parse(adminURL)
	if err != nil {
		t.Fatalf("storagetest: %s is not a URL", PostgresEnv) // the value may hold a password
	}
	admin, err := sql.Open("pgx", adminURL)
	if err != nil {
		t.Fatalf("storagetest: %s: %v", PostgresEnv, err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var random [8]byte
	_, _ = rand.Read(random[:])
	name := "myelin_test_" + hex.EncodeToString(random[:])
	// The name is ours and plain ASCII, so it needs no quoting.
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("storagetest: creating PostgreSQL database via %s: %v", PostgresEnv, err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", adminURL)
		if err != nil {
			t.Errorf("storagetest: dropping %s: %v", name, err)
			return
		}
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("storagetest: dropping %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}
