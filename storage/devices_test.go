package storage_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

func withTx(t *testing.T, db *storage.DB, fn func(ctx context.Context, tx *storage.Tx) error) {
	t.Helper()
	ctx := context.Background()
	if err := db.WithTx(ctx, func(tx *storage.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatal(err)
	}
}

func addAccount(t *testing.T, db *storage.DB, localpart string) {
	t.Helper()
	withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
		return tx.InsertAccount(ctx, storage.Account{Localpart: localpart, PasswordHash: "h", CreatedTS: 1})
	})
}

func addDevice(t *testing.T, db *storage.DB, localpart, deviceID, accessHash string) {
	t.Helper()
	withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
		if _, err := tx.UpsertDevice(ctx, storage.Device{Localpart: localpart, DeviceID: deviceID, CreatedTS: 1, LastSeenTS: 1}); err != nil {
			return err
		}
		return tx.InsertAccessToken(ctx, storage.AccessToken{Hash: accessHash, Localpart: localpart, DeviceID: deviceID, CreatedTS: 1})
	})
}

func TestDevices(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		addAccount(t, db, "alice")
		addAccount(t, db, "bob")
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			created, err := tx.UpsertDevice(ctx, storage.Device{Localpart: "alice", DeviceID: "PHONE", DisplayName: "Phone", CreatedTS: 1, LastSeenTS: 1})
			if err != nil || !created {
				t.Errorf("first upsert: created %v, %v", created, err)
			}
			created, err = tx.UpsertDevice(ctx, storage.Device{Localpart: "alice", DeviceID: "PHONE", DisplayName: "Other", CreatedTS: 2, LastSeenTS: 2})
			if err != nil || created {
				t.Errorf("second upsert: created %v, %v", created, err)
			}
			return nil
		})
		addDevice(t, db, "alice", "LAPTOP", "a2")
		addDevice(t, db, "bob", "PHONE", "b1")

		d, err := storage.GetDevice(ctx, db, "alice", "PHONE")
		if err != nil || d.DisplayName != "Phone" || d.LastSeenIP != "" {
			t.Errorf("GetDevice = %+v, %v; the upsert must keep the first display name", d, err)
		}
		if _, err := storage.GetDevice(ctx, db, "alice", "NONE"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("unknown device: %v", err)
		}
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			if err := tx.SetDeviceDisplayName(ctx, "alice", "LAPTOP", "Work"); err != nil {
				return err
			}
			if err := tx.SetDeviceDisplayName(ctx, "alice", "NONE", "x"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("renaming an unknown device: %v", err)
			}
			return tx.TouchDevice(ctx, "alice", "LAPTOP", 99, "192.0.2.1")
		})
		list, err := storage.ListDevices(ctx, db, "alice")
		if err != nil || len(list) != 2 || list[0].DeviceID != "LAPTOP" || list[0].DisplayName != "Work" || list[0].LastSeenTS != 99 || list[0].LastSeenIP != "192.0.2.1" {
			t.Fatalf("ListDevices = %+v, %v", list, err)
		}

		// Deleting a device takes its tokens; another user's device of the same id is untouched.
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			ids, err := tx.DeleteDevices(ctx, "alice", []string{"LAPTOP", "NONE"})
			if err != nil || !slices.Equal(ids, []string{"LAPTOP"}) {
				t.Errorf("DeleteDevices = %v, %v", ids, err)
			}
			return nil
		})
		if _, err := storage.LookupAccessToken(ctx, db, "a2"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("token of a deleted device: %v", err)
		}
		if o, err := storage.LookupAccessToken(ctx, db, "b1"); err != nil || o.Localpart != "bob" || o.DeviceID != "PHONE" {
			t.Errorf("bob's token = %+v, %v", o, err)
		}

		addDevice(t, db, "alice", "TABLET", "a3")
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			ids, err := tx.DeleteAllDevices(ctx, "alice", "TABLET")
			if err != nil || !slices.Equal(ids, []string{"PHONE"}) {
				t.Errorf("DeleteAllDevices keeping TABLET = %v, %v", ids, err)
			}
			return nil
		})
		if list, _ := storage.ListDevices(ctx, db, "alice"); len(list) != 1 || list[0].DeviceID != "TABLET" {
			t.Errorf("after DeleteAllDevices: %+v", list)
		}

		// Deactivation erases the password and every device, and keeps the row.
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			ids, err := tx.DeactivateAccount(ctx, "alice", 500)
			if err != nil || !slices.Equal(ids, []string{"TABLET"}) {
				t.Errorf("DeactivateAccount = %v, %v", ids, err)
			}
			return nil
		})
		acc, err := storage.GetAccount(ctx, db, "alice")
		if err != nil || acc.PasswordHash != "" || acc.DeactivatedTS != 500 {
			t.Errorf("deactivated account = %+v, %v", acc, err)
		}
		if _, err := storage.LookupAccessToken(ctx, db, "a3"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("token after deactivation: %v", err)
		}
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			if err := tx.SetPasswordHash(ctx, "nobody", "h"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("SetPasswordHash of nobody: %v", err)
			}
			return nil
		})
	})
}
