package storage

import (
	"database/sql"
	"sync/atomic"
	"time"
)

// Background checkpoints (SQLite, issue 9). In WAL mode every commit appends pages to the
// write-ahead log, and a checkpoint copies them back into the database file and syncs both.
// SQLite runs that checkpoint inside the commit that takes the log past wal_autocheckpoint
// pages: with ~13 pages per message, one send in six hundred waited 40 to 80 ms for it, the
// longest waits of the send benchmark. The checkpointer runs PASSIVE checkpoints on a connection
// of its own instead, which neither readers nor the writer wait for. The writer's
// wal_autocheckpoint stays as the backstop should the checkpointer fall behind.
const (
	// checkpointCommits: a checkpoint once this many transactions committed since the last.
	checkpointCommits = 300
	// checkpointIdle: and once this long has passed since the last with any commit since, so
	// that a quiet server folds its log back too.
	checkpointIdle = 5 * time.Second
)

// checkpointer runs the background checkpoints of a SQLite database.
type checkpointer struct {
	conn    *sql.DB
	commits atomic.Int64
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	// runs and failures count the checkpoints run and those that failed, for tests.
	runs, failures atomic.Int64
}

func startCheckpointer(conn *sql.DB) *checkpointer {
	c := &checkpointer{conn: conn, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

// committed counts a commit of the writer.
func (c *checkpointer) committed() {
	if c.commits.Add(1) == checkpointCommits {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	tick := time.NewTicker(checkpointIdle)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-c.wake:
		case <-tick.C:
		}
		if c.commits.Swap(0) == 0 {
			continue
		}
		// Busy (another checkpoint is running, the writer's backstop) is not an error:
		// the next round copies what this one could not.
		var busy, logFrames, copied int
		if err := c.conn.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logFrames, &copied); err != nil {
			c.failures.Add(1)
		}
		c.runs.Add(1)
	}
}

// close stops the checkpointer and closes its connection.
func (c *checkpointer) close() error {
	close(c.stop)
	<-c.done
	return c.conn.Close()
}
