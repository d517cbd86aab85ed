package storage

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3" // registers "sqlite3", the driver without Myelin's hooks
)

// openWalBuf opens path as the storage writer does, through walBufVFS, with a tiny page cache
// so that big transactions spill frames into the log before they commit, and without automatic
// checkpoints so that the log keeps every frame written; and a reader on the default VFS, which
// sees only what reached the file.
func openWalBuf(t *testing.T, path string) (writer, reader *sql.DB) {
	t.Helper()
	if !registerWalBuf() {
		t.Fatal("the buffered-log VFS did not register")
	}
	db, err := sql.Open("sqlite3", path+"?_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate&vfs="+walBufVFS)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	mustExec(t, db, "PRAGMA cache_size = 8; PRAGMA wal_autocheckpoint = 0")
	r, err := sql.Open("sqlite3", path+"?_query_only=on")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return db, r
}

func mustExec(t *testing.T, db interface {
	Exec(string, ...any) (sql.Result, error)
}, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// walBufTotals is what the table t must hold: its row count and the sum of its n column.
type walBufTotals struct{ rows, sum int64 }

func readTotals(t *testing.T, db *sql.DB) walBufTotals {
	t.Helper()
	var got walBufTotals
	if err := db.QueryRow("SELECT count(*), coalesce(sum(n), 0) FROM t").Scan(&got.rows, &got.sum); err != nil {
		t.Fatal(err)
	}
	return got
}

// Every commit through the buffered log is in the log file when the commit returns: another
// connection reads it, and a copy of the files taken then (what a crash would leave) recovers
// every transaction with valid checksums. The workload takes every path of walbuf.c: small
// commits (gathered and written at the commit frame), transactions bigger than the buffer
// that spill frames before committing and then change spilled pages again (SQLite rewrites
// those frames and their checksums), a spilled transaction rolled back, and a log restarted
// after a checkpoint (its header written again at offset 0).
func TestWalBufCommitsReachTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "walbuf.db")
	w, r := openWalBuf(t, path)
	mustExec(t, w, "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL, v BLOB NOT NULL)")
	mustExec(t, w, "CREATE INDEX t_n ON t (n)")

	var want walBufTotals
	check := func(step string) {
		t.Helper()
		if got := readTotals(t, r); got != want {
			t.Fatalf("%s: another connection reads %+v, want %+v", step, got, want)
		}
	}
	blob := bytes.Repeat([]byte("m"), 900)
	insert := func(tx *sql.Tx, n int64) {
		t.Helper()
		if _, err := tx.Exec("INSERT INTO t (n, v) VALUES (?, ?)", n, blob); err != nil {
			t.Fatal(err)
		}
		want.rows++
		want.sum += n
	}
	small := func(count int) {
		t.Helper()
		for i := range count {
			tx, err := w.Begin()
			if err != nil {
				t.Fatal(err)
			}
			insert(tx, int64(i%7))
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			check("small commit")
		}
	}

	small(200)

	// A transaction of ~2 MB: it spills, and its update changes pages it spilled.
	tx, err := w.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		insert(tx, int64(i))
	}
	if _, err := tx.Exec("UPDATE t SET n = n + 1 WHERE id % 3 = 0"); err != nil {
		t.Fatal(err)
	}
	var updated int64
	if err := tx.QueryRow("SELECT count(*) FROM t WHERE id % 3 = 0").Scan(&updated); err != nil {
		t.Fatal(err)
	}
	want.sum += updated
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	check("big commit")
	crashCopy(t, path, want)

	// A spilled transaction rolled back: the next commits write over its frames.
	before := want
	tx, err = w.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1500 {
		insert(tx, int64(i))
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	want = before
	check("rollback")
	small(50)
	crashCopy(t, path, want)

	// A checkpoint that empties the log: the next commit restarts it from its header.
	mustExec(t, w, "PRAGMA wal_checkpoint(TRUNCATE)")
	small(100)

	crashCopy(t, path, want)
}

// crashCopy checks that a copy of the files as they are now (what a crash would leave) holds
// want in table t.
func crashCopy(t *testing.T, path string, want walBufTotals) {
	t.Helper()
	if got := readTotals(t, openCrashCopy(t, path)); got != want {
		t.Fatalf("after recovery the copy holds %+v, want %+v", got, want)
	}
}

// openCrashCopy copies the database and its log as they are, without the wal-index, which
// SQLite rebuilds from the log, checking every frame's checksum: what a crash would leave. It
// returns the copy, opened and checked intact.
func openCrashCopy(t *testing.T, path string) *sql.DB {
	t.Helper()
	crash := filepath.Join(t.TempDir(), "crash.db")
	for _, suffix := range []string{"", "-wal"} {
		copyFile(t, path+suffix, crash+suffix)
	}
	c, err := sql.Open("sqlite3", crash)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var integrity string
	if err := c.QueryRow("PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("integrity_check of the recovered copy: %q, %v", integrity, err)
	}
	return c
}

// Commits of every size from one page to about 120: wherever a commit's last frame falls
// relative to the pieces the buffer is written in (its header may be the last thing a full
// buffer holds, its page the first of the next), the commit is in the file when it returns.
func TestWalBufCommitsOfEverySize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "walbuf.db")
	w, r := openWalBuf(t, path)
	mustExec(t, w, "CREATE TABLE b (id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
	for i := 1; i <= 120; i++ {
		// Each step adds about one overflow page to the commit.
		v := bytes.Repeat([]byte{byte(i)}, i*4000)
		if _, err := w.Exec("INSERT INTO b (id, v) VALUES (?, ?)", i, v); err != nil {
			t.Fatal(err)
		}
		var got []byte
		if err := r.QueryRow("SELECT v FROM b WHERE id = ?", i).Scan(&got); err != nil {
			t.Fatalf("commit %d: another connection: %v", i, err)
		}
		if !bytes.Equal(got, v) {
			t.Fatalf("commit %d: another connection reads %d bytes, not the %d written", i, len(got), len(v))
		}
	}
	var got walBufTotals
	if err := openCrashCopy(t, path).QueryRow("SELECT count(*), coalesce(sum(length(v)), 0) FROM b").Scan(&got.rows, &got.sum); err != nil {
		t.Fatal(err)
	}
	if got.rows != 120 || got.sum != 4000*120*121/2 {
		t.Fatalf("after recovery the copy holds %d rows of %d bytes", got.rows, got.sum)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// The storage writer uses the buffered log: a small commit costs a write call or two, not two
// per page. Counted in /proc/self/io (Linux), which also counts the rest of the test binary,
// so the bound is loose.
func TestWalBufWritesACommitAtOnce(t *testing.T) {
	if _, err := os.Stat("/proc/self/io"); err != nil {
		t.Skip("no /proc/self/io on this system")
	}
	db := openTestSQLite(t)
	ctx := context.Background()
	const commits = 200
	start := writeCalls(t)
	for i := range commits {
		err := db.WithTx(ctx, func(tx *Tx) error {
			// Three B-trees of server_meta-like writes: a row and its index, enough pages
			// that two writes per page would show.
			_, err := tx.Exec(ctx, `INSERT INTO server_meta (key, value) VALUES ($1, $2)`, fmt.Sprint("walbuf-", i), strings.Repeat("v", 3000))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	perCommit := float64(writeCalls(t)-start) / commits
	if perCommit > 3 {
		t.Errorf("%.1f write calls per commit, want the log's frames written at once", perCommit)
	}
}

// writeCalls is this process's count of write system calls so far.
func writeCalls(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no syscw in /proc/self/io")
	return 0
}
