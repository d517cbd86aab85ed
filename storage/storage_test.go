package storage_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

func TestMigrationsAreAppliedAndRecorded(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		newest, count := storage.NewestMigration()
		var gotMax, gotCount int
		if err := db.QueryRow(ctx, `SELECT MAX(version), COUNT(*) FROM schema_migrations`).Scan(&gotMax, &gotCount); err != nil {
			t.Fatal(err)
		}
		if gotMax != newest || gotCount != count {
			t.Errorf("schema_migrations has max %d, count %d; want %d, %d", gotMax, gotCount, newest, count)
		}
		var name string
		var appliedTS int64
		if err := db.QueryRow(ctx, `SELECT name, applied_ts FROM schema_migrations WHERE version = $1`, 1).Scan(&name, &appliedTS); err != nil {
			t.Fatal(err)
		}
		if name != "init" || appliedTS <= 0 {
			t.Errorf("migration 1 recorded as %q at %d; want \"init\" at a positive timestamp", name, appliedTS)
		}
		// The tables of 0001 exist.
		for _, table := range []string{"server_meta", "stream_positions"} {
			var n int
			if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
				t.Errorf("table %s: %v", table, err)
			}
		}
	})
}

func TestReopenIsIdempotent(t *testing.T) {
	storagetest.ForEachConfig(t, func(t *testing.T, cfg storage.Config) {
		ctx := context.Background()
		db := mustOpen(t, cfg)
		putMeta(t, db, "server_name", "example.org")
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			db = mustOpen(t, cfg)
			var value string
			if err := db.QueryRow(ctx, `SELECT value FROM server_meta WHERE key = $1`, "server_name").Scan(&value); err != nil || value != "example.org" {
				t.Errorf("after reopening, server_name = %q, %v; want example.org", value, err)
			}
			_, count := storage.NewestMigration()
			var n int
			if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != count {
				t.Errorf("after reopening, %d migrations recorded (%v); want %d", n, err, count)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestNewerSchemaIsRefused(t *testing.T) {
	storagetest.ForEachConfig(t, func(t *testing.T, cfg storage.Config) {
		ctx := context.Background()
		db := mustOpen(t, cfg)
		const future = 999999
		if err := db.WithTx(ctx, func(tx *storage.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_ts) VALUES ($1, $2, $3)`, future, "from_the_future", 1)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}

		db, err := storage.Open(ctx, cfg)
		if err == nil {
			db.Close()
			t.Fatal("Open succeeded on a database with a newer schema")
		}
		if !errors.Is(err, storage.ErrSchemaTooNew) {
			t.Fatalf("Open: %v; want ErrSchemaTooNew", err)
		}
		newest, _ := storage.NewestMigration()
		for _, version := range []string{fmt.Sprint(future), fmt.Sprint(newest)} {
			if !strings.Contains(err.Error(), version) {
				t.Errorf("error %q does not name version %s", err, version)
			}
		}
	})
}

func TestWithTx(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		insert := func(key string) func(tx *storage.Tx) error {
			return func(tx *storage.Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO server_meta (key, value) VALUES ($1, $2)`, key, "v")
				return err
			}
		}

		t.Run("commit persists", func(t *testing.T) {
			if err := db.WithTx(ctx, insert("committed")); err != nil {
				t.Fatal(err)
			}
			if !hasMeta(t, db, "committed") {
				t.Error("committed row is missing")
			}
		})

		t.Run("error rolls back and is returned", func(t *testing.T) {
			errBoom := errors.New("boom")
			err := db.WithTx(ctx, func(tx *storage.Tx) error {
				if err := insert("rolled_back")(tx); err != nil {
					return err
				}
				// The transaction sees its own write before it is rolled back.
				if !hasMeta(t, tx, "rolled_back") {
					t.Error("the transaction does not see its own write")
				}
				return fmt.Errorf("wrapped: %w", errBoom)
			})
			if !errors.Is(err, errBoom) {
				t.Fatalf("WithTx = %v; want the callback's error", err)
			}
			if hasMeta(t, db, "rolled_back") {
				t.Error("rolled-back row is visible")
			}
		})

		t.Run("panic rolls back and keeps unwinding", func(t *testing.T) {
			func() {
				defer func() {
					if p := recover(); p != "kaboom" {
						t.Errorf("recovered %v; want the callback's panic", p)
					}
				}()
				_ = db.WithTx(ctx, func(tx *storage.Tx) error {
					if err := insert("panicked")(tx); err != nil {
						return err
					}
					panic("kaboom")
				})
			}()
			if hasMeta(t, db, "panicked") {
				t.Error("row of a panicked transaction is visible")
			}
			// The writer is free again (with SQLite it would otherwise stay locked).
			if err := db.WithTx(ctx, insert("after_panic")); err != nil {
				t.Fatal(err)
			}
		})

		t.Run("cancelled context", func(t *testing.T) {
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			err := db.WithTx(cctx, insert("cancelled"))
			if !errors.Is(err, context.Canceled) {
				t.Errorf("WithTx on a cancelled context = %v; want context.Canceled", err)
			}
		})
	})
}

func TestWithReadTxSeesOneSnapshot(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		putMeta(t, db, "a", "1")
		err := db.WithReadTx(ctx, func(r storage.Reader) error {
			before := countMeta(t, r)
			putMeta(t, db, "b", "2") // commits on the writer meanwhile
			if after := countMeta(t, r); after != before {
				t.Errorf("read transaction saw %d rows, then %d; want one snapshot", before, after)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n := countMeta(t, db); n != 2 {
			t.Errorf("after the read transaction, %d rows; want 2", n)
		}
	})
}

func TestErrorMapping(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		putMeta(t, db, "dup", "1")

		t.Run("duplicate key is ErrConflict", func(t *testing.T) {
			err := db.WithTx(ctx, func(tx *storage.Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO server_meta (key, value) VALUES ($1, $2)`, "dup", "2")
				return err
			})
			if !errors.Is(err, storage.ErrConflict) {
				t.Errorf("duplicate insert = %v; want ErrConflict", err)
			}
		})

		t.Run("no rows is ErrNotFound", func(t *testing.T) {
			var v string
			if err := db.QueryRow(ctx, `SELECT value FROM server_meta WHERE key = $1`, "absent").Scan(&v); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("DB.QueryRow = %v; want ErrNotFound", err)
			}
			err := db.WithTx(ctx, func(tx *storage.Tx) error {
				return tx.QueryRow(ctx, `SELECT value FROM server_meta WHERE key = $1`, "absent").Scan(&v)
			})
			if !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Tx.QueryRow = %v; want ErrNotFound", err)
			}
		})

		t.Run("missing parent is ErrForeignKey", func(t *testing.T) {
			err := db.WithTx(ctx, func(tx *storage.Tx) error {
				if _, err := tx.Exec(ctx, `CREATE TABLE test_child (id BIGINT PRIMARY KEY, meta_key TEXT NOT NULL REFERENCES server_meta (key))`); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `INSERT INTO test_child (id, meta_key) VALUES ($1, $2)`, 1, "absent")
				return err
			})
			if !errors.Is(err, storage.ErrForeignKey) {
				t.Errorf("insert with a missing parent = %v; want ErrForeignKey", err)
			}
		})

		t.Run("other errors pass through", func(t *testing.T) {
			_, err := db.Query(ctx, `SELECT nope FROM nowhere`)
			if err == nil || errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrConflict) {
				t.Errorf("bad SQL = %v; want a plain driver error", err)
			}
		})
	})
}

// SQLite accepts "$1" but numbers it by first appearance; the one code path must bind by number.
func TestPlaceholdersBindByNumber(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		var a, b, c string
		if err := db.QueryRow(ctx, `SELECT CAST($2 AS TEXT), CAST($1 AS TEXT), CAST($2 AS TEXT)`, "one", "two").Scan(&a, &b, &c); err != nil {
			t.Fatal(err)
		}
		if a != "two" || b != "one" || c != "two" {
			t.Errorf("SELECT $2, $1, $2 with (one, two) = %s, %s, %s; want two, one, two", a, b, c)
		}
		var lit string
		if err := db.QueryRow(ctx, `SELECT '$1' || CAST($1 AS TEXT)`, "x").Scan(&lit); err != nil || lit != "$1x" {
			t.Errorf("a $1 inside a string literal = %q, %v; want \"$1x\"", lit, err)
		}
	})
}

func TestDialectPick(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		var got string
		q := db.Dialect().Pick(`SELECT 'sqlite' WHERE sqlite_version() IS NOT NULL`, `SELECT 'postgres' WHERE version() IS NOT NULL`)
		if err := db.QueryRow(ctx, q).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != db.Dialect().String() {
			t.Errorf("Pick ran the %s form on %v", got, db.Dialect())
		}
	})
}

func mustOpen(t *testing.T, cfg storage.Config) *storage.DB {
	t.Helper()
	db, err := storage.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return db
}

func putMeta(t *testing.T, db *storage.DB, key, value string) {
	t.Helper()
	ctx := context.Background()
	if err := db.WithTx(ctx, func(tx *storage.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO server_meta (key, value) VALUES ($1, $2)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func hasMeta(t *testing.T, r storage.Reader, key string) bool {
	t.Helper()
	var v string
	err := r.QueryRow(context.Background(), `SELECT value FROM server_meta WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, storage.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

func countMeta(t *testing.T, r storage.Reader) int {
	t.Helper()
	var n int
	if err := r.QueryRow(context.Background(), `SELECT COUNT(*) FROM server_meta`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
