package storage

import (
	"context"
	"database/sql"
	"fmt"
)

// ServerKey is one public signing key of another server as this server last learned it.
type ServerKey struct {
	ServerName string
	KeyID      string // "ed25519:<version>"
	PublicKey  string // unpadded base64, as published
	// ValidUntilTS is when the key must be refetched before it may verify newer signatures.
	ValidUntilTS int64
	// ExpiredTS is when an old key stopped being used; zero while the key is current.
	ExpiredTS int64
	FetchedTS int64
	// KeyJSON is the key document, signed by its server, that listed this key.
	KeyJSON []byte
}

// StoreServerKeys inserts or replaces keys. A key already stored from a fetch newer than the
// given one is kept, so that a late answer from a slow notary cannot roll a key back.
func (tx *Tx) StoreServerKeys(ctx context.Context, keys []ServerKey) error {
	for _, k := range keys {
		_, err := tx.Exec(ctx, `INSERT INTO server_keys
			(server_name, key_id, public_key, valid_until_ts, expired_ts, fetched_ts, key_json)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (server_name, key_id) DO UPDATE SET
				public_key = excluded.public_key, valid_until_ts = excluded.valid_until_ts,
				expired_ts = excluded.expired_ts, fetched_ts = excluded.fetched_ts,
				key_json = excluded.key_json
			WHERE server_keys.fetched_ts <= excluded.fetched_ts`,
			k.ServerName, k.KeyID, k.PublicKey, k.ValidUntilTS,
			sql.NullInt64{Int64: k.ExpiredTS, Valid: k.ExpiredTS != 0}, k.FetchedTS, string(k.KeyJSON))
		if err != nil {
			return fmt.Errorf("storage: storing key %s of %s: %w", k.KeyID, k.ServerName, err)
		}
	}
	return nil
}

// GetServerKeys returns every stored key of a server, by key id; none is not an error.
func GetServerKeys(ctx context.Context, r Reader, serverName string) ([]ServerKey, error) {
	rows, err := r.Query(ctx, `SELECT server_name, key_id, public_key, valid_until_ts, expired_ts, fetched_ts, key_json
		FROM server_keys WHERE server_name = $1 ORDER BY key_id`, serverName)
	if err != nil {
		return nil, fmt.Errorf("storage: reading keys of %s: %w", serverName, err)
	}
	defer rows.Close()
	var out []ServerKey
	for rows.Next() {
		var (
			k       ServerKey
			expired sql.NullInt64
			doc     string
		)
		if err := rows.Scan(&k.ServerName, &k.KeyID, &k.PublicKey, &k.ValidUntilTS, &expired, &k.FetchedTS, &doc); err != nil {
			return nil, err
		}
		k.ExpiredTS, k.KeyJSON = expired.Int64, []byte(doc)
		out = append(out, k)
	}
	return out, rows.Err()
}
