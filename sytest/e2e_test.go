package sytest

// End-to-end encryption through a real server, with a real third-party client library:
// mautrix's pure-Go Olm and Megolm (goolm). The goolm packages are imported directly, so no
// build tag is needed: mautrix's higher-level crypto package defaults to cgo libolm and needs
// -tags goolm, which this suite avoids so that plain `go test ./...` runs it.

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/crypto/goolm/account"
	"maunium.net/go/mautrix/crypto/goolm/session"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/id"

	"myelin/keys/e2e"
	"myelin/storage"
)

// olmDevice is a client device with its Olm account.
type olmDevice struct {
	*Client
	acc     *account.Account
	ed25519 id.Ed25519
	curve   id.Curve25519
}

func newOlmDevice(t *testing.T, c *Client) *olmDevice {
	t.Helper()
	acc, err := account.NewAccount()
	if err != nil {
		t.Fatal(err)
	}
	ed, curve, err := acc.IdentityKeys()
	if err != nil {
		t.Fatal(err)
	}
	return &olmDevice{Client: c, acc: acc, ed25519: ed, curve: curve}
}

// signed adds the device's signature to obj, as the spec's "Signing JSON" describes.
func (d *olmDevice) signed(t *testing.T, obj map[string]any) map[string]any {
	t.Helper()
	canonical, err := canonicaljson.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := d.acc.Sign(canonical)
	if err != nil {
		t.Fatal(err)
	}
	obj["signatures"] = map[string]any{d.UserID: map[string]string{"ed25519:" + d.DeviceID: string(sig)}}
	return obj
}

// uploadKeys publishes the device keys, n fresh one-time keys and a fallback key.
func (d *olmDevice) uploadKeys(t *testing.T, n uint) Reply {
	t.Helper()
	deviceKeys := d.signed(t, map[string]any{
		"user_id": d.UserID, "device_id": d.DeviceID,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys":       map[string]string{"ed25519:" + d.DeviceID: string(d.ed25519), "curve25519:" + d.DeviceID: string(d.curve)},
	})
	if err := d.acc.GenOneTimeKeys(n); err != nil {
		t.Fatal(err)
	}
	otks, err := d.acc.OneTimeKeys()
	if err != nil {
		t.Fatal(err)
	}
	oneTime := map[string]any{}
	for keyID, key := range otks {
		oneTime["signed_curve25519:"+keyID] = d.signed(t, map[string]any{"key": string(key)})
	}
	if err := d.acc.GenFallbackKey(); err != nil {
		t.Fatal(err)
	}
	fallback := map[string]any{}
	for keyID, key := range d.acc.FallbackKeyUnpublished() {
		fallback["signed_curve25519:"+keyID] = d.signed(t, map[string]any{"key": string(key), "fallback": true})
	}
	r := d.Must(t, 200, "POST", v3+"/keys/upload", map[string]any{"device_keys": deviceKeys, "one_time_keys": oneTime, "fallback_keys": fallback})
	d.acc.MarkKeysAsPublished()
	return r
}

