package storage_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"myelin/storage"
	"myelin/storage/storagetest"
)

func TestSQLiteReadersDoNotWaitForTheWriter(t *testing.T) {
	db := storagetest.OpenTestDB(t, storage.SQLite)
	ctx := context.Background()
	putMeta(t, db, "seen", "1")

	// Hold the writer inside an open transaction while readers read.
	err := db.WithTx(ctx, func(tx *storage.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO server_meta (key, value) VALUES ($1, $2)`, "pending", "1"); err != nil {
			return err
		}
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				var n int
				if err := db.QueryRow(rctx, `SELECT COUNT(*) FROM server_meta`).Scan(&n); err != nil {
					t.Errorf("read during a write: %v", err)
				} else if n != 1 {
					t.Errorf("read during a write saw %d rows; want 1 (the committed one)", n)
				}
			})
		}
		wg.Wait()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Readers and writers running side by side: each read sees a committed prefix.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		defer close(stop)
		for i := range 50 {
			putMeta(t, db, "k"+string(rune('a'+i%26))+string(rune('a'+i/26)), "v")
		}
	})
	for range 4 {
		wg.Go(func() {
			last := 0
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := countMeta(t, db)
				if n < last {
					t.Errorf("row count went back from %d to %d", last, n)
				}
				last = n
			}
		})
	}
	wg.Wait()
	if n := countMeta(t, db); n != 52 {
		t.Errorf("%d rows after the writes; want 52", n)
	}
}

func TestSQLiteReadersCannotWrite(t *testing.T) {
	db := storagetest.OpenTestDB(t, storage.SQLite)
	rows, err := db.Query(context.Background(), `INSERT INTO server_meta (key, value) VALUES ($1, $2) RETURNING key`, "k", "v")
	if err == nil {
		rows.Close()
		t.Fatal("a write through the reader pool succeeded; writes must go through WithTx")
	}
	if hasMeta(t, db, "k") {
		t.Error("the refused write left a row")
	}
}

func TestSQLiteFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "dir")
	path := filepath.Join(dir, "myelin.db")
	ctx := context.Background()
	db, err := storage.Open(ctx, storage.Config{URL: "sqlite:" + path, Synchronous: "full"})
	if err != nil {
		t.Fatal(err)
	}
	putMeta(t, db, "k", "v")
	for _, p := range []string{path, path + "-wal"} {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if mode := info.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %o; want 600", filepath.Base(p), mode)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Close folds the write-ahead log back, leaving one self-contained file.
	if info, err := os.Stat(path + "-wal"); err == nil && info.Size() > 0 {
		t.Errorf("after Close the WAL still holds %d bytes", info.Size())
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
}

func TestSQLiteConfigErrors(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []storage.Config{
		{SQLitePath: ":memory:"},
		{SQLitePath: filepath.Join(t.TempDir(), "x.db"), Synchronous: "off"},
		{URL: "mysql://localhost/db"},
	} {
		if db, err := storage.Open(ctx, cfg); err == nil {
			db.Close()
			t.Errorf("Open(%+v) succeeded; want an error", cfg)
		}
	}
}
