package storage_test

import (
	"context"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

func TestServerKeys(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		store := func(keys ...storage.ServerKey) {
			t.Helper()
			if err := db.WithTx(ctx, func(tx *storage.Tx) error { return tx.StoreServerKeys(ctx, keys) }); err != nil {
				t.Fatal(err)
			}
		}
		get := func(server string) []storage.ServerKey {
			t.Helper()
			keys, err := storage.GetServerKeys(ctx, db, server)
			if err != nil {
				t.Fatal(err)
			}
			return keys
		}
		if got := get("remote.test"); len(got) != 0 {
			t.Fatalf("keys of an unknown server: %v", got)
		}
		first := storage.ServerKey{ServerName: "remote.test", KeyID: "ed25519:a", PublicKey: "AAAA",
			ValidUntilTS: 2000, FetchedTS: 1000, KeyJSON: []byte(`{"doc":1}`)}
		store(first, storage.ServerKey{ServerName: "other.test", KeyID: "ed25519:a", PublicKey: "BBBB",
			ValidUntilTS: 2000, FetchedTS: 1000, KeyJSON: []byte(`{}`)})
		if got := get("remote.test"); len(got) != 1 || got[0].PublicKey != "AAAA" || got[0].ExpiredTS != 0 ||
			got[0].ValidUntilTS != 2000 || string(got[0].KeyJSON) != `{"doc":1}` {
			t.Fatalf("stored key reads back as %+v", got)
		}

		// A newer fetch retires key a and adds key b.
		retired := first
		retired.ExpiredTS, retired.FetchedTS, retired.KeyJSON = 1500, 3000, []byte(`{"doc":2}`)
		store(retired, storage.ServerKey{ServerName: "remote.test", KeyID: "ed25519:b", PublicKey: "CCCC",
			ValidUntilTS: 9000, FetchedTS: 3000, KeyJSON: []byte(`{"doc":2}`)})
		got := get("remote.test")
		if len(got) != 2 || got[0].KeyID != "ed25519:a" || got[0].ExpiredTS != 1500 || got[1].KeyID != "ed25519:b" {
			t.Fatalf("after rotation: %+v", got)
		}

		// An older answer arriving late does not roll the key back.
		store(first)
		if got := get("remote.test"); got[0].ExpiredTS != 1500 || got[0].FetchedTS != 3000 {
			t.Errorf("a stale fetch overwrote a newer one: %+v", got[0])
		}
	})
}
