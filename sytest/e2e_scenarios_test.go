package sytest

// End-to-end encryption scenarios with a real client implementation (mautrix's goolm Olm and
// Megolm, its key backup encryption and its ed25519 signing), all through the server's HTTP
// API, to-device messages arriving through /sync:
//  1. two users of one server exchange Megolm messages both ways in an encrypted room;
//  2. a second device restores room keys from server-side backup and reads an earlier message;
//  3. a device whose one-time keys are exhausted is still reached through its fallback key;
//  4. a user bootstraps cross-signing and another user sees the keys and signatures;
//  5. scenario 1 between users of two servers.

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"maunium.net/go/mautrix/crypto/backup"
	"maunium.net/go/mautrix/crypto/goolm/pk"
	"maunium.net/go/mautrix/crypto/goolm/session"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/id"
)

func TestE2EScenarios(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := newE2EUser(t, Register(t, s, "alice", "alice password"))
		bob := newE2EUser(t, Register(t, s, "bob", "bob password"))
		alice.uploadKeys(t, 5)
		bob.uploadKeys(t, 5)
		room := encryptedRoom(t, alice.Client, nil)
		bob.Must(t, 200, "POST", v3+"/join/"+url.PathEscape(room), map[string]any{})

		t.Run("megolm both ways", func(t *testing.T) { megolmBothWays(t, alice, bob, room) })
		t.Run("restore from key backup on a new device", func(t *testing.T) { restoreFromBackup(t, s, alice, bob, room) })
		t.Run("fallback key after one-time keys run out", func(t *testing.T) {
			carol := newE2EUser(t, Register(t, s, "carol", "carol password"))
			carol.uploadKeys(t, 1)
			carol.Must(t, 200, "POST", v3+"/join/"+url.PathEscape(room), map[string]any{})
			fallbackAfterExhaustion(t, s, alice, bob, carol, room)
		})
		t.Run("cross-signing", func(t *testing.T) { crossSigning(t, alice, bob) })
	})
}

func TestE2EFederatedMegolm(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		hs1, hs2, _ := roomFedPair(t, dbURL)
		alice := newE2EUser(t, Register(t, hs1, "alice", "alice password"))
		bob := newE2EUser(t, Register(t, hs2, "bob", "bob password"))
		alice.uploadKeys(t, 3)
		bob.uploadKeys(t, 3)
		room := encryptedRoom(t, alice.Client, map[string]any{"room_version": "11"})
		bob.Must(t, 200, "POST", v3+"/join/"+url.PathEscape(room), map[string]any{})
		membershipIs(t, alice.Client, room, bob.UserID, "join")
		megolmBothWays(t, alice, bob, room)
	})
}

// megolmBothWays: each user shares a Megolm session with the other's device over Olm, sends an
// encrypted message, and the other decrypts it as /sync (and /messages) serves it.
func megolmBothWays(t *testing.T, alice, bob *e2eUser, room string) {
	t.Helper()
	for _, pair := range [][2]*e2eUser{{alice, bob}, {bob, alice}} {
		from, to := pair[0], pair[1]
		peer := from.queryDevice(t, to.UserID, to.DeviceID)
		group, err := session.NewMegolmOutboundSession()
		if err != nil {
			t.Fatal(err)
		}
		if fallback := from.shareRoomKey(t, peer, room, group); fallback {
			t.Fatalf("%s got %s's fallback key while one-time keys were left", from.UserID, to.UserID)
		}
		body := "secret from " + from.UserID
		ev := from.sendEncrypted(t, room, group, body)
		to.syncUntil(t, "the room key and message of "+from.UserID, func() bool {
			return to.inbound[string(group.ID())] != nil && to.timeline[ev] != nil
		})
		if got := to.decryptEvent(t, to.timeline[ev]); got != body {
			t.Fatalf("%s decrypted %q from /sync, want %q", to.UserID, got, body)
		}
		if got := to.decryptEvent(t, to.messagesEvent(t, room, ev)); got != body {
			t.Fatalf("%s decrypted %q from /messages, want %q", to.UserID, got, body)
		}
		// The server holds ciphertext only.
		var served struct {
			Content map[string]any `json:"content"`
		}
		_ = json.Unmarshal(to.timeline[ev], &served)
		if _, ok := served.Content["body"]; ok {
			t.Fatalf("the server served a plaintext body: %s", to.timeline[ev])
		}
	}
}

