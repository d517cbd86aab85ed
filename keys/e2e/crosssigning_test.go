package e2e_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"testing"

	"myelin/keys"
	"myelin/keys/e2e"
	"myelin/storage"
	"myelin/storage/storagetest"
)

func TestCrossSigning(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ctx := context.Background()
		notes := &recordingNotifier{}
		s := newStore(t, db, e2e.Options{Notifier: notes}, map[string][]string{"alice": {"A1"}, "bob": {"B1"}, "carol": {"C1"}})
		alice, bob := newDevice(t, uid("alice"), "A1"), newDevice(t, uid("bob"), "B1")
		for _, d := range []device{alice, bob} {
			if _, err := s.Upload(ctx, d.user, d.id, e2e.Upload{DeviceKeys: d.deviceKeys(t)}); err != nil {
				t.Fatal(err)
			}
		}
		amsk, assk, ausk := newCrossKey(t), newCrossKey(t), newCrossKey(t)
		stranger := newCrossKey(t)

		t.Run("rejects", func(t *testing.T) {
			for _, tt := range []struct {
				name string
				up   e2e.CrossSigningUpload
				want string
			}{
				{"nothing", e2e.CrossSigningUpload{}, "M_MISSING_PARAM"},
				{"self-signing key without a master key", e2e.CrossSigningUpload{SelfSigningKey: assk.object(t, alice.user, "self_signing", &amsk)}, "M_MISSING_PARAM"},
				{"self-signing key signed by another key", e2e.CrossSigningUpload{MasterKey: amsk.object(t, alice.user, "master", nil), SelfSigningKey: assk.object(t, alice.user, "self_signing", &stranger)}, "M_INVALID_SIGNATURE"},
				{"user-signing key unsigned", e2e.CrossSigningUpload{MasterKey: amsk.object(t, alice.user, "master", nil), UserSigningKey: ausk.object(t, alice.user, "user_signing", nil)}, "M_INVALID_SIGNATURE"},
				{"wrong usage", e2e.CrossSigningUpload{MasterKey: amsk.object(t, alice.user, "self_signing", nil)}, "M_INVALID_PARAM"},
				{"another user's key", e2e.CrossSigningUpload{MasterKey: amsk.object(t, bob.user, "master", nil)}, "M_INVALID_PARAM"},
			} {
				if err := s.UploadCrossSigningKeys(ctx, alice.user, tt.up, false); errKind(err) != tt.want {
					t.Errorf("%s: %v, want %s", tt.name, err, tt.want)
				}
			}
		})

		full := e2e.CrossSigningUpload{
			MasterKey:      amsk.object(t, alice.user, "master", nil),
			SelfSigningKey: assk.object(t, alice.user, "self_signing", &amsk),
			UserSigningKey: ausk.object(t, alice.user, "user_signing", &amsk),
		}
		if need, err := s.CrossSigningNeedsAuth(ctx, alice.user, full); err != nil || need {
			t.Fatalf("first upload needs auth = %v, %v; want false", need, err)
		}
		if err := s.UploadCrossSigningKeys(ctx, alice.user, full, false); err != nil {
			t.Fatal(err)
		}
		if need, _ := s.CrossSigningNeedsAuth(ctx, alice.user, full); need {
			t.Error("an identical re-upload needs auth")
		}
		if err := s.UploadCrossSigningKeys(ctx, alice.user, full, false); err != nil {
			t.Errorf("identical re-upload: %v", err)
		}
		replacement := e2e.CrossSigningUpload{MasterKey: newCrossKey(t).object(t, alice.user, "master", nil)}
		if need, _ := s.CrossSigningNeedsAuth(ctx, alice.user, replacement); !need {
			t.Error("replacing the master key does not need auth")
		}
		if err := s.UploadCrossSigningKeys(ctx, alice.user, replacement, false); errKind(err) != "user-interactive authentication required" {
			t.Errorf("replacing without auth: %v", err)
		}
		bmsk, busk := newCrossKey(t), newCrossKey(t)
		if err := s.UploadCrossSigningKeys(ctx, bob.user, e2e.CrossSigningUpload{
			MasterKey: bmsk.object(t, bob.user, "master", nil), UserSigningKey: busk.object(t, bob.user, "user_signing", &bmsk),
		}, false); err != nil {
			t.Fatal(err)
		}

		// Alice signs her device with her self-signing key and her master key with her device;
		// Bob signs Alice's master key with his user-signing key.
		var deviceObj map[string]any
		json.Unmarshal(alice.deviceKeys(t), &deviceObj)
		delete(deviceObj, "signatures")
		signedDevice := sign(t, deviceObj, alice.user, "ed25519:"+assk.pub(), assk.priv)
		signedMaster := sign(t, mustObject(t, full.MasterKey), alice.user, "ed25519:A1", alice.priv)
		failures, err := s.UploadSignatures(ctx, alice.user, map[string]map[string]json.RawMessage{
			alice.user: {"A1": signedDevice, amsk.pub(): signedMaster, "NOPE": signedDevice},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(failures[alice.user]) != 1 || failures[alice.user]["NOPE"].Errcode != "M_NOT_FOUND" {
			t.Errorf("failures = %+v, want only NOPE: M_NOT_FOUND", failures)
		}
		bobSigned := sign(t, mustObject(t, full.MasterKey), bob.user, "ed25519:"+busk.pub(), busk.priv)
		forged := sign(t, mustObject(t, full.MasterKey), bob.user, "ed25519:"+busk.pub(), stranger.priv)
		if failures, err := s.UploadSignatures(ctx, bob.user, map[string]map[string]json.RawMessage{alice.user: {amsk.pub(): forged}}); err != nil || failures[alice.user][amsk.pub()].Errcode != "M_INVALID_SIGNATURE" {
			t.Errorf("forged signature: %+v, %v; want M_INVALID_SIGNATURE", failures, err)
		}
		if failures, err := s.UploadSignatures(ctx, bob.user, map[string]map[string]json.RawMessage{alice.user: {amsk.pub(): bobSigned}}); err != nil || len(failures) != 0 {
			t.Fatalf("bob's signature: %+v, %v", failures, err)
		}

		query := func(requester string) e2e.QueryResult {
			q, err := s.Query(ctx, requester, map[string][]string{alice.user: {}})
			if err != nil {
				t.Fatal(err)
			}
			return q
		}
		for _, tt := range []struct {
			requester      string
			seesUSK        bool
			seesBobsMaster bool
		}{{alice.user, true, false}, {bob.user, false, true}, {uid("carol"), false, false}} {
			q := query(tt.requester)
			if _, ok := q.UserSigningKeys[alice.user]; ok != tt.seesUSK {
				t.Errorf("%s sees alice's user-signing key: %v, want %v", tt.requester, ok, tt.seesUSK)
			}
			if _, ok := q.SelfSigningKeys[alice.user]; !ok {
				t.Errorf("%s does not see alice's self-signing key", tt.requester)
			}
			master := mustObject(t, q.MasterKeys[alice.user])
			sigs := master["signatures"].(map[string]any)
			if _, ok := sigs[bob.user]; ok != tt.seesBobsMaster {
				t.Errorf("%s sees bob's signature on alice's master key: %v, want %v", tt.requester, ok, tt.seesBobsMaster)
			}
			if _, ok := sigs[alice.user].(map[string]any)["ed25519:A1"]; !ok {
				t.Errorf("%s does not see alice's device signature on her master key", tt.requester)
			}
			dev, _ := keys.ParseObject(q.DeviceKeys[alice.user]["A1"])
			got, _ := keys.Signatures(dev, alice.user)
			if err := keys.VerifyObject(alice.user, "ed25519:"+assk.pub(), assk.priv.Public().(ed25519.PublicKey), dev); err != nil || got["ed25519:A1"] == "" {
				t.Errorf("%s: alice's device keys lack a valid self-signing or device signature: %v", tt.requester, err)
			}
		}

		// Replacing the self-signing key (with auth) drops the signatures it made.
		newSSK := newCrossKey(t)
		if err := s.UploadCrossSigningKeys(ctx, alice.user, e2e.CrossSigningUpload{SelfSigningKey: newSSK.object(t, alice.user, "self_signing", &amsk)}, true); err != nil {
			t.Fatal(err)
		}
		dev, _ := keys.ParseObject(query(alice.user).DeviceKeys[alice.user]["A1"])
		if got, _ := keys.Signatures(dev, alice.user); got["ed25519:"+assk.pub()] != "" {
			t.Error("a signature by a replaced self-signing key is still served")
		}
	})
}

func mustObject(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
