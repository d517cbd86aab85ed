package storage

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
)

// Dialect names a database backend. Statements are written once where both accept them;
// where they differ, Pick chooses between two forms written side by side.
type Dialect uint8

const (
	SQLite Dialect = iota + 1
	Postgres
)

// Pick returns the form of a statement for this dialect.
func (d Dialect) Pick(sqlite, postgres string) string {
	if d == Postgres {
		return postgres
	}
	return sqlite
}

func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	default:
		return "unknown"
	}
}

// rebind turns PostgreSQL's $N placeholders into SQLite's ?N. SQLite does accept "$1", but as
// a named parameter numbered by first appearance, so "SELECT $2, $1" would silently bind the
// arguments in the wrong order; "?N" is SQLite's explicitly numbered form.
func (d Dialect) rebind(query string) string {
	if d != SQLite || !strings.Contains(query, "$") {
		return query
	}
	if r, ok := rebound.Load(query); ok {
		return r.(string)
	}
	r := rebindSQLite(query)
	// Queries are mostly constants, but IN lists make a text per length: past the bound,
	// new texts are rebound on every call instead of kept.
	if reboundCount.Load() < maxRebound {
		if _, loaded := rebound.LoadOrStore(query, r); !loaded {
			reboundCount.Add(1)
		}
	}
	return r
}

// rebound caches rebindSQLite by query text, since the same statements run on every message.
var (
	rebound      sync.Map
	reboundCount atomic.Int64
)

const maxRebound = 4096

func rebindSQLite(query string) string {
	var b strings.Builder
	b.Grow(len(query))
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			end := closingQuote(query, i, c)
			b.WriteString(query[i:end])
			i = end - 1
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			end := strings.IndexByte(query[i:], '\n')
			if end < 0 {
				end = len(query) - i
			}
			b.WriteString(query[i : i+end])
			i += end - 1
		case c == '/' && i+1 < len(query) && query[i+1] == '*':
			end := strings.Index(query[i+2:], "*/")
			if end < 0 {
				end = len(query) - i
			} else {
				end += 4
			}
			b.WriteString(query[i : i+end])
			i += end - 1
		case c == '$' && i+1 < len(query) && isDigit(query[i+1]):
			b.WriteByte('?')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// closingQuote returns the index just past the quoted text starting at query[start], where a
// doubled quote character is an escaped one.
func closingQuote(query string, start int, quote byte) int {
	for i := start + 1; i < len(query); i++ {
		if query[i] != quote {
			continue
		}
		if i+1 < len(query) && query[i+1] == quote {
			i++
			continue
		}
		return i + 1
	}
	return len(query)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// statementContext is the context a statement runs with. For SQLite it is ctx without its
// cancellation: go-sqlite3 starts a goroutine per statement (and database/sql one per
// transaction) to watch a context that can be cancelled, a goroutine created and woken for
// every statement of every request (issue 9: the scheduler's wake-ups stood out in a profile of
// the send path). SQLite statements are local and short; a cancelled request is instead stopped
// between statements, where Query and withTx check ctx.Err. PostgreSQL keeps cancellation,
// which there reaches the server and stops a query waiting on the network or on a lock.
func (d Dialect) statementContext(ctx context.Context) context.Context {
	if d == SQLite {
		return context.WithoutCancel(ctx)
	}
	return ctx
}
