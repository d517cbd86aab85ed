package storage

import (
	"context"
	"strings"
	"sync"
	"time"
)

// Every authenticated request resolves its access token. Reading the token, its device and its
// account from the database on each one cost a query (about a twentieth of the CPU of a message
// send), so the owners of recently used tokens are kept in memory, by token hash.
//
// A deleted token must never work, nor a locked or suspended account's token pass as unlocked.
// So the cache is not invalidated by the callers that revoke tokens, which could be forgotten
// as code grows, but here: any transaction that deletes or updates the rows a token's
// validity depends on (access_tokens, refresh_tokens, devices, accounts: statementChangesTokens)
// empties the whole cache once it commits. Such writes are rare (logout, device deletion,
// login on an existing device, refresh, deactivation, lock, suspension, password change), and
// emptying is cheaper to get right than finding each affected token. A lookup that read the
// database before such a commit and finishes after it does not store what it read
// (generation check), so no entry can outlive the revocation that made it stale.
//
// The cache holds what one process knows: should several processes ever share a PostgreSQL
// database, revocations will have to reach the others (LISTEN/NOTIFY, like the sync notifier);
// until then accessTokenCacheTTL bounds how long an entry is used at all.
const (
	accessTokenCacheSize = 10000
	accessTokenCacheTTL  = 30 * time.Second
)

type accessTokenCache struct {
	mu      sync.Mutex
	gen     uint64 // moves each time the cache is emptied
	entries map[string]cachedTokenOwner
}

type cachedTokenOwner struct {
	owner   TokenOwner
	expires time.Time
}

// CachedAccessTokenOwner is LookupAccessToken on the reader pool, through the cache. Unknown
// tokens are not cached: a token issued a moment later must work at once.
func (db *DB) CachedAccessTokenOwner(ctx context.Context, hash string) (TokenOwner, error) {
	c := &db.tokens
	now := time.Now()
	c.mu.Lock()
	e, ok := c.entries[hash]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.owner, nil
	}
	owner, err := LookupAccessToken(ctx, db, hash)
	if err != nil {
		return owner, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return owner, nil // a revocation committed meanwhile: what was read may be stale
	}
	if c.entries == nil {
		c.entries = map[string]cachedTokenOwner{}
	}
	if len(c.entries) >= accessTokenCacheSize {
		for k, v := range c.entries {
			if !now.Before(v.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= accessTokenCacheSize {
			clear(c.entries)
		}
	}
	c.entries[hash] = cachedTokenOwner{owner: owner, expires: now.Add(accessTokenCacheTTL)}
	return owner, nil
}

// ForgetCachedAccessToken drops one token's cached owner, after a write that changed what the
// cache holds of it without touching its validity (the device's last-seen time).
func (db *DB) ForgetCachedAccessToken(hash string) {
	db.tokens.mu.Lock()
	delete(db.tokens.entries, hash)
	db.tokens.mu.Unlock()
}

// invalidateAccessTokens empties the cache; withTx calls it after committing a transaction
// in which statementChangesTokens held for a statement.
func (db *DB) invalidateAccessTokens() {
	c := &db.tokens
	c.mu.Lock()
	c.gen++
	clear(c.entries)
	c.mu.Unlock()
}

// statementChangesTokens reports whether a statement may revoke an access token or change
// what authentication reads with it: a DELETE from access_tokens, refresh_tokens, devices
// (their tokens go with them) or accounts, or an UPDATE of access_tokens, refresh_tokens or
// accounts (deactivation, locks, suspensions). Updates of devices (last seen, display name)
// and inserts (new tokens, new devices) do not empty the cache. Matching more than needed only
// costs a refill.
func statementChangesTokens(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n")
	if len(q) < 6 {
		return false
	}
	switch {
	case strings.EqualFold(q[:6], "DELETE"):
		return strings.Contains(q, "access_tokens") || strings.Contains(q, "refresh_tokens") ||
			strings.Contains(q, "devices") || strings.Contains(q, "accounts")
	case strings.EqualFold(q[:6], "UPDATE"):
		return strings.Contains(q, "access_tokens") || strings.Contains(q, "refresh_tokens") ||
			strings.Contains(q, "accounts")
	}
	return false
}
