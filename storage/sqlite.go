package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/mattn/go-sqlite3"
)

// busyTimeoutMS is how long a connection waits for a lock before failing with SQLITE_BUSY.
// In WAL mode readers never wait for the writer; this covers checkpoints and a second process.
const busyTimeoutMS = 10000

// stmtCacheSize is how many prepared statements each connection keeps, keyed by query text.
// Without it every statement is compiled anew on every call, which costs as much as running
// it. The driver takes a statement out of the cache while it is in use, so a query that runs
// while another of the same text is still open gets a statement of its own.
const stmtCacheSize = 256

// Per-connection settings, applied by the connect hooks of the drivers registered below, so
// that a connection the pool reopens gets them too.
const (
	// The writer's page cache holds the hot index pages (16 MiB; a negative cache_size counts
	// KiB); a page it dropped is one read from the OS page cache away. It fills up to its size as
	// the database grows, so it is most of the server's resident memory: 64 MiB took the server
	// past 100 MB in a 12,000-message benchmark, with no gain in the room server's benchmarks.
	// Readers share the OS page cache and keep the default.
	writerPragmas = "PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY; " + secureDeletePragma + "; " +
		walAutocheckpointPragma
	readerPragmas = "PRAGMA temp_store = MEMORY"
)

// secureDeletePragma makes SQLite zero the space that deleted and overwritten rows leave in the
// database file, where it costs no extra I/O, so that a redacted message or an erased account does
// not linger in free pages. ("ON" would zero always, at a cost on every delete.)
const secureDeletePragma = "PRAGMA secure_delete = FAST"

// walAutocheckpointPragma sets how many pages the write-ahead log may hold before the
// committing connection folds it back into the database file. Every checkpoint syncs the
// log and the database file; SQLite's default of 1000 pages (4 MiB) pays those syncs every
// hundred or so messages. A larger log costs disk space, not durability: with
// synchronous=NORMAL a committed transaction survives a process crash either way.
//
// When readers keep the log from being reset, it grows past that; journal_size_limit then
// shrinks the file back once the log does restart, so a burst does not keep its disk space.
const walAutocheckpointPragma = "PRAGMA wal_autocheckpoint = 8192; PRAGMA journal_size_limit = 67108864"

var registerDrivers = sync.OnceFunc(func() {
	sql.Register(sqliteWriterDriver, &sqlite3.SQLiteDriver{ConnectHook: pragmaHook(writerPragmas)})
	sql.Register(sqliteReaderDriver, &sqlite3.SQLiteDriver{ConnectHook: pragmaHook(readerPragmas)})
})

const (
	sqliteWriterDriver = "myelin-sqlite3-writer"
	sqliteReaderDriver = "myelin-sqlite3-reader"
)

func pragmaHook(pragmas string) func(*sqlite3.SQLiteConn) error {
	return func(c *sqlite3.SQLiteConn) error {
		_, err := c.Exec(pragmas, nil)
		return err
	}
}

func sqliteSynchronous(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "normal":
		return "NORMAL", nil
	case "full":
		return "FULL", nil
	default:
		return "", fmt.Errorf("storage: sqlite synchronous must be \"normal\" or \"full\", not %q", s)
	}
}

func openSQLite(ctx context.Context, path, synchronous string) (*DB, error) {
	if path == ":memory:" || strings.HasPrefix(path, "file:") || strings.Contains(path, "?") {
		// The writer and the readers are separate connections and must share one file.
		return nil, fmt.Errorf("storage: sqlite path %q must be a plain file path", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("storage: creating the database directory: %w", err)
	}
	// The database holds personal data. SQLite gives its -wal and -shm files the mode of the
	// database file, so creating that one 0600 covers all three.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("storage: opening the database file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("storage: opening the database file: %w", err)
	}

	registerDrivers()
	common := fmt.Sprintf("_busy_timeout=%d&_foreign_keys=on&_synchronous=%s&_stmt_cache_size=%d", busyTimeoutMS, synchronous, stmtCacheSize)
	// BEGIN IMMEDIATE takes the write lock when the transaction starts, so a transaction that
	// read first can never fail to upgrade to a writer halfway through.
	writerDSN := path + "?" + common + "&_journal_mode=WAL&_txlock=immediate"
	if registerWalBuf() {
		writerDSN += "&vfs=" + walBufVFS
	}
	writer, err := sql.Open(sqliteWriterDriver, writerDSN)
	if err != nil {
		return nil, fmt.Errorf("storage: opening sqlite writer: %w", err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)

	var mode string
	if err := writer.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return nil, errors.Join(fmt.Errorf("storage: opening sqlite writer: %w", err), writer.Close())
	}
	if !strings.EqualFold(mode, "wal") {
		return nil, errors.Join(fmt.Errorf("storage: sqlite refused WAL mode (journal_mode is %q)", mode), writer.Close())
	}

	reader, err := sql.Open(sqliteReaderDriver, path+"?"+common+"&_query_only=on")
	if err != nil {
		return nil, errors.Join(fmt.Errorf("storage: opening sqlite readers: %w", err), writer.Close())
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	reader.SetMaxOpenConns(readers)
	reader.SetMaxIdleConns(readers)
	if err := reader.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("storage: opening sqlite readers: %w", err), reader.Close(), writer.Close())
	}
	ckpt, err := sql.Open(sqliteReaderDriver, path+"?"+common)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("storage: opening the sqlite checkpointer: %w", err), reader.Close(), writer.Close())
	}
	ckpt.SetMaxOpenConns(1)
	ckpt.SetMaxIdleConns(1)
	ckpt.SetConnMaxLifetime(0)
	ckpt.SetConnMaxIdleTime(0)
	return &DB{dialect: SQLite, writer: writer, reader: reader, checkpoints: startCheckpointer(ckpt),
		positions: &streamPositionCache{last: map[string]int64{}}}, nil
}