// restoreFromBackup: bob sends alice an encrypted message; alice backs its room key up with the
// m.megolm_backup.v1.curve25519-aes-sha2 algorithm (mautrix's crypto/backup); her new device
// restores the key from the server and decrypts the message from /messages.
func restoreFromBackup(t *testing.T, s *Server, alice, bob *e2eUser, room string) {
	t.Helper()
	const alg = "m.megolm_backup.v1.curve25519-aes-sha2"
	group, err := session.NewMegolmOutboundSession()
	if err != nil {
		t.Fatal(err)
	}
	bob.shareRoomKey(t, bob.queryDevice(t, alice.UserID, alice.DeviceID), room, group)
	ev := bob.sendEncrypted(t, room, group, "before your new phone")
	sid := string(group.ID())
	alice.syncUntil(t, "bob's room key", func() bool { return alice.inbound[sid] != nil && alice.timeline[ev] != nil })

	// Alice creates the backup: its public key, signed by her device.
	backupKey, err := backup.NewMegolmBackupKey()
	if err != nil {
		t.Fatal(err)
	}
	pub := base64.RawStdEncoding.EncodeToString(backupKey.PublicKey().Bytes())
	authData := alice.signed(t, map[string]any{"public_key": pub})
	version := alice.Must(t, 200, "POST", v3+"/room_keys/version", map[string]any{"algorithm": alg, "auth_data": authData}).Str("version")

	exported, err := alice.inbound[sid].Export(alice.inbound[sid].FirstKnownIndex())
	if err != nil {
		t.Fatal(err)
	}
	bobKeys := alice.queryDevice(t, bob.UserID, bob.DeviceID)
	sealed, err := backup.EncryptSessionData(backupKey, backup.MegolmSessionData{
		Algorithm: id.AlgorithmMegolmV1, SenderKey: bobKeys.Curve25519, SessionKey: string(exported),
		SenderClaimedKeys:  backup.SenderClaimedKeys{Ed25519: bobKeys.Ed25519},
		ForwardingKeyChain: []string{},
	})
	if err != nil {
		t.Fatal(err)
	}
	alice.Must(t, 200, "PUT", v3+"/room_keys/keys/"+url.PathEscape(room)+"/"+url.PathEscape(sid)+"?version="+version, map[string]any{
		"first_message_index": alice.inbound[sid].FirstKnownIndex(), "forwarded_count": 0, "is_verified": true, "session_data": sealed,
	})

	// A new device: it finds the backup, checks that Alice's first device signed it, and
	// restores the key with the recovery key the user holds.
	c2, _ := Login(t, s, "alice", "alice password", nil)
	phone := newE2EUser(t, c2)
	phone.uploadKeys(t, 1)
	info := phone.Must(t, 200, "GET", v3+"/room_keys/version", nil)
	var bi struct {
		Algorithm string          `json:"algorithm"`
		Version   string          `json:"version"`
		AuthData  json.RawMessage `json:"auth_data"`
		Count     int             `json:"count"`
	}
	if err := json.Unmarshal(info.Raw, &bi); err != nil || bi.Version != version || bi.Algorithm != alg || bi.Count != 1 {
		t.Fatalf("backup as the new device sees it: %s", info.Raw)
	}
	first := phone.queryDevice(t, alice.UserID, alice.DeviceID)
	if ok, err := signatures.VerifySignatureJSON(bi.AuthData, id.UserID(alice.UserID), alice.DeviceID, first.Ed25519); !ok {
		t.Fatalf("backup auth_data signature: %v", err)
	}
	var ad backup.MegolmAuthData
	if err := json.Unmarshal(bi.AuthData, &ad); err != nil || string(ad.PublicKey) != pub {
		t.Fatalf("backup public key: %s", bi.AuthData)
	}
	keys := phone.Must(t, 200, "GET", v3+"/room_keys/keys?version="+version, nil)
	var all struct {
		Rooms map[string]struct {
			Sessions map[string]struct {
				SessionData json.RawMessage `json:"session_data"`
			} `json:"sessions"`
		} `json:"rooms"`
	}
	if err := json.Unmarshal(keys.Raw, &all); err != nil {
		t.Fatal(err)
	}
	raw := all.Rooms[room].Sessions[sid].SessionData
	var esd backup.EncryptedSessionData[backup.MegolmSessionData]
	if err := json.Unmarshal(raw, &esd); err != nil {
		t.Fatalf("session_data: %v: %s", err, keys.Raw)
	}
	restored, err := esd.Decrypt(backupKey)
	if err != nil {
		t.Fatalf("decrypting the backed-up session: %v", err)
	}
	if restored.SenderKey != bobKeys.Curve25519 {
		t.Fatalf("restored session names sender key %s", restored.SenderKey)
	}
	in, err := session.NewMegolmInboundSessionFromExport([]byte(restored.SessionKey))
	if err != nil {
		t.Fatal(err)
	}
	phone.inbound[sid] = in
	if got := phone.decryptEvent(t, phone.messagesEvent(t, room, ev)); got != "before your new phone" {
		t.Fatalf("the new device decrypted %q", got)
	}
}

