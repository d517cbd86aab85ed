package storage_test

import (
	"context"
	"errors"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// TestContentReports: reports are listed oldest first, from a time and up to a limit, and
// retention deletes those received before a time.
func TestContentReports(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		score := int64(-50)
		reports := []storage.ContentReport{
			{ID: "r1", Kind: storage.ReportEvent, Reporter: "@a:x", RoomID: "!r:x", EventID: "$e", TargetUserID: "@b:x", Reason: "spam", Score: &score, ReceivedTS: 100},
			{ID: "r2", Kind: storage.ReportRoom, Reporter: "@a:x", RoomID: "!r:x", Reason: "", ReceivedTS: 200},
			{ID: "r3", Kind: storage.ReportUser, Reporter: "@c:x", TargetUserID: "@b:x", Reason: "rude", ReceivedTS: 300},
		}
		if err := db.WithTx(ctx, func(tx *storage.Tx) error {
			for _, r := range reports {
				if err := tx.InsertContentReport(ctx, r); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		all, err := storage.ListContentReports(ctx, db, 0, 0)
		if err != nil || len(all) != 3 {
			t.Fatalf("list: %v %v", all, err)
		}
		if all[0].ID != "r1" || all[0].Score == nil || *all[0].Score != -50 || all[0].EventID != "$e" || all[1].Score != nil || all[2].Reason != "rude" {
			t.Errorf("reports read back wrong: %+v", all)
		}
		if got, _ := storage.ListContentReports(ctx, db, 200, 1); len(got) != 1 || got[0].ID != "r2" {
			t.Errorf("since 200, limit 1: %+v", got)
		}
		var n int64
		if err := db.WithTx(ctx, func(tx *storage.Tx) error {
			n, err = tx.DeleteContentReportsBefore(ctx, 250)
			return err
		}); err != nil || n != 2 {
			t.Fatalf("retention deleted %d: %v", n, err)
		}
		if got, _ := storage.ListContentReports(ctx, db, 0, 0); len(got) != 1 || got[0].ID != "r3" {
			t.Errorf("after retention: %+v", got)
		}
	})
}

// TestOpenIDTokens: a token is found until it expires, and expired ones are deleted when the
// next is stored.
func TestOpenIDTokens(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		insert := func(hash string, expires, now int64) {
			t.Helper()
			if err := db.WithTx(ctx, func(tx *storage.Tx) error { return tx.InsertOpenIDToken(ctx, hash, "@a:x", expires, now) }); err != nil {
				t.Fatal(err)
			}
		}
		insert("h1", 1000, 0)
		if u, err := storage.LookupOpenIDToken(ctx, db, "h1", 999); err != nil || u != "@a:x" {
			t.Errorf("live token: %q %v", u, err)
		}
		if _, err := storage.LookupOpenIDToken(ctx, db, "h1", 1000); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("expired token: %v", err)
		}
		if _, err := storage.LookupOpenIDToken(ctx, db, "nope", 0); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("unknown token: %v", err)
		}
		insert("h2", 5000, 2000)
		var rows int
		if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM openid_tokens`).Scan(&rows); err != nil || rows != 1 {
			t.Errorf("expired tokens kept: %d %v", rows, err)
		}
	})
}

// TestAccountRestrictions: locks and suspensions are set and lifted independently, show on the
// access token's owner, and an unknown account is ErrNotFound.
func TestAccountRestrictions(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		err := db.WithTx(ctx, func(tx *storage.Tx) error {
			if err := tx.InsertAccount(ctx, storage.Account{Localpart: "a", CreatedTS: 1}); err != nil {
				return err
			}
			if _, err := tx.UpsertDevice(ctx, storage.Device{Localpart: "a", DeviceID: "D", CreatedTS: 1}); err != nil {
				return err
			}
			return tx.InsertAccessToken(ctx, storage.AccessToken{Hash: "tok", Localpart: "a", DeviceID: "D", CreatedTS: 1})
		})
		if err != nil {
			t.Fatal(err)
		}
		set := func(fn func(tx *storage.Tx) error) error { return db.WithTx(ctx, fn) }
		if err := set(func(tx *storage.Tx) error { return tx.SetAccountLocked(ctx, "a", true, 10) }); err != nil {
			t.Fatal(err)
		}
		if err := set(func(tx *storage.Tx) error { return tx.SetAccountLocked(ctx, "a", true, 20) }); err != nil {
			t.Fatal(err)
		}
		if err := set(func(tx *storage.Tx) error { return tx.SetAccountSuspended(ctx, "a", true, 10) }); err != nil {
			t.Fatal(err)
		}
		r, err := storage.GetAccountRestrictions(ctx, db, "a")
		if err != nil || !r.Locked || !r.Suspended {
			t.Errorf("restrictions: %+v %v", r, err)
		}
		if o, err := storage.LookupAccessToken(ctx, db, "tok"); err != nil || !o.Locked || !o.Suspended {
			t.Errorf("token owner: %+v %v", o, err)
		}
		if err := set(func(tx *storage.Tx) error { return tx.SetAccountLocked(ctx, "a", false, 0) }); err != nil {
			t.Fatal(err)
		}
		if r, _ := storage.GetAccountRestrictions(ctx, db, "a"); r.Locked || !r.Suspended {
			t.Errorf("after unlock: %+v", r)
		}
		if err := set(func(tx *storage.Tx) error { return tx.SetAccountSuspended(ctx, "ghost", true, 1) }); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("unknown account: %v", err)
		}
		if _, err := storage.GetAccountRestrictions(ctx, db, "ghost"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("unknown account: %v", err)
		}
	})
}

// TestProfileFields: custom fields are set, replaced and deleted, and go with the profile.
func TestProfileFields(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		do := func(fn func(tx *storage.Tx) error) {
			t.Helper()
			if err := db.WithTx(ctx, fn); err != nil {
				t.Fatal(err)
			}
		}
		do(func(tx *storage.Tx) error { return tx.SetProfileField(ctx, "a", "m.tz", []byte(`"Europe/Paris"`)) })
		do(func(tx *storage.Tx) error { return tx.SetProfileField(ctx, "a", "m.tz", []byte(`"Europe/London"`)) })
		do(func(tx *storage.Tx) error {
			return tx.SetProfileField(ctx, "a", "org.example.x", []byte(`{"k":[1,null]}`))
		})
		do(func(tx *storage.Tx) error { return tx.SetProfileField(ctx, "b", "org.example.x", []byte(`null`)) })
		f, err := storage.ProfileFields(ctx, db, "a")
		if err != nil || len(f) != 2 || string(f["m.tz"]) != `"Europe/London"` || string(f["org.example.x"]) != `{"k":[1,null]}` {
			t.Errorf("fields: %v %v", f, err)
		}
		do(func(tx *storage.Tx) error { return tx.DeleteProfileField(ctx, "a", "m.tz") })
		do(func(tx *storage.Tx) error { return tx.DeleteProfileField(ctx, "a", "m.never") })
		if f, _ := storage.ProfileFields(ctx, db, "a"); len(f) != 1 {
			t.Errorf("after delete: %v", f)
		}
		do(func(tx *storage.Tx) error { return tx.DeleteProfile(ctx, "a") })
		if f, _ := storage.ProfileFields(ctx, db, "a"); len(f) != 0 {
			t.Errorf("erasure kept fields: %v", f)
		}
		if f, _ := storage.ProfileFields(ctx, db, "b"); string(f["org.example.x"]) != "null" {
			t.Errorf("another user's fields: %v", f)
		}
	})
}
