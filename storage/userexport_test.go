package storage_test

import (
	"context"
	"slices"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// TestUserExportReads: each "everything of this user" read returns the user's rows, all of
// them, and nothing of another user stored beside them.
func TestUserExportReads(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		const alice, bob = "@alice:x", "@bob:x"
		sk := func(s string) *string { return &s }
		var room storage.RoomNID
		if err := db.WithTx(ctx, func(tx *storage.Tx) error {
			for _, u := range []string{alice, bob} {
				if _, err := tx.InsertFilter(ctx, u, []byte(`{"room":{"timeline":{"limit":`+map[string]string{alice: "10", bob: "20"}[u]+`}}}`)); err != nil {
					return err
				}
				if _, err := tx.SetAccountData(ctx, u, "", "m.direct", []byte(`{"who":"`+u+`"}`)); err != nil {
					return err
				}
				if _, err := tx.SetAccountData(ctx, u, "!r:x", "m.tag", []byte(`{}`)); err != nil {
					return err
				}
				if _, err := tx.UpsertReceipt(ctx, storage.Receipt{RoomID: "!r:x", UserID: u, Type: "m.read", EventID: "$e1", TS: 5}); err != nil {
					return err
				}
				if err := tx.InsertContentReport(ctx, storage.ContentReport{ID: "rep-" + u, Kind: storage.ReportRoom, Reporter: u, RoomID: "!r:x", Reason: "r", ReceivedTS: 1}); err != nil {
					return err
				}
				if err := tx.InsertOpenIDToken(ctx, "hash-"+u, u, 1000, 1); err != nil {
					return err
				}
				if err := tx.UpsertKeySignature(ctx, storage.KeySignature{TargetUserID: bob, TargetKeyID: "MASTER" + u, SignerUserID: u, SignerKeyID: "ed25519:USK", Signature: "sig-" + u}); err != nil {
					return err
				}
				if err := tx.InsertToDeviceMessage(ctx, storage.ToDeviceMessage{UserID: u, DeviceID: "DEV", Pos: 1, Sender: bob, Type: "m.room_key", Content: []byte(`{}`), Created: 1}); err != nil {
					return err
				}
				if err := tx.InsertRoomAlias(ctx, storage.RoomAlias{Alias: "#" + u[1:2] + ":x", RoomID: "!r:x", Creator: u, CreatedTS: 3}); err != nil {
					return err
				}
			}
			if err := tx.InsertOpenIDToken(ctx, "hash-2", alice, 2000, 1); err != nil {
				return err
			}
			if err := tx.InsertToDeviceMessage(ctx, storage.ToDeviceMessage{UserID: alice, DeviceID: "DEV", Pos: 2, Sender: bob, Type: "m.room_key", Content: []byte(`{}`), Created: 1}); err != nil {
				return err
			}
			v1, err := tx.InsertKeyBackup(ctx, alice, "m.megolm_backup.v1.curve25519-aes-sha2", []byte(`{"public_key":"pk1"}`))
			if err != nil {
				return err
			}
			if _, err := tx.DeleteKeyBackup(ctx, alice, v1); err != nil {
				return err
			}
			if _, err := tx.InsertKeyBackup(ctx, alice, "m.megolm_backup.v1.curve25519-aes-sha2", []byte(`{"public_key":"pk2"}`)); err != nil {
				return err
			}
			if _, err := tx.InsertKeyBackup(ctx, bob, "m.megolm_backup.v1.curve25519-aes-sha2", []byte(`{"public_key":"bob"}`)); err != nil {
				return err
			}
			if room, err = tx.InsertRoom(ctx, "!r:x", "10"); err != nil {
				return err
			}
			events := []storage.EventRecord{
				{EventID: "$1", Type: "m.room.member", StateKey: sk(alice), Sender: alice, StreamPos: 1},
				{EventID: "$2", Type: "m.room.member", StateKey: sk(bob), Sender: alice, StreamPos: 2},           // alice invites bob
				{EventID: "$3", Type: "m.room.message", Sender: bob, StreamPos: 3},                               // bob speaks
				{EventID: "$4", Type: "m.room.member", StateKey: sk(alice), Sender: bob, StreamPos: 4},           // bob kicks alice
				{EventID: "$5", Type: "m.room.message", Sender: alice, StreamPos: -7},                            // backfilled
				{EventID: "$6", Type: "m.room.message", Sender: alice, StreamPos: 0, Outlier: true},              // not on the timeline
				{EventID: "$7", Type: "m.room.message", Sender: alice, StreamPos: 6, Rejected: false, JSON: nil}, // pruned, still listed
			}
			for i, e := range events {
				e.Room, e.Depth, e.OriginServerTS = room, int64(i+1), int64(i)
				if e.JSON == nil && e.EventID != "$7" {
					e.JSON = []byte(`{"event_id":"` + e.EventID + `"}`)
				}
				if _, err := tx.InsertEvent(ctx, e); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}

		filters, err := storage.UserFilters(ctx, db, alice)
		if err != nil || len(filters) != 1 || string(filters[0].Filter) != `{"room":{"timeline":{"limit":10}}}` {
			t.Errorf("filters: %+v %v", filters, err)
		}
		data, err := storage.AllAccountData(ctx, db, alice)
		if err != nil || len(data) != 2 || string(data[0].Content) != `{"who":"@alice:x"}` || data[1].RoomID != "!r:x" {
			t.Errorf("account data: %+v %v", data, err)
		}
		receipts, err := storage.ReceiptsOfUser(ctx, db, alice)
		if err != nil || len(receipts) != 1 || receipts[0].UserID != alice || receipts[0].EventID != "$e1" || receipts[0].TS != 5 {
			t.Errorf("receipts: %+v %v", receipts, err)
		}
		reports, err := storage.ContentReportsBy(ctx, db, alice)
		if err != nil || len(reports) != 1 || reports[0].ID != "rep-"+alice {
			t.Errorf("reports: %+v %v", reports, err)
		}
		expiries, err := storage.OpenIDTokenExpiries(ctx, db, alice)
		if err != nil || len(expiries) != 2 || expiries[0] != 1000 || expiries[1] != 2000 {
			t.Errorf("openid: %v %v", expiries, err)
		}
		sigs, err := storage.KeySignaturesBy(ctx, db, alice)
		if err != nil || len(sigs) != 1 || sigs[0].Signature != "sig-"+alice {
			t.Errorf("signatures: %+v %v", sigs, err)
		}
		backups, err := storage.KeyBackupVersions(ctx, db, alice)
		if err != nil || len(backups) != 2 || !backups[0].Deleted || backups[0].AuthData != nil ||
			backups[1].Deleted || string(backups[1].AuthData) != `{"public_key":"pk2"}` {
			t.Errorf("backups: %+v %v", backups, err)
		}
		pending, err := storage.PendingToDeviceCounts(ctx, db, alice)
		if err != nil || len(pending) != 1 || pending["DEV"] != 2 {
			t.Errorf("to-device counts: %v %v", pending, err)
		}
		aliases, err := storage.RoomAliasesBy(ctx, db, alice)
		if err != nil || len(aliases) != 1 || aliases[0].Alias != "#a:x" {
			t.Errorf("aliases: %+v %v", aliases, err)
		}

		// Alice's events: what she sent and her own membership events, on the timeline, in
		// stream order from backfilled history on, read in pages.
		var got []string
		after := int64(storage.FirstStreamPosition)
		for {
			page, err := storage.UserRoomEvents(ctx, db, room, alice, after, 2)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page {
				got = append(got, e.EventID)
			}
			if len(page) < 2 {
				break
			}
			after = page[len(page)-1].StreamPos
		}
		if want := []string{"$5", "$1", "$2", "$4", "$7"}; !slices.Equal(got, want) {
			t.Errorf("alice's events: %v, want %v", got, want)
		}
	})
}