// fallbackAfterExhaustion: carol has one one-time key; alice claims it, then bob gets the
// fallback key and still starts an Olm session that carol opens. /sync shows the fallback key
// as used until carol uploads a new one.
func fallbackAfterExhaustion(t *testing.T, s *Server, alice, bob, carol *e2eUser, room string) {
	t.Helper()
	carol.syncUntil(t, "key counts", func() bool { return carol.hadFallback })
	if carol.otkCounts["signed_curve25519"] != 1 || !slices.Equal(carol.fallback, []string{"signed_curve25519"}) {
		t.Fatalf("carol before claims: counts %v, unused fallback %v", carol.otkCounts, carol.fallback)
	}
	peer := alice.queryDevice(t, carol.UserID, carol.DeviceID)
	var evs []string
	for i, from := range []*e2eUser{alice, bob, alice} {
		group, err := session.NewMegolmOutboundSession()
		if err != nil {
			t.Fatal(err)
		}
		if fallback := from.shareRoomKey(t, peer, room, group); fallback != (i > 0) {
			t.Fatalf("claim %d: fallback = %v", i+1, fallback)
		}
		evs = append(evs, from.sendEncrypted(t, room, group, "to carol "+string(rune('A'+i))))
		sid := string(group.ID())
		carol.syncUntil(t, "room key "+sid, func() bool { return carol.inbound[sid] != nil })
	}
	carol.syncUntil(t, "the three messages", func() bool {
		return carol.timeline[evs[0]] != nil && carol.timeline[evs[1]] != nil && carol.timeline[evs[2]] != nil
	})
	for i, ev := range evs {
		if got := carol.decryptEvent(t, carol.timeline[ev]); got != "to carol "+string(rune('A'+i)) {
			t.Fatalf("message %d decrypted as %q", i, got)
		}
	}
	carol.syncOnce(t, 0)
	if carol.otkCounts["signed_curve25519"] != 0 || len(carol.fallback) != 0 || !carol.hadFallback {
		t.Fatalf("carol after claims: counts %v, unused fallback %v (present %v)", carol.otkCounts, carol.fallback, carol.hadFallback)
	}
	// A new fallback key is unused again.
	carol.uploadKeys(t, 0)
	carol.syncUntil(t, "the new fallback key", func() bool { return slices.Equal(carol.fallback, []string{"signed_curve25519"}) })
}

// crossSigningKey is one of a user's cross-signing keys, made with the library's ed25519 signer.
type crossSigningKey struct {
	signer *pk.Signing
	obj    map[string]any
}

func (k crossSigningKey) pub() string { return string(k.signer.PublicKey()) }

