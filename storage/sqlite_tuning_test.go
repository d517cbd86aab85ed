package storage

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func openTestSQLite(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), Config{SQLitePath: filepath.Join(t.TempDir(), "myelin.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// The connect hooks apply the writer's and the readers' settings.
func TestSQLiteConnectionSettings(t *testing.T) {
	db := openTestSQLite(t)
	ctx := context.Background()
	for _, tt := range []struct {
		writer bool
		name   string
		want   int64
	}{
		{true, "wal_autocheckpoint", 8192},
		{true, "cache_size", -16384},
		{true, "temp_store", 2},
		{true, "journal_size_limit", 67108864},
		{false, "temp_store", 2},
	} {
		pool := db.reader
		if tt.writer {
			pool = db.writer
		}
		var got int64
		if err := pool.QueryRowContext(ctx, "PRAGMA "+tt.name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("writer=%v: PRAGMA %s = %d, want %d", tt.writer, tt.name, got, tt.want)
		}
	}
}

// A statement is reused from the connection's cache, so a query must not disturb another
// open query of the same text on the same connection.
func TestSQLiteStatementCacheNestedQuery(t *testing.T) {
	db := openTestSQLite(t)
	ctx := context.Background()
	const q = `SELECT value FROM server_meta WHERE key >= $1 ORDER BY key`
	err := db.WithTx(ctx, func(tx *Tx) error {
		for _, k := range []string{"a", "b", "c"} {
			if _, err := tx.Exec(ctx, `INSERT INTO server_meta (key, value) VALUES ($1, $2)`, k, k+"1"); err != nil {
				return err
			}
		}
		outer, err := tx.Query(ctx, q, "a")
		if err != nil {
			return err
		}
		defer outer.Close()
		var got []string
		for outer.Next() {
			var v string
			if err := outer.Scan(&v); err != nil {
				return err
			}
			var inner string
			if err := tx.QueryRow(ctx, q, "c").Scan(&inner); err != nil {
				return err
			}
			if inner != "c1" {
				t.Errorf("inner query = %q, want c1", inner)
			}
			got = append(got, v)
		}
		if err := outer.Err(); err != nil {
			return err
		}
		if len(got) != 3 || got[0] != "a1" || got[2] != "c1" {
			t.Errorf("outer query = %v, want [a1 b1 c1]", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The checkpointer folds the log back once enough transactions committed, on its own
// connection.
func TestSQLiteBackgroundCheckpoint(t *testing.T) {
	db := openTestSQLite(t)
	ctx := context.Background()
	for i := range checkpointCommits {
		err := db.WithTx(ctx, func(tx *Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO server_meta (key, value) VALUES ($1, 'v')`, fmt.Sprint("k", i))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for db.checkpoints.runs.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint after as many commits as checkpointCommits")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := db.checkpoints.failures.Load(); n != 0 {
		t.Fatalf("%d checkpoints failed", n)
	}
	// Everything committed is in the database file: a checkpoint now has nothing to copy.
	var busy, logFrames, copied int
	if err := db.checkpoints.conn.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logFrames, &copied); err != nil {
		t.Fatal(err)
	}
	if logFrames != copied {
		t.Fatalf("log of %d frames, %d copied", logFrames, copied)
	}
}
