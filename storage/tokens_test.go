package storage_test

import (
	"context"
	"errors"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

func TestRefreshTokenRotation(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		addAccount(t, db, "alice")
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			if _, err := tx.UpsertDevice(ctx, storage.Device{Localpart: "alice", DeviceID: "D", CreatedTS: 1, LastSeenTS: 1}); err != nil {
				return err
			}
			if err := tx.InsertRefreshToken(ctx, storage.RefreshToken{Hash: "r1", Localpart: "alice", DeviceID: "D", CreatedTS: 1}); err != nil {
				return err
			}
			return tx.InsertAccessToken(ctx, storage.AccessToken{Hash: "a1", Localpart: "alice", DeviceID: "D", RefreshHash: "r1", CreatedTS: 1, ExpiresTS: 100})
		})
		known := func(hash string) bool {
			_, err := storage.LookupAccessToken(ctx, db, hash)
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				t.Fatal(err)
			}
			return err == nil
		}
		refreshable := func(hash string) bool {
			_, err := storage.GetRefreshToken(ctx, db, hash)
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				t.Fatal(err)
			}
			return err == nil
		}
		rotate := func(old, nextR, nextA string) {
			t.Helper()
			withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
				o, err := storage.GetRefreshToken(ctx, tx, old)
				if err != nil {
					return err
				}
				return tx.RotateRefreshToken(ctx, o,
					storage.RefreshToken{Hash: nextR, Localpart: "alice", DeviceID: "D", CreatedTS: 2},
					storage.AccessToken{Hash: nextA, Localpart: "alice", DeviceID: "D", CreatedTS: 2, ExpiresTS: 200})
			})
		}

		rotate("r1", "r2", "a2")
		if known("a1") || !known("a2") || !refreshable("r1") || !refreshable("r2") {
			t.Fatalf("after rotating r1: a1 %v a2 %v r1 %v r2 %v", known("a1"), known("a2"), refreshable("r1"), refreshable("r2"))
		}
		// The client lost the answer and repeats: the unconfirmed pair is replaced.
		rotate("r1", "r2b", "a2b")
		if known("a2") || refreshable("r2") || !known("a2b") || !refreshable("r1") {
			t.Fatal("repeating a refresh did not replace the unconfirmed pair")
		}
		o, err := storage.LookupAccessToken(ctx, db, "a2b")
		if err != nil || !o.PendingPrevRefresh || o.RefreshHash != "r2b" || o.ExpiresTS != 200 {
			t.Fatalf("LookupAccessToken(a2b) = %+v, %v", o, err)
		}
		// Using the new access token revokes the old refresh token.
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error { return tx.ConfirmRefresh(ctx, o.RefreshHash) })
		if refreshable("r1") || !refreshable("r2b") {
			t.Fatal("ConfirmRefresh did not revoke r1")
		}
		if o, _ := storage.LookupAccessToken(ctx, db, "a2b"); o.PendingPrevRefresh {
			t.Error("still pending after ConfirmRefresh")
		}
		// Using the new refresh token directly revokes its predecessor too.
		rotate("r2b", "r3", "a3")
		rotate("r3", "r4", "a4")
		if refreshable("r2b") || refreshable("r3") == false || !refreshable("r4") {
			t.Errorf("after using r3's successor chain: r2b %v r3 %v r4 %v", refreshable("r2b"), refreshable("r3"), refreshable("r4"))
		}
		// Revoking a device's tokens keeps the device.
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error { return tx.DeleteDeviceTokens(ctx, "alice", "D") })
		if known("a4") || refreshable("r4") {
			t.Error("DeleteDeviceTokens left tokens")
		}
		if _, err := storage.GetDevice(ctx, db, "alice", "D"); err != nil {
			t.Errorf("device gone with its tokens: %v", err)
		}
	})
}

func TestRegistrationTokens(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			for _, rt := range []storage.RegistrationToken{
				{Hash: "once", UsesAllowed: 1, CreatedTS: 1},
				{Hash: "unlimited", CreatedTS: 1},
				{Hash: "expiring", ExpiryTS: 100, CreatedTS: 1},
			} {
				if err := tx.InsertRegistrationToken(ctx, rt); err != nil {
					return err
				}
			}
			return nil
		})
		// In its own transaction: a failed statement aborts a PostgreSQL transaction.
		if err := db.WithTx(ctx, func(tx *storage.Tx) error {
			return tx.InsertRegistrationToken(ctx, storage.RegistrationToken{Hash: "once", CreatedTS: 1})
		}); !errors.Is(err, storage.ErrConflict) {
			t.Errorf("duplicate token: %v", err)
		}
		valid := func(hash string, now int64) bool {
			ok, err := storage.RegistrationTokenValid(ctx, db, hash, now)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		use := func(hash string, now int64) error {
			return db.WithTx(ctx, func(tx *storage.Tx) error { return tx.UseRegistrationToken(ctx, hash, now) })
		}
		if !valid("once", 50) || !valid("unlimited", 50) || !valid("expiring", 50) || valid("nope", 50) {
			t.Error("validity before use")
		}
		if valid("expiring", 100) || !errors.Is(use("expiring", 100), storage.ErrNotFound) {
			t.Error("an expired token is valid")
		}
		if err := use("once", 50); err != nil {
			t.Fatal(err)
		}
		if valid("once", 50) || !errors.Is(use("once", 50), storage.ErrNotFound) {
			t.Error("a used-up token is valid")
		}
		for range 3 {
			if err := use("unlimited", 50); err != nil {
				t.Fatal(err)
			}
		}
	})
}