// newCrossSigningKey makes a key for usage, signed by by (the master key) unless by is nil.
func newCrossSigningKey(t *testing.T, userID, usage string, by *crossSigningKey) crossSigningKey {
	t.Helper()
	signer, err := pk.NewSigning()
	if err != nil {
		t.Fatal(err)
	}
	pub := string(signer.PublicKey())
	k := crossSigningKey{signer: signer, obj: map[string]any{"user_id": userID, "usage": []string{usage}, "keys": map[string]string{"ed25519:" + pub: pub}}}
	if by != nil {
		by.sign(t, userID, k.obj)
	}
	return k
}

// sign adds k's signature (as userID's key) to obj, keeping signatures already there.
func (k crossSigningKey) sign(t *testing.T, userID string, obj map[string]any) map[string]any {
	t.Helper()
	sig, err := k.signer.SignJSON(obj)
	if err != nil {
		t.Fatal(err)
	}
	sigs, _ := obj["signatures"].(map[string]any)
	if sigs == nil {
		sigs = map[string]any{}
	}
	byUser, _ := sigs[userID].(map[string]any)
	if byUser == nil {
		byUser = map[string]any{}
	}
	byUser["ed25519:"+k.pub()] = sig
	sigs[userID] = byUser
	obj["signatures"] = sigs
	return obj
}

type crossSigning3 struct{ master, selfSigning, userSigning crossSigningKey }

func bootstrapCrossSigning(t *testing.T, u *e2eUser) crossSigning3 {
	t.Helper()
	master := newCrossSigningKey(t, u.UserID, "master", nil)
	cs := crossSigning3{master: master,
		selfSigning: newCrossSigningKey(t, u.UserID, "self_signing", &master),
		userSigning: newCrossSigningKey(t, u.UserID, "user_signing", &master)}
	// The first upload needs no user-interactive authentication.
	u.Must(t, 200, "POST", v3+"/keys/device_signing/upload", map[string]any{
		"master_key": cs.master.obj, "self_signing_key": cs.selfSigning.obj, "user_signing_key": cs.userSigning.obj,
	})
	return cs
}

// ownDeviceKeys returns u's device keys as the server serves them, without signatures.
func ownDeviceKeys(t *testing.T, u *e2eUser) map[string]any {
	t.Helper()
	r := u.Must(t, 200, "POST", v3+"/keys/query", map[string]any{"device_keys": map[string]any{u.UserID: []string{u.DeviceID}}})
	var q struct {
		DeviceKeys map[string]map[string]map[string]any `json:"device_keys"`
	}
	if err := json.Unmarshal(r.Raw, &q); err != nil {
		t.Fatal(err)
	}
	dk := q.DeviceKeys[u.UserID][u.DeviceID]
	delete(dk, "signatures")
	delete(dk, "unsigned")
	return dk
}

func uploadSignatures(t *testing.T, u *e2eUser, body map[string]any) {
	t.Helper()
	r := u.Must(t, 200, "POST", v3+"/keys/signatures/upload", body)
	if f, _ := r.Body["failures"].(map[string]any); len(f) != 0 {
		t.Fatalf("signature upload failures: %s", r.Raw)
	}
}

