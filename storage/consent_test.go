package storage_test

import (
	"context"
	"reflect"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// TestUserConsent: acceptances are recorded per version with their first time, listed per
// account (accounts that accepted nothing included, one policy when asked), and erased.
func TestUserConsent(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			for _, lp := range []string{"alice", "bob", "carol"} {
				if err := tx.InsertAccount(ctx, storage.Account{Localpart: lp, CreatedTS: 1}); err != nil {
					return err
				}
			}
			if err := tx.RecordConsent(ctx, "alice", map[string]string{"privacy_policy": "1.0", "terms": "a"}, 100); err != nil {
				return err
			}
			if err := tx.RecordConsent(ctx, "alice", map[string]string{"privacy_policy": "2.0"}, 200); err != nil {
				return err
			}
			// Accepting a version again keeps the first time.
			if err := tx.RecordConsent(ctx, "alice", map[string]string{"privacy_policy": "1.0"}, 300); err != nil {
				return err
			}
			return tx.RecordConsent(ctx, "bob", map[string]string{"privacy_policy": "1.0"}, 150)
		})
		got, err := storage.ConsentOf(ctx, db, "alice")
		want := []storage.Consent{consent("privacy_policy", "1.0", 100), consent("privacy_policy", "2.0", 200), consent("terms", "a", 100)}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("ConsentOf(alice) = %+v, %v; want %+v", got, err, want)
		}
		if got, err := storage.ConsentOf(ctx, db, "carol"); err != nil || len(got) != 0 {
			t.Errorf("ConsentOf(carol) = %+v, %v", got, err)
		}

		all, err := storage.ConsentByAccount(ctx, db, "")
		if err != nil {
			t.Fatal(err)
		}
		wantAll := []storage.AccountConsent{
			{Localpart: "alice", Accepted: want},
			{Localpart: "bob", Accepted: []storage.Consent{consent("privacy_policy", "1.0", 150)}},
			{Localpart: "carol"},
		}
		if !reflect.DeepEqual(all, wantAll) {
			t.Errorf("ConsentByAccount = %+v, want %+v", all, wantAll)
		}
		terms, err := storage.ConsentByAccount(ctx, db, "terms")
		wantTerms := []storage.AccountConsent{{Localpart: "alice", Accepted: []storage.Consent{consent("terms", "a", 100)}}, {Localpart: "bob"}, {Localpart: "carol"}}
		if err != nil || !reflect.DeepEqual(terms, wantTerms) {
			t.Errorf("ConsentByAccount(terms) = %+v, %v", terms, err)
		}

		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error { return tx.DeleteUserConsent(ctx, "alice") })
		if got, err := storage.ConsentOf(ctx, db, "alice"); err != nil || len(got) != 0 {
			t.Errorf("after erasure: %+v, %v", got, err)
		}
		if got, err := storage.ConsentOf(ctx, db, "bob"); err != nil || len(got) != 1 {
			t.Errorf("another user's consent after erasure: %+v, %v", got, err)
		}
	})
}

func consent(policy, version string, ts int64) storage.Consent {
	return storage.Consent{PolicyID: policy, Version: version, AcceptedTS: ts}
}
