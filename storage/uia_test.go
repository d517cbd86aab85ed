package storage_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

func TestUIASessions(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		s := storage.UIASession{ID: "s1", Operation: "POST /register", CreatedTS: 10, ExpiresTS: 100}
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error { return tx.InsertUIASession(ctx, s) })
		got, err := storage.GetUIASession(ctx, db, "s1", 50)
		if err != nil || got.Operation != s.Operation || len(got.Completed) != 0 || got.Data == nil {
			t.Fatalf("GetUIASession = %+v, %v", got, err)
		}
		got.Completed = append(got.Completed, "m.login.dummy")
		got.Data["k"] = "v"
		got.Localpart = "alice"
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error { return tx.UpdateUIASession(ctx, got) })
		again, err := storage.GetUIASession(ctx, db, "s1", 50)
		if err != nil || !slices.Equal(again.Completed, []string{"m.login.dummy"}) || again.Data["k"] != "v" || again.Localpart != "alice" {
			t.Fatalf("after update: %+v, %v", again, err)
		}
		if _, err := storage.GetUIASession(ctx, db, "s1", 100); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("an expired session was returned: %v", err)
		}
		// Starting a session purges expired ones.
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			return tx.InsertUIASession(ctx, storage.UIASession{ID: "s2", Operation: "x", CreatedTS: 200, ExpiresTS: 300})
		})
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			if err := tx.UpdateUIASession(ctx, got); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("expired session not purged: %v", err)
			}
			return tx.DeleteUIASession(ctx, "s2")
		})
		if _, err := storage.GetUIASession(ctx, db, "s2", 250); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("deleted session: %v", err)
		}
	})
}