// crossSigning: alice bootstraps cross-signing and signs her device with her self-signing key;
// bob sees her master and self-signing keys (not her user-signing key) and verifies the chain
// master -> self-signing -> device with the library. Alice then signs bob's master key with her
// user-signing key, which she sees on bob's master key.
func crossSigning(t *testing.T, alice, bob *e2eUser) {
	t.Helper()
	acs := bootstrapCrossSigning(t, alice)
	device := acs.selfSigning.sign(t, alice.UserID, ownDeviceKeys(t, alice))
	uploadSignatures(t, alice, map[string]any{alice.UserID: map[string]any{alice.DeviceID: device}})
	// The device vouches for the master key too, as clients do when bootstrapping.
	masterByDevice := map[string]any{"user_id": alice.UserID, "usage": []string{"master"}, "keys": acs.master.obj["keys"]}
	masterByDevice = alice.signed(t, masterByDevice)
	uploadSignatures(t, alice, map[string]any{alice.UserID: map[string]any{acs.master.pub(): masterByDevice}})

	r := bob.Must(t, 200, "POST", v3+"/keys/query", map[string]any{"device_keys": map[string]any{alice.UserID: []string{}}})
	var q struct {
		DeviceKeys      map[string]map[string]json.RawMessage `json:"device_keys"`
		MasterKeys      map[string]json.RawMessage            `json:"master_keys"`
		SelfSigningKeys map[string]json.RawMessage            `json:"self_signing_keys"`
		UserSigningKeys map[string]json.RawMessage            `json:"user_signing_keys"`
	}
	if err := json.Unmarshal(r.Raw, &q); err != nil {
		t.Fatal(err)
	}
	uid := id.UserID(alice.UserID)
	mpub, spub := id.Ed25519(acs.master.pub()), id.Ed25519(acs.selfSigning.pub())
	if q.MasterKeys[alice.UserID] == nil || q.SelfSigningKeys[alice.UserID] == nil {
		t.Fatalf("alice's cross-signing keys as bob sees them: %s", r.Raw)
	}
	if q.UserSigningKeys[alice.UserID] != nil {
		t.Fatalf("bob sees alice's user-signing key: %s", r.Raw)
	}
	if ok, err := signatures.VerifySignatureJSON(q.MasterKeys[alice.UserID], uid, alice.DeviceID, alice.ed25519); !ok {
		t.Errorf("the device's signature of the master key: %v", err)
	}
	if ok, err := signatures.VerifySignatureJSON(q.SelfSigningKeys[alice.UserID], uid, string(mpub), mpub); !ok {
		t.Errorf("the master key's signature of the self-signing key: %v", err)
	}
	if ok, err := signatures.VerifySignatureJSON(q.DeviceKeys[alice.UserID][alice.DeviceID], uid, string(spub), spub); !ok {
		t.Errorf("the self-signing key's signature of the device: %v", err)
	}
	if ok, err := signatures.VerifySignatureJSON(q.DeviceKeys[alice.UserID][alice.DeviceID], uid, alice.DeviceID, alice.ed25519); !ok {
		t.Errorf("the device's self-signature after cross-signing: %v", err)
	}

	// Alice sees her own user-signing key, signed by her master key.
	own := alice.Must(t, 200, "POST", v3+"/keys/query", map[string]any{"device_keys": map[string]any{alice.UserID: []string{}}})
	var mine struct {
		UserSigningKeys map[string]json.RawMessage `json:"user_signing_keys"`
	}
	_ = json.Unmarshal(own.Raw, &mine)
	if ok, err := signatures.VerifySignatureJSON(mine.UserSigningKeys[alice.UserID], uid, string(mpub), mpub); !ok {
		t.Errorf("alice's own user-signing key: %v: %s", err, own.Raw)
	}

	// Alice verifies bob: her user-signing key signs his master key.
	bcs := bootstrapCrossSigning(t, bob)
	bobMaster := map[string]any{"user_id": bob.UserID, "usage": []string{"master"}, "keys": bcs.master.obj["keys"]}
	bobMaster = acs.userSigning.sign(t, alice.UserID, bobMaster)
	uploadSignatures(t, alice, map[string]any{bob.UserID: map[string]any{bcs.master.pub(): bobMaster}})
	seen := alice.Must(t, 200, "POST", v3+"/keys/query", map[string]any{"device_keys": map[string]any{bob.UserID: []string{}}})
	var theirs struct {
		MasterKeys map[string]json.RawMessage `json:"master_keys"`
	}
	_ = json.Unmarshal(seen.Raw, &theirs)
	upub := id.Ed25519(acs.userSigning.pub())
	if ok, err := signatures.VerifySignatureJSON(theirs.MasterKeys[bob.UserID], uid, string(upub), upub); !ok {
		t.Errorf("alice's signature of bob's master key: %v: %s", err, seen.Raw)
	}

	// A signature that does not verify is reported, not stored.
	// (a genuine signature by the self-signing key, but of another object).
	other, err := acs.selfSigning.signer.SignJSON(map[string]any{"not": "the device"})
	if err != nil {
		t.Fatal(err)
	}
	forged := ownDeviceKeys(t, alice)
	forged["signatures"] = map[string]any{alice.UserID: map[string]any{"ed25519:" + acs.selfSigning.pub(): other}}
	bad := alice.Must(t, 200, "POST", v3+"/keys/signatures/upload", map[string]any{alice.UserID: map[string]any{alice.DeviceID: forged}})
	if f, _ := bad.Body["failures"].(map[string]any); len(f) == 0 {
		t.Errorf("a forged signature was accepted: %s", bad.Raw)
	}
}

