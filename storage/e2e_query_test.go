package storage_test

import (
	"context"
	"fmt"
	"testing"

	"myelin/storage"
	"myelin/storage/storagetest"
)

// The list reads behind /keys/query must return every user's rows even when the users do not
// fit in one IN (...) list.
func TestE2EReadsOfManyUsers(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		const n = 1500 // more than one chunk
		var users []string
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			for i := range n {
				u := fmt.Sprintf("@u%d:test", i)
				users = append(users, u)
				if _, err := tx.UpsertDeviceKeys(ctx, storage.DeviceKeys{UserID: u, DeviceID: "B", KeyJSON: []byte(`{"d":"B"}`)}); err != nil {
					return err
				}
				if _, err := tx.UpsertDeviceKeys(ctx, storage.DeviceKeys{UserID: u, DeviceID: "A", KeyJSON: []byte(`{"d":"A"}`)}); err != nil {
					return err
				}
				if err := tx.UpsertCrossSigningKey(ctx, u, "master", []byte(`{"m":1}`)); err != nil {
					return err
				}
				for _, signer := range []string{"@z:test", "@a:test"} {
					if err := tx.UpsertKeySignature(ctx, storage.KeySignature{TargetUserID: u, TargetKeyID: "A",
						SignerUserID: signer, SignerKeyID: "ed25519:K", Signature: "s"}); err != nil {
						return err
					}
				}
			}
			return nil
		})
		users = append(users, "@nobody:test")

		devs, err := storage.ListDeviceKeysOfUsers(ctx, db, users)
		if err != nil {
			t.Fatal(err)
		}
		sigs, err := storage.KeySignaturesOnUsers(ctx, db, users)
		if err != nil {
			t.Fatal(err)
		}
		cs, err := storage.CrossSigningKeysOfUsers(ctx, db, users)
		if err != nil {
			t.Fatal(err)
		}
		if len(devs) != n || len(sigs) != n || len(cs) != n {
			t.Fatalf("got keys of %d, signatures on %d, cross-signing keys of %d users; want %d each", len(devs), len(sigs), len(cs), n)
		}
		for _, u := range users[:n] {
			if d := devs[u]; len(d) != 2 || d[0].DeviceID != "A" || d[1].DeviceID != "B" || string(d[1].KeyJSON) != `{"d":"B"}` {
				t.Fatalf("device keys of %s: %+v", u, d)
			}
			if s := sigs[u]; len(s) != 2 || s[0].SignerUserID != "@a:test" || s[0].TargetUserID != u {
				t.Fatalf("signatures on %s: %+v", u, s)
			}
			if string(cs[u]["master"]) != `{"m":1}` {
				t.Fatalf("cross-signing keys of %s: %q", u, cs[u])
			}
		}
	})
}

func TestDeviceDisplayNames(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		addAccount(t, db, "alice")
		addAccount(t, db, "bob")
		addDevice(t, db, "alice", "NAMED", "h1")
		addDevice(t, db, "alice", "UNNAMED", "h2")
		addDevice(t, db, "bob", "B", "h3")
		withTx(t, db, func(ctx context.Context, tx *storage.Tx) error {
			if err := tx.SetDeviceDisplayName(ctx, "alice", "NAMED", "phone"); err != nil {
				return err
			}
			return tx.SetDeviceDisplayName(ctx, "bob", "B", "laptop")
		})
		got, err := storage.DeviceDisplayNames(ctx, db, []string{"alice", "carol"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || len(got["alice"]) != 1 || got["alice"]["NAMED"] != "phone" {
			t.Fatalf("names: %v", got)
		}
	})
}
