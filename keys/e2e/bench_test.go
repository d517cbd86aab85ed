package e2e_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"testing"

	"myelin/keys"
	"myelin/keys/e2e"
	"myelin/storage"
	"myelin/storage/storagetest"
)

// BenchmarkQuery1000Users is /keys/query asking for every device of 1,000 local users in one
// request, each user with two devices and a master and self-signing key: the store's Query plus
// the JSON encoding of the response, on each backend. It reports the time; it asserts none.
func BenchmarkQuery1000Users(b *testing.B) {
	const users, devicesPerUser = 1000, 2
	for _, d := range []storage.Dialect{storage.SQLite, storage.Postgres} {
		b.Run(d.String(), func(b *testing.B) {
			ctx := context.Background()
			db := storagetest.OpenTestDB(b, d)
			s := e2e.New(db, server, e2e.Options{})
			want := make(map[string][]string, users)
			err := db.WithTx(ctx, func(tx *storage.Tx) error {
				for i := range users {
					lp := fmt.Sprintf("user%04d", i)
					if err := tx.InsertAccount(ctx, storage.Account{Localpart: lp, CreatedTS: 1}); err != nil {
						return err
					}
					for j := range devicesPerUser {
						if _, err := tx.UpsertDevice(ctx, storage.Device{Localpart: lp, DeviceID: fmt.Sprintf("D%d", j), CreatedTS: 1, LastSeenTS: 1}); err != nil {
							return err
						}
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			for i := range users {
				user := uid(fmt.Sprintf("user%04d", i))
				want[user] = nil
				for j := range devicesPerUser {
					dev := fmt.Sprintf("D%d", j)
					if _, err := s.Upload(ctx, user, dev, e2e.Upload{DeviceKeys: benchDeviceKeys(b, user, dev)}); err != nil {
						b.Fatal(err)
					}
				}
				master, ssk := benchCrossSigning(b, user)
				if err := s.UploadCrossSigningKeys(ctx, user, e2e.CrossSigningUpload{MasterKey: master, SelfSigningKey: ssk}, false); err != nil {
					b.Fatal(err)
				}
			}
			requester := uid("user0000")
			b.ResetTimer()
			for b.Loop() {
				res, err := s.Query(ctx, requester, want)
				if err != nil {
					b.Fatal(err)
				}
				if len(res.DeviceKeys) != users || len(res.MasterKeys) != users {
					b.Fatalf("query returned %d users' devices and %d master keys", len(res.DeviceKeys), len(res.MasterKeys))
				}
				if _, err := json.Marshal(res); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func benchDeviceKeys(b *testing.B, user, dev string) json.RawMessage {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	return benchSign(b, user, "ed25519:"+dev, priv, map[string]any{
		"user_id": user, "device_id": dev,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys":       map[string]string{"curve25519:" + dev: keys.EncodeBase64(make([]byte, 32)), "ed25519:" + dev: keys.EncodeBase64(pub)},
	})
}

func benchCrossSigning(b *testing.B, user string) (master, ssk json.RawMessage) {
	mpub, mpriv, _ := ed25519.GenerateKey(rand.Reader)
	spub, _, _ := ed25519.GenerateKey(rand.Reader)
	m, s := keys.EncodeBase64(mpub), keys.EncodeBase64(spub)
	master, _ = json.Marshal(map[string]any{"user_id": user, "usage": []string{"master"}, "keys": map[string]string{"ed25519:" + m: m}})
	ssk = benchSign(b, user, "ed25519:"+m, mpriv, map[string]any{"user_id": user, "usage": []string{"self_signing"}, "keys": map[string]string{"ed25519:" + s: s}})
	return master, ssk
}

func benchSign(b *testing.B, user, keyID string, priv ed25519.PrivateKey, obj any) json.RawMessage {
	raw, err := json.Marshal(obj)
	if err != nil {
		b.Fatal(err)
	}
	out, err := keys.SignJSON(user, keyID, priv, raw)
	if err != nil {
		b.Fatal(err)
	}
	return out
}