// Bad input through the HTTP API: each request is refused with the documented error, and
// nothing of it is stored.
func TestE2EBadInput(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := newE2EUser(t, Register(t, s, "alice", "alice password"))
		bob := newE2EUser(t, Register(t, s, "bob", "bob password"))
		deviceKeys := func(d *e2eUser, userID, deviceID string) map[string]any {
			return map[string]any{"user_id": userID, "device_id": deviceID,
				"algorithms": []string{olmAlgorithm, megolmAlgorithm},
				"keys":       map[string]string{"ed25519:" + deviceID: string(d.ed25519), "curve25519:" + deviceID: string(d.curve)}}
		}
		noKeysStored := func(t *testing.T, of *e2eUser) {
			t.Helper()
			r := bob.Must(t, 200, "POST", v3+"/keys/query", map[string]any{"device_keys": map[string]any{of.UserID: []string{}}})
			var q struct {
				DeviceKeys map[string]map[string]any `json:"device_keys"`
			}
			_ = json.Unmarshal(r.Raw, &q)
			if len(q.DeviceKeys[of.UserID]) != 0 {
				t.Fatalf("keys of %s stored: %s", of.UserID, r.Raw)
			}
			up := of.Must(t, 200, "POST", v3+"/keys/upload", map[string]any{})
			if c, _ := up.Body["one_time_key_counts"].(map[string]any); len(c) != 0 && c["signed_curve25519"] != float64(0) {
				t.Fatalf("one-time keys of %s stored: %s", of.UserID, up.Raw)
			}
		}
		otks := func(n int) map[string]any {
			out := map[string]any{}
			for i := range n {
				out["signed_curve25519:k"+strconv.Itoa(i)] = alice.signed(t, map[string]any{"key": "a" + strconv.Itoa(i)})
			}
			return out
		}

		cases := []struct {
			name, errcode string
			status        int
			body          any
		}{
			{"unsigned device keys", "M_INVALID_PARAM", 400, map[string]any{"device_keys": deviceKeys(alice, alice.UserID, alice.DeviceID), "one_time_keys": otks(1)}},
			{"device keys signed by another device's key", "M_INVALID_PARAM", 400, map[string]any{
				"device_keys": func() map[string]any {
					dk := deviceKeys(alice, alice.UserID, alice.DeviceID)
					bobSig := bob.signed(t, deviceKeys(alice, alice.UserID, alice.DeviceID))["signatures"].(map[string]any)[bob.UserID].(map[string]string)
					dk["signatures"] = map[string]any{alice.UserID: map[string]string{"ed25519:" + alice.DeviceID: bobSig["ed25519:"+bob.DeviceID]}}
					return dk
				}(), "one_time_keys": otks(1)}},
			{"keys for another user's device", "M_INVALID_PARAM", 400, map[string]any{"device_keys": alice.signed(t, deviceKeys(alice, bob.UserID, bob.DeviceID))}},
			{"keys for another device of the user", "M_INVALID_PARAM", 400, map[string]any{"device_keys": alice.signed(t, deviceKeys(alice, alice.UserID, "OTHER"))}},
			{"too many one-time keys in one upload", "M_INVALID_PARAM", 400, map[string]any{"one_time_keys": otks(1001)}},
			{"body over the request limit", "M_TOO_LARGE", 413, `{"one_time_keys":{"signed_curve25519:x":{"key":"` + strings.Repeat("A", 2<<20) + `"}}}`},
			{"one-time keys not an object", "M_BAD_JSON", 400, map[string]any{"one_time_keys": []string{"x"}}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := alice.Do(t, "POST", v3+"/keys/upload", tc.body)
				if r.Status != tc.status || r.Str("errcode") != tc.errcode {
					t.Errorf("got %d %s, want %d %s: %.300s", r.Status, r.Str("errcode"), tc.status, tc.errcode, r.Raw)
				}
				noKeysStored(t, alice)
				noKeysStored(t, bob)
			})
		}

		t.Run("malformed backup data", func(t *testing.T) {
			const alg = "m.megolm_backup.v1.curve25519-aes-sha2"
			alice.MustErr(t, 400, "M_INVALID_PARAM", "POST", v3+"/room_keys/version", map[string]any{"algorithm": alg, "auth_data": "not an object"})
			alice.MustErr(t, 400, "M_MISSING_PARAM", "POST", v3+"/room_keys/version", map[string]any{"auth_data": map[string]any{}})
			alice.MustErr(t, 404, "M_NOT_FOUND", "GET", v3+"/room_keys/version", nil)
			v := alice.Must(t, 200, "POST", v3+"/room_keys/version", map[string]any{"algorithm": alg, "auth_data": map[string]any{"public_key": "abc"}}).Str("version")
			path := v3 + "/room_keys/keys/" + url.PathEscape("!r:localhost") + "/s1?version=" + v
			for _, bad := range []struct {
				name, errcode string
				body          any
			}{
				{"session_data not an object", "M_INVALID_PARAM", map[string]any{"first_message_index": 0, "forwarded_count": 0, "is_verified": false, "session_data": "x"}},
				{"no first_message_index", "M_MISSING_PARAM", map[string]any{"forwarded_count": 0, "is_verified": false, "session_data": map[string]any{}}},
				{"no session_data", "M_MISSING_PARAM", map[string]any{"first_message_index": 0, "forwarded_count": 0, "is_verified": false}},
			} {
				r := alice.Do(t, "PUT", path, bad.body)
				if r.Status != 400 || r.Str("errcode") != bad.errcode {
					t.Errorf("%s: got %d %s, want 400 %s: %s", bad.name, r.Status, r.Str("errcode"), bad.errcode, r.Raw)
				}
			}
			r := alice.Do(t, "PUT", v3+"/room_keys/keys?version="+v, map[string]any{"rooms": map[string]any{"!r:localhost": map[string]any{"sessions": map[string]any{
				"good": map[string]any{"first_message_index": 0, "forwarded_count": 0, "is_verified": false, "session_data": map[string]any{"ciphertext": "c"}},
				"bad":  map[string]any{"first_message_index": 0, "forwarded_count": 0, "is_verified": false, "session_data": 7},
			}}}})
			if r.Status != 400 {
				t.Errorf("a batch with one malformed key: %d %s", r.Status, r.Raw)
			}
			// The batch is all or nothing: its good key was not stored either.
			if info := alice.Must(t, 200, "GET", v3+"/room_keys/version", nil); info.Body["count"] != float64(0) {
				t.Errorf("keys stored from refused requests: %s", info.Raw)
			}
			if all := alice.Must(t, 200, "GET", v3+"/room_keys/keys?version="+v, nil); string(all.Raw) != `{"rooms":{}}` {
				t.Errorf("keys stored from refused requests: %s", all.Raw)
			}
		})

		t.Run("malformed to-device message", func(t *testing.T) {
			since := ephSync(t, bob.Client, "", 0).NextBatch
			alice.MustErr(t, 400, "M_INVALID_PARAM", "PUT", v3+"/sendToDevice/m.test/bad1", map[string]any{"messages": map[string]any{bob.UserID: map[string]any{bob.DeviceID: "not an object"}}})
			if s := ephSync(t, bob.Client, since, 0); len(s.ToDevice.Events) != 0 {
				t.Errorf("a refused to-device message was delivered: %+v", s.ToDevice.Events)
			}
		})
	})
}
