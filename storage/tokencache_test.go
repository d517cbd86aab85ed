package storage_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// TestAccessTokenCacheRevocation: once a revocation commits, the cached owner of a token is
// never served again, whichever way the token went.
func TestAccessTokenCacheRevocation(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		addAccount(t, db, "alice")
		n := 0
		// issue gives alice a fresh device with a token and caches its owner.
		issue := func() (device, hash string) {
			t.Helper()
			n++
			device, hash = fmt.Sprintf("D%d", n), fmt.Sprintf("tok%d", n)
			withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
				if _, err := tx.UpsertDevice(ctx, storage.Device{Localpart: "alice", DeviceID: device, CreatedTS: 1, LastSeenTS: 1}); err != nil {
					return err
				}
				return tx.InsertAccessToken(ctx, storage.AccessToken{Hash: hash, Localpart: "alice", DeviceID: device, CreatedTS: 1})
			})
			if o, err := db.CachedAccessTokenOwner(ctx, hash); err != nil || o.DeviceID != device {
				t.Fatalf("fresh token %s: %+v, %v", hash, o, err)
			}
			return device, hash
		}
		gone := func(what, hash string) {
			t.Helper()
			// Twice: the second read must not come from a cache either.
			for range 2 {
				if o, err := db.CachedAccessTokenOwner(ctx, hash); !errors.Is(err, storage.ErrNotFound) {
					t.Fatalf("after %s, token %s still resolves: %+v, %v", what, hash, o, err)
				}
			}
		}

		_, h := issue()
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error { return tx.DeleteAccessToken(ctx, h) })
		gone("logout", h)

		d, h := issue()
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error { return tx.DeleteDeviceTokens(ctx, "alice", d) })
		gone("revoking a device's tokens", h)

		d, h = issue()
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			_, err := tx.DeleteDevices(ctx, "alice", []string{d})
			return err
		})
		gone("deleting the device", h)

		// A token that does not exist yet is not remembered as unknown.
		if _, err := db.CachedAccessTokenOwner(ctx, "tok-later"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("unknown token: %v", err)
		}
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			return tx.InsertAccessToken(ctx, storage.AccessToken{Hash: "tok-later", Localpart: "alice", DeviceID: "D1", CreatedTS: 1})
		})
		if _, err := db.CachedAccessTokenOwner(ctx, "tok-later"); err != nil {
			t.Fatalf("a token issued after a miss: %v", err)
		}

		_, h = issue()
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error { return tx.SetAccountLocked(ctx, "alice", true, 5) })
		if o, err := db.CachedAccessTokenOwner(ctx, h); err != nil || !o.Locked {
			t.Fatalf("after locking: %+v, %v", o, err)
		}
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error { return tx.SetAccountSuspended(ctx, "alice", true, 5) })
		if o, err := db.CachedAccessTokenOwner(ctx, h); err != nil || !o.Suspended {
			t.Fatalf("after suspending: %+v, %v", o, err)
		}
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			_, err := tx.DeactivateAccount(ctx, "alice", 6)
			return err
		})
		gone("deactivation", h)
		gone("deactivation", "tok-later")
	})
}

// TestAccessTokenCacheRollback: a revocation that rolls back leaves the token working.
func TestAccessTokenCacheRollback(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		addAccount(t, db, "bob")
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			if _, err := tx.UpsertDevice(ctx, storage.Device{Localpart: "bob", DeviceID: "P", CreatedTS: 1, LastSeenTS: 1}); err != nil {
				return err
			}
			return tx.InsertAccessToken(ctx, storage.AccessToken{Hash: "b", Localpart: "bob", DeviceID: "P", CreatedTS: 1})
		})
		errStop := errors.New("stop")
		err := db.WithTx(ctx, func(tx *storage.Tx) error {
			if err := tx.DeleteAccessToken(ctx, "b"); err != nil {
				return err
			}
			return errStop
		})
		if !errors.Is(err, errStop) {
			t.Fatal(err)
		}
		if o, err := db.CachedAccessTokenOwner(ctx, "b"); err != nil || o.DeviceID != "P" {
			t.Fatalf("after a rolled back logout: %+v, %v", o, err)
		}
	})
}

// BenchmarkAccessTokenOwner compares resolving an access token through the cache with reading
// it from the database, as every authenticated request does.
func BenchmarkAccessTokenOwner(b *testing.B) {
	db := storagetest.OpenTestDB(b, storage.SQLite)
	ctx := context.Background()
	if err := db.WithTx(ctx, func(tx *storage.Tx) error {
		if err := tx.InsertAccount(ctx, storage.Account{Localpart: "carol", PasswordHash: "h", CreatedTS: 1}); err != nil {
			return err
		}
		if _, err := tx.UpsertDevice(ctx, storage.Device{Localpart: "carol", DeviceID: "C", CreatedTS: 1, LastSeenTS: 1}); err != nil {
			return err
		}
		return tx.InsertAccessToken(ctx, storage.AccessToken{Hash: "c", Localpart: "carol", DeviceID: "C", CreatedTS: 1})
	}); err != nil {
		b.Fatal(err)
	}
	b.Run("database", func(b *testing.B) {
		for b.Loop() {
			if _, err := storage.LookupAccessToken(ctx, db, "c"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.CachedAccessTokenOwner(ctx, "c"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
