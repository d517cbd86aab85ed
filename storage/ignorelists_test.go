package storage_test

import (
	"context"
	"encoding/json"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// IgnoredUserListContent serves lists from its cache and follows every committed change: set,
// replaced, deleted with the account's sync data; a rolled-back change leaves the list as it
// was.
func TestIgnoredUserListContentFollowsChanges(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		const user = "@carol:test"
		want := func(content string) {
			t.Helper()
			for range 2 { // the second read comes from the cache
				got, err := db.IgnoredUserListContent(ctx, user)
				if err != nil || string(got) != content {
					t.Fatalf("list = %s, %v; want %s", got, err, content)
				}
			}
		}
		set := func(content string) error {
			return db.WithTx(ctx, func(tx *storage.Tx) error {
				_, err := tx.SetAccountData(ctx, user, "", storage.IgnoredUserListType, json.RawMessage(content))
				return err
			})
		}
		want("")
		if err := set(`{"ignored_users":{"@a:test":{}}}`); err != nil {
			t.Fatal(err)
		}
		want(`{"ignored_users":{"@a:test":{}}}`)
		if err := set(`{"ignored_users":{"@b:test":{}}}`); err != nil {
			t.Fatal(err)
		}
		want(`{"ignored_users":{"@b:test":{}}}`)
		rollback := db.WithTx(ctx, func(tx *storage.Tx) error {
			if _, err := tx.SetAccountData(ctx, user, "", storage.IgnoredUserListType, json.RawMessage(`{}`)); err != nil {
				return err
			}
			return context.Canceled
		})
		if rollback != context.Canceled {
			t.Fatal(rollback)
		}
		want(`{"ignored_users":{"@b:test":{}}}`)
		if err := db.WithTx(ctx, func(tx *storage.Tx) error { return tx.DeleteUserSyncData(ctx, user, "carol") }); err != nil {
			t.Fatal(err)
		}
		want("")
	})
}
