package storage_test

import (
	"context"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

func TestReceipts(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		put := func(r storage.Receipt) int64 {
			t.Helper()
			var pos int64
			if err := db.WithTx(ctx, func(tx *storage.Tx) error {
				var err error
				pos, err = tx.UpsertReceipt(ctx, r)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return pos
		}
		a := storage.Receipt{RoomID: "!r:x", UserID: "@a:x", Type: "m.read", EventID: "$1", TS: 10}
		p1 := put(a)
		if p1 == 0 {
			t.Fatal("first receipt got no position")
		}
		if p := put(a); p != 0 {
			t.Errorf("the same receipt again moved the stream to %d", p)
		}
		threaded := a
		threaded.ThreadID, threaded.EventID = "main", "$2"
		p2 := put(threaded)
		a.EventID = "$3"
		p3 := put(a)
		put(storage.Receipt{RoomID: "!other:x", UserID: "@a:x", Type: "m.read", EventID: "$9", TS: 1})
		if !(p1 < p2 && p2 < p3) {
			t.Fatalf("positions %d %d %d", p1, p2, p3)
		}
		got, err := storage.ReceiptsBetween(ctx, db, []string{"!r:x"}, 0, p3)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].ThreadID != "main" || got[1].EventID != "$3" {
			t.Errorf("receipts of !r:x: %+v", got)
		}
		got, err = storage.ReceiptsBetween(ctx, db, []string{"!r:x", "!other:x"}, p2, p3+10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Errorf("receipts after %d: %+v", p2, got)
		}
		rc, err := storage.UserReceipt(ctx, db, "!r:x", "@a:x", "m.read", "")
		if err != nil || rc.EventID != "$3" {
			t.Errorf("UserReceipt: %+v %v", rc, err)
		}
	})
}

func TestProfiles(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		p, err := storage.GetProfile(ctx, db, "alice")
		if err != nil || p != (storage.Profile{}) {
			t.Fatalf("unset profile: %+v %v", p, err)
		}
		if err := db.WithTx(ctx, func(tx *storage.Tx) error {
			if err := tx.SetDisplayName(ctx, "alice", "Alice"); err != nil {
				return err
			}
			return tx.SetAvatarURL(ctx, "alice", "mxc://x/y")
		}); err != nil {
			t.Fatal(err)
		}
		p, _ = storage.GetProfile(ctx, db, "alice")
		if p.DisplayName != "Alice" || p.AvatarURL != "mxc://x/y" {
			t.Errorf("profile: %+v", p)
		}
		if err := db.WithTx(ctx, func(tx *storage.Tx) error { return tx.SetDisplayName(ctx, "alice", "") }); err != nil {
			t.Fatal(err)
		}
		p, _ = storage.GetProfile(ctx, db, "alice")
		if p.DisplayName != "" || p.AvatarURL != "mxc://x/y" {
			t.Errorf("profile after clearing the name: %+v", p)
		}
	})
}

func TestRemoteDeviceLists(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		if _, err := storage.GetRemoteDeviceList(ctx, db, "@b:y"); err == nil {
			t.Fatal("an uncached list was found")
		}
		l := storage.RemoteDeviceList{UserID: "@b:y", StreamID: -1, MasterKey: []byte(`{"m":1}`), FetchedTS: 5,
			Devices: map[string][]byte{"D1": []byte(`{"d":1}`), "D2": []byte(`{"d":2}`)}}
		err := db.WithTx(ctx, func(tx *storage.Tx) error {
			if err := tx.PutRemoteDeviceList(ctx, l); err != nil {
				return err
			}
			if err := tx.DeleteRemoteDevice(ctx, "@b:y", "D1"); err != nil {
				return err
			}
			if err := tx.PutRemoteDevice(ctx, "@b:y", "D3", []byte(`{"d":3}`)); err != nil {
				return err
			}
			if err := tx.SetRemoteCrossSigningKeys(ctx, "@b:y", nil, []byte(`{"s":1}`)); err != nil {
				return err
			}
			return tx.SetRemoteDeviceListStream(ctx, "@b:y", 7)
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := storage.GetRemoteDeviceList(ctx, db, "@b:y")
		if err != nil {
			t.Fatal(err)
		}
		if got.StreamID != 7 || string(got.MasterKey) != `{"m":1}` || string(got.SelfSigningKey) != `{"s":1}` ||
			len(got.Devices) != 2 || got.Devices["D3"] == nil || got.Devices["D1"] != nil {
			t.Errorf("cached list: %+v", got)
		}

		err = db.WithTx(ctx, func(tx *storage.Tx) error {
			if err := tx.SetAnnouncedDevice(ctx, "@a:x", storage.AnnouncedDevice{DeviceID: "", StreamID: 3}); err != nil {
				return err
			}
			if err := tx.SetAnnouncedDevice(ctx, "@a:x", storage.AnnouncedDevice{DeviceID: "D", Digest: "h", StreamID: 3}); err != nil {
				return err
			}
			return tx.SetAnnouncedDevice(ctx, "@a:x", storage.AnnouncedDevice{DeviceID: "", StreamID: 4})
		})
		if err != nil {
			t.Fatal(err)
		}
		ann, err := storage.AnnouncedDevices(ctx, db, "@a:x")
		if err != nil || len(ann) != 2 || ann[""].StreamID != 4 || ann["D"].Digest != "h" {
			t.Errorf("announced: %+v %v", ann, err)
		}
	})
}
