package storage_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

func TestRoomAliasesAndDirectory(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			// a reservation, then its binding
			if err := tx.InsertRoomAlias(ctx, storage.RoomAlias{Alias: "#a:hs", Creator: "@u:hs", CreatedTS: 1}); err != nil {
				return err
			}
			return tx.SetRoomAliasRoom(ctx, "#a:hs", "!r:hs")
		})
		err := db.WithTx(ctx, func(tx *storage.Tx) error {
			return tx.InsertRoomAlias(ctx, storage.RoomAlias{Alias: "#a:hs", RoomID: "!other:hs", Creator: "@v:hs", CreatedTS: 2})
		})
		if !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("duplicate alias: %v", err)
		}
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			return tx.InsertRoomAlias(ctx, storage.RoomAlias{Alias: "#b:hs", RoomID: "!r:hs", Creator: "@u:hs", CreatedTS: 3})
		})
		got, err := storage.GetRoomAlias(ctx, db, "#a:hs")
		if err != nil || got.RoomID != "!r:hs" || got.Creator != "@u:hs" {
			t.Fatalf("GetRoomAlias: %+v %v", got, err)
		}
		if list, err := storage.AliasesOfRoom(ctx, db, "!r:hs"); err != nil || !slices.Equal(list, []string{"#a:hs", "#b:hs"}) {
			t.Fatalf("AliasesOfRoom: %v %v", list, err)
		}
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error { return tx.MoveRoomAliases(ctx, "!r:hs", "!new:hs") })
		if list, _ := storage.AliasesOfRoom(ctx, db, "!new:hs"); len(list) != 2 {
			t.Fatalf("after move: %v", list)
		}
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error { return tx.DeleteRoomAlias(ctx, "#a:hs") })
		if _, err := storage.GetRoomAlias(ctx, db, "#a:hs"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("deleted alias: %v", err)
		}
		err = db.WithTx(ctx, func(tx *storage.Tx) error { return tx.DeleteRoomAlias(ctx, "#a:hs") })
		if !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("deleting twice: %v", err)
		}

		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			if err := tx.SetRoomPublished(ctx, "!r:hs", true, 1); err != nil {
				return err
			}
			return tx.SetRoomPublished(ctx, "!r:hs", true, 2) // publishing twice is harmless
		})
		if ok, err := storage.RoomPublished(ctx, db, "!r:hs"); !ok || err != nil {
			t.Fatalf("published: %v %v", ok, err)
		}
		if list, _ := storage.PublishedRooms(ctx, db); !slices.Equal(list, []string{"!r:hs"}) {
			t.Fatalf("PublishedRooms: %v", list)
		}
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error { return tx.SetRoomPublished(ctx, "!r:hs", false, 0) })
		if ok, _ := storage.RoomPublished(ctx, db, "!r:hs"); ok {
			t.Fatal("still published")
		}

		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			if err := tx.ForgetRoom(ctx, "@u:hs", "!r:hs", 5, 1); err != nil {
				return err
			}
			return tx.ForgetRoom(ctx, "@u:hs", "!r:hs", 9, 2)
		})
		if f, err := storage.ForgottenRooms(ctx, db, "@u:hs"); err != nil || f["!r:hs"] != 9 || len(f) != 1 {
			t.Fatalf("ForgottenRooms: %v %v", f, err)
		}
	})
}

func TestClientTxns(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		addAccount(t, db, "alice")
		addDevice(t, db, "alice", "DEV", "hash1")
		txn := storage.ClientTxn{Localpart: "alice", DeviceID: "DEV", Endpoint: "send/!r:hs/m.room.message", TxnID: "t1", EventID: "$e1", CreatedTS: 1}
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error { return tx.InsertClientTxn(ctx, txn) })
		err := db.WithTx(ctx, func(tx *storage.Tx) error { return tx.InsertClientTxn(ctx, txn) })
		if !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("duplicate transaction: %v", err)
		}
		if id, err := storage.ClientTxnEvent(ctx, db, "alice", "DEV", txn.Endpoint, "t1"); err != nil || id != "$e1" {
			t.Fatalf("ClientTxnEvent: %q %v", id, err)
		}
		if _, err := storage.ClientTxnEvent(ctx, db, "alice", "DEV", "send/!other:hs/m.room.message", "t1"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("another endpoint: %v", err)
		}
		ids, err := storage.TransactionIDs(ctx, db, "alice", "DEV", []string{"$e1", "$e2"})
		if err != nil || len(ids) != 1 || ids["$e1"] != "t1" {
			t.Fatalf("TransactionIDs: %v %v", ids, err)
		}
		// Old transaction ids are pruned; newer ones stay.
		newer := txn
		newer.TxnID, newer.EventID, newer.CreatedTS = "t2", "$e2", 100
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error { return tx.InsertClientTxn(ctx, newer) })
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			n, err := tx.PruneClientTxns(ctx, 50)
			if err == nil && n != 1 {
				err = fmt.Errorf("pruned %d, want 1", n)
			}
			return err
		})
		if _, err := storage.ClientTxnEvent(ctx, db, "alice", "DEV", txn.Endpoint, "t1"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("after pruning: %v", err)
		}
		if id, err := storage.ClientTxnEvent(ctx, db, "alice", "DEV", txn.Endpoint, "t2"); err != nil || id != "$e2" {
			t.Fatalf("the newer one after pruning: %q %v", id, err)
		}
		// Transaction ids go with their device.
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			_, err := tx.DeleteDevices(ctx, "alice", []string{"DEV"})
			return err
		})
		if _, err := storage.ClientTxnEvent(ctx, db, "alice", "DEV", txn.Endpoint, "t1"); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("after the device was deleted: %v", err)
		}
	})
}