func TestEndToEndEncryption(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		s := Start(t, Options{DatabaseURL: dbURL})
		alice := newOlmDevice(t, Register(t, s, "alice", "alice password"))
		bob := newOlmDevice(t, Register(t, s, "bob", "bob password"))

		up := bob.uploadKeys(t, 5)
		if counts, _ := up.Body["one_time_key_counts"].(map[string]any); counts["signed_curve25519"] != float64(5) {
			t.Fatalf("bob's upload: %s", up.Raw)
		}
		alice.uploadKeys(t, 2)

		// Device keys whose self-signature does not verify are refused.
		bad := map[string]any{"user_id": alice.UserID, "device_id": alice.DeviceID, "algorithms": []string{},
			"keys": map[string]string{"ed25519:" + alice.DeviceID: string(bob.ed25519)}}
		bad = alice.signed(t, bad)
		alice.MustErr(t, 400, "M_INVALID_PARAM", "POST", v3+"/keys/upload", map[string]any{"device_keys": bad})

		// Alice looks Bob's device up and checks its self-signature with the library.
		q := alice.Must(t, 200, "POST", v3+"/keys/query", map[string]any{"device_keys": map[string]any{bob.UserID: []string{}}})
		var query struct {
			DeviceKeys map[string]map[string]json.RawMessage `json:"device_keys"`
		}
		if err := json.Unmarshal(q.Raw, &query); err != nil {
			t.Fatal(err)
		}
		bobKeys := query.DeviceKeys[bob.UserID][bob.DeviceID]
		if ok, err := signatures.VerifySignatureJSON(bobKeys, id.UserID(bob.UserID), bob.DeviceID, bob.ed25519); !ok {
			t.Fatalf("bob's device keys as served do not verify: %v: %s", err, bobKeys)
		}
		var dk struct {
			Keys map[string]string `json:"keys"`
		}
		json.Unmarshal(bobKeys, &dk)
		bobCurve := id.Curve25519(dk.Keys["curve25519:"+bob.DeviceID])

		// Alice claims one of Bob's one-time keys and checks its signature.
		c := alice.Must(t, 200, "POST", v3+"/keys/claim", map[string]any{"one_time_keys": map[string]any{bob.UserID: map[string]string{bob.DeviceID: "signed_curve25519"}}})
		var claim struct {
			OneTimeKeys map[string]map[string]map[string]json.RawMessage `json:"one_time_keys"`
		}
		json.Unmarshal(c.Raw, &claim)
		var otk id.Curve25519
		for name, raw := range claim.OneTimeKeys[bob.UserID][bob.DeviceID] {
			if ok, err := signatures.VerifySignatureJSON(raw, id.UserID(bob.UserID), bob.DeviceID, bob.ed25519); !ok {
				t.Fatalf("claimed key %s does not verify: %v", name, err)
			}
			var k struct{ Key string }
			json.Unmarshal(raw, &k)
			otk = id.Curve25519(k.Key)
		}
		if otk == "" {
			t.Fatalf("no one-time key claimed: %s", c.Raw)
		}

		// Alice opens an Olm session and sends Bob a Megolm room key through the server.
		olmOut, err := alice.acc.NewOutboundSession(bobCurve, otk)
		if err != nil {
			t.Fatal(err)
		}
		group, err := session.NewMegolmOutboundSession()
		if err != nil {
			t.Fatal(err)
		}
		roomKey := map[string]any{
			"type": "m.room_key", "sender": alice.UserID, "recipient": bob.UserID,
			"recipient_keys": map[string]string{"ed25519": string(bob.ed25519)},
			"keys":           map[string]string{"ed25519": string(alice.ed25519)},
			"content": map[string]any{"algorithm": "m.megolm.v1.aes-sha2", "room_id": "!room:localhost",
				"session_id": string(group.ID()), "session_key": group.Key()},
		}
		plaintext, _ := json.Marshal(roomKey)
		msgType, ciphertext, err := olmOut.Encrypt(plaintext)
		if err != nil {
			t.Fatal(err)
		}
		encrypted := map[string]any{
			"algorithm": "m.olm.v1.curve25519-aes-sha2", "sender_key": string(alice.curve),
			"ciphertext": map[string]any{string(bobCurve): map[string]any{"type": int(msgType), "body": string(ciphertext)}},
		}
		send := map[string]any{"messages": map[string]any{bob.UserID: map[string]any{bob.DeviceID: encrypted}}}
		alice.Must(t, 200, "PUT", v3+"/sendToDevice/m.room.encrypted/txn1", send)
		alice.Must(t, 200, "PUT", v3+"/sendToDevice/m.room.encrypted/txn1", send) // a retry

		// /sync does not exist yet: read Bob's queue from the server's database.
		msgs := toDeviceQueue(t, s, dbURL, bob.UserID, bob.DeviceID)
		if len(msgs) != 1 {
			t.Fatalf("bob has %d queued messages, want 1 (the retry must not deliver twice)", len(msgs))
		}
		if msgs[0].Sender != alice.UserID || msgs[0].Type != "m.room.encrypted" {
			t.Errorf("queued message from %s of type %s", msgs[0].Sender, msgs[0].Type)
		}
		var got struct {
			SenderKey  id.Curve25519 `json:"sender_key"`
			Ciphertext map[string]struct {
				Type id.OlmMsgType `json:"type"`
				Body string        `json:"body"`
			} `json:"ciphertext"`
		}
		if err := json.Unmarshal(msgs[0].Content, &got); err != nil {
			t.Fatal(err)
		}
		mine := got.Ciphertext[string(bob.curve)]
		olmIn, err := bob.acc.NewInboundSessionFrom(&got.SenderKey, mine.Body)
		if err != nil {
			t.Fatalf("bob cannot open the Olm session: %v", err)
		}
		decrypted, err := olmIn.Decrypt(mine.Body, mine.Type)
		if err != nil {
			t.Fatalf("bob cannot decrypt: %v", err)
		}
		var received struct {
			Type    string `json:"type"`
			Sender  string `json:"sender"`
			Content struct {
				SessionKey string `json:"session_key"`
			} `json:"content"`
		}
		if err := json.Unmarshal(decrypted, &received); err != nil || received.Type != "m.room_key" || received.Sender != alice.UserID {
			t.Fatalf("bob decrypted %s (%v)", decrypted, err)
		}

		// With the room key, Bob reads a Megolm message Alice encrypted.
		inbound, err := session.NewMegolmInboundSession([]byte(received.Content.SessionKey))
		if err != nil {
			t.Fatal(err)
		}
		megolmCiphertext, err := group.Encrypt([]byte(`{"type":"m.room.message","content":{"body":"hello bob"}}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _, err := inbound.Decrypt(megolmCiphertext)
		if err != nil || string(body) != `{"type":"m.room.message","content":{"body":"hello bob"}}` {
			t.Fatalf("megolm decrypt: %q, %v", body, err)
		}

		// One-time keys are handed out once: four left, then the fallback key.
		for i := range 5 {
			c := alice.Must(t, 200, "POST", v3+"/keys/claim", map[string]any{"one_time_keys": map[string]any{bob.UserID: map[string]string{bob.DeviceID: "signed_curve25519"}}})
			var claim struct {
				OneTimeKeys map[string]map[string]map[string]map[string]any `json:"one_time_keys"`
			}
			json.Unmarshal(c.Raw, &claim)
			for _, key := range claim.OneTimeKeys[bob.UserID][bob.DeviceID] {
				if fb := key["fallback"] == true; fb != (i == 4) {
					t.Errorf("claim %d: fallback = %v", i+2, fb)
				}
			}
		}
		if r := bob.Must(t, 200, "POST", v3+"/keys/upload", map[string]any{}); fmt.Sprint(r.Body["one_time_key_counts"]) != "map[signed_curve25519:0]" {
			t.Errorf("counts after claiming all: %s", r.Raw)
		}
	})
}

// toDeviceQueue reads the messages waiting for a device straight from a running server's
// database, standing in for /sync until it exists.
func toDeviceQueue(t *testing.T, s *Server, dbURL, userID, deviceID string) []e2e.ToDeviceEvent {
	t.Helper()
	ctx := context.Background()
	cfg := storage.Config{URL: dbURL}
	if dbURL == "" {
		cfg.SQLitePath = s.DataDir + "/myelin.db"
	}
	db, err := storage.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	msgs, err := e2e.New(db, s.Name, e2e.Options{}).ToDeviceSince(ctx, userID, deviceID, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func TestKeyBackupAndCrossSigningEndpoints(t *testing.T) {
	s := Start(t, Options{})
	alice := Register(t, s, "alice", "alice password")
	const alg = "m.megolm_backup.v1.curve25519-aes-sha2"

	alice.MustErr(t, 404, "M_NOT_FOUND", "GET", v3+"/room_keys/version", nil)
	v := alice.Must(t, 200, "POST", v3+"/room_keys/version", map[string]any{"algorithm": alg, "auth_data": map[string]any{"public_key": "abc"}}).Str("version")
	key := func(verified bool, fmi int) map[string]any {
		return map[string]any{"first_message_index": fmi, "forwarded_count": 0, "is_verified": verified,
			"session_data": map[string]any{"ciphertext": fmt.Sprint(fmi), "ephemeral": "e", "mac": "m"}}
	}
	put := alice.Must(t, 200, "PUT", v3+"/room_keys/keys/!r:localhost/s1?version="+v, key(false, 3))
	if put.Body["count"] != float64(1) || put.Str("etag") == "" {
		t.Fatalf("put: %s", put.Raw)
	}
	alice.Must(t, 200, "PUT", v3+"/room_keys/keys?version="+v, map[string]any{"rooms": map[string]any{"!r:localhost": map[string]any{"sessions": map[string]any{"s1": key(false, 5), "s2": key(true, 0)}}}})
	if got := alice.Must(t, 200, "GET", v3+"/room_keys/keys/!r:localhost/s1?version="+v, nil); got.Body["first_message_index"] != float64(3) {
		t.Errorf("a worse key replaced a better one: %s", got.Raw)
	}
	if info := alice.Must(t, 200, "GET", v3+"/room_keys/version", nil); info.Str("version") != v || info.Body["count"] != float64(2) {
		t.Errorf("backup info: %s", info.Raw)
	}
	alice.MustErr(t, 404, "M_NOT_FOUND", "GET", v3+"/room_keys/keys/!r:localhost/nope?version="+v, nil)
	if room := alice.Must(t, 200, "GET", v3+"/room_keys/keys/!other:localhost?version="+v, nil); string(room.Raw) != `{"sessions":{}}` {
		t.Errorf("empty room: %s", room.Raw)
	}
	v2 := alice.Must(t, 200, "POST", v3+"/room_keys/version", map[string]any{"algorithm": alg, "auth_data": map[string]any{}}).Str("version")
	wrong := alice.MustErr(t, 403, "M_WRONG_ROOM_KEYS_VERSION", "PUT", v3+"/room_keys/keys/!r:localhost/s1?version="+v, key(true, 0))
	if wrong.Str("current_version") != v2 {
		t.Errorf("wrong version reply: %s", wrong.Raw)
	}
	alice.Must(t, 200, "DELETE", v3+"/room_keys/version/"+v2, nil)
	alice.Must(t, 200, "DELETE", v3+"/room_keys/version/"+v2, nil)
	alice.MustErr(t, 404, "M_NOT_FOUND", "DELETE", v3+"/room_keys/version/999", nil)

	// Cross-signing: the first upload needs no password, replacing the master key does.
	master := func(key string) map[string]any {
		return map[string]any{"user_id": alice.UserID, "usage": []string{"master"}, "keys": map[string]string{"ed25519:" + key: key}}
	}
	first, other := "nqOvzeuGWT/sRx3h7+MHoInYj8DPTQr/C8mPWx+z2zE", "Dg7Tj1g0vy9OGixD4y6uyHtqgKSxZ8r+bTIHc1HpqOY"
	alice.Must(t, 200, "POST", v3+"/keys/device_signing/upload", map[string]any{"master_key": master(first)})
	alice.Must(t, 200, "POST", v3+"/keys/device_signing/upload", map[string]any{"master_key": master(first)})
	challenge := alice.Must(t, 401, "POST", v3+"/keys/device_signing/upload", map[string]any{"master_key": master(other)})
	alice.Must(t, 200, "POST", v3+"/keys/device_signing/upload", map[string]any{"master_key": master(other), "auth": map[string]any{
		"type": "m.login.password", "session": challenge.Str("session"), "password": "alice password",
		"identifier": map[string]any{"type": "m.id.user", "user": alice.UserID},
	}})
	q := alice.Must(t, 200, "POST", v3+"/keys/query", map[string]any{"device_keys": map[string]any{alice.UserID: []string{}}})
	if mk, _ := q.Body["master_keys"].(map[string]any); mk[alice.UserID] == nil || fmt.Sprint(mk[alice.UserID]) == fmt.Sprint(master(first)) {
		t.Errorf("master key after replacement: %s", q.Raw)
	}
	changes := alice.Must(t, 200, "GET", v3+"/keys/changes?from=0&to=0", nil)
	if fmt.Sprint(changes.Body["changed"]) != "["+alice.UserID+"]" {
		t.Errorf("changes: %s", changes.Raw)
	}
}
