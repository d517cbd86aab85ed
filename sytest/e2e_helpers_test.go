package sytest

// A small end-to-end encryption client for the scenarios in e2e_scenarios_test.go, built from
// mautrix's pure-Go Olm and Megolm (goolm) and its backup helpers: every cryptographic step is
// the library's. This file only moves the library's output through the server's HTTP API and
// reads it back through /sync, /messages and the key endpoints.

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix/crypto/goolm/session"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/id"
)

const (
	olmAlgorithm    = "m.olm.v1.curve25519-aes-sha2"
	megolmAlgorithm = "m.megolm.v1.aes-sha2"
)

var e2eTxn atomic.Int64

func nextTxn(prefix string) string { return fmt.Sprintf("%s%d", prefix, e2eTxn.Add(1)) }

// e2eUser is one device of a user, with what its client remembers between syncs: the sync
// token, the Megolm sessions it received (by session id), the timeline events it has seen (by
// event id) and the last values of the sync's key counters.
type e2eUser struct {
	*olmDevice
	since        string
	inbound      map[string]*session.MegolmInboundSession
	inboundRooms map[string]string // session id -> room id, from the m.room_key
	timeline     map[string]json.RawMessage
	otkCounts    map[string]int
	fallback     []string
	hadFallback  bool // the last sync carried device_unused_fallback_key_types
}

func newE2EUser(t *testing.T, c *Client) *e2eUser {
	t.Helper()
	return &e2eUser{olmDevice: newOlmDevice(t, c), inbound: map[string]*session.MegolmInboundSession{},
		inboundRooms: map[string]string{}, timeline: map[string]json.RawMessage{}}
}

// e2eSync is the part of a /sync response the scenarios read.
type e2eSync struct {
	NextBatch string `json:"next_batch"`
	ToDevice  struct {
		Events []struct {
			Sender  string          `json:"sender"`
			Type    string          `json:"type"`
			Content json.RawMessage `json:"content"`
		} `json:"events"`
	} `json:"to_device"`
	Rooms struct {
		Join map[string]struct {
			Timeline struct {
				Events []json.RawMessage `json:"events"`
			} `json:"timeline"`
		} `json:"join"`
	} `json:"rooms"`
	OTKCounts map[string]int `json:"device_one_time_keys_count"`
	Fallback  *[]string      `json:"device_unused_fallback_key_types"`
}

// syncOnce runs one /sync, opens every Olm-encrypted to-device message meant for this device
// (keeping the room keys it carries) and remembers the timeline events.
func (u *e2eUser) syncOnce(t *testing.T, timeoutMS int) {
	t.Helper()
	q := "?timeout=" + strconv.Itoa(timeoutMS)
	if u.since != "" {
		q += "&since=" + url.QueryEscape(u.since)
	}
	r := u.Must(t, 200, "GET", v3+"/sync"+q, nil)
	var s e2eSync
	if err := json.Unmarshal(r.Raw, &s); err != nil {
		t.Fatalf("sync: %v: %s", err, r.Raw)
	}
	u.since = s.NextBatch
	if s.OTKCounts != nil {
		u.otkCounts = s.OTKCounts
	}
	u.hadFallback = s.Fallback != nil
	if s.Fallback != nil {
		u.fallback = *s.Fallback
	}
	for _, ev := range s.ToDevice.Events {
		if ev.Type == "m.room.encrypted" {
			u.openRoomKey(t, ev.Sender, ev.Content)
		}
	}
	for _, room := range s.Rooms.Join {
		for _, raw := range room.Timeline.Events {
			var e struct {
				EventID string `json:"event_id"`
			}
			_ = json.Unmarshal(raw, &e)
			u.timeline[e.EventID] = raw
		}
	}
}

// syncUntil syncs until done holds (at most 30 seconds).
func (u *e2eUser) syncUntil(t *testing.T, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out waiting for %s", u.UserID, what)
		}
		u.syncOnce(t, 1000)
	}
}

// openRoomKey decrypts an Olm to-device message with a new inbound session (every message of
// these scenarios starts a session) and keeps the Megolm session of the m.room_key inside.
func (u *e2eUser) openRoomKey(t *testing.T, sender string, content json.RawMessage) {
	t.Helper()
	var msg struct {
		Algorithm  string        `json:"algorithm"`
		SenderKey  id.Curve25519 `json:"sender_key"`
		Ciphertext map[string]struct {
			Type id.OlmMsgType `json:"type"`
			Body string        `json:"body"`
		} `json:"ciphertext"`
	}
	if err := json.Unmarshal(content, &msg); err != nil || msg.Algorithm != olmAlgorithm {
		t.Fatalf("to-device m.room.encrypted is not Olm: %s", content)
	}
	mine, ok := msg.Ciphertext[string(u.curve)]
	if !ok {
		return
	}
	in, err := u.acc.NewInboundSessionFrom(&msg.SenderKey, mine.Body)
	if err != nil {
		t.Fatalf("%s cannot open an Olm session from %s: %v", u.UserID, sender, err)
	}
	if err := u.acc.RemoveOneTimeKeys(in); err != nil {
		t.Fatal(err)
	}
	plain, err := in.Decrypt(mine.Body, mine.Type)
	if err != nil {
		t.Fatalf("%s cannot decrypt an Olm message from %s: %v", u.UserID, sender, err)
	}
	var payload struct {
		Type      string `json:"type"`
		Sender    string `json:"sender"`
		Recipient string `json:"recipient"`
		Content   struct {
			Algorithm  string `json:"algorithm"`
			RoomID     string `json:"room_id"`
			SessionID  string `json:"session_id"`
			SessionKey string `json:"session_key"`
		} `json:"content"`
	}
	if err := json.Unmarshal(plain, &payload); err != nil {
		t.Fatal(err)
	}
	// The Olm payload names sender and recipient: a server that rerouted the message is caught.
	if payload.Type != "m.room_key" || payload.Sender != sender || payload.Recipient != u.UserID {
		t.Fatalf("%s decrypted an unexpected payload from %s: type %s, sender %s, recipient %s", u.UserID, sender, payload.Type, payload.Sender, payload.Recipient)
	}
	group, err := session.NewMegolmInboundSession([]byte(payload.Content.SessionKey))
	if err != nil {
		t.Fatal(err)
	}
	u.inbound[payload.Content.SessionID] = group
	u.inboundRooms[payload.Content.SessionID] = payload.Content.RoomID
}

// peerKeys are a device's identity keys as another user's client verified them via /keys/query.
type peerKeys struct {
	UserID, DeviceID string
	Ed25519          id.Ed25519
	Curve25519       id.Curve25519
}

// queryDevice looks a device up with /keys/query and checks its self-signature.
func (u *e2eUser) queryDevice(t *testing.T, userID, deviceID string) peerKeys {
	t.Helper()
	r := u.Must(t, 200, "POST", v3+"/keys/query", map[string]any{"device_keys": map[string]any{userID: []string{deviceID}}})
	var q struct {
		DeviceKeys map[string]map[string]json.RawMessage `json:"device_keys"`
	}
	if err := json.Unmarshal(r.Raw, &q); err != nil {
		t.Fatal(err)
	}
	raw := q.DeviceKeys[userID][deviceID]
	var dk struct {
		Keys map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(raw, &dk); err != nil || dk.Keys == nil {
		t.Fatalf("%s's keys of %s %s: %s", u.UserID, userID, deviceID, r.Raw)
	}
	p := peerKeys{UserID: userID, DeviceID: deviceID, Ed25519: id.Ed25519(dk.Keys["ed25519:"+deviceID]), Curve25519: id.Curve25519(dk.Keys["curve25519:"+deviceID])}
	if ok, err := signatures.VerifySignatureJSON(raw, id.UserID(userID), deviceID, p.Ed25519); !ok {
		t.Fatalf("device keys of %s %s do not verify: %v", userID, deviceID, err)
	}
	return p
}

// claimKey claims a one-time key of the peer's device, checks its signature and reports whether
// the server handed out the fallback key.
func (u *e2eUser) claimKey(t *testing.T, p peerKeys) (key id.Curve25519, fallback bool) {
	t.Helper()
	r := u.Must(t, 200, "POST", v3+"/keys/claim", map[string]any{"one_time_keys": map[string]any{p.UserID: map[string]string{p.DeviceID: "signed_curve25519"}}})
	var c struct {
		OneTimeKeys map[string]map[string]map[string]json.RawMessage `json:"one_time_keys"`
	}
	if err := json.Unmarshal(r.Raw, &c); err != nil {
		t.Fatal(err)
	}
	for _, raw := range c.OneTimeKeys[p.UserID][p.DeviceID] {
		if ok, err := signatures.VerifySignatureJSON(raw, id.UserID(p.UserID), p.DeviceID, p.Ed25519); !ok {
			t.Fatalf("claimed key of %s does not verify: %v", p.UserID, err)
		}
		var k struct {
			Key      id.Curve25519 `json:"key"`
			Fallback bool          `json:"fallback"`
		}
		if err := json.Unmarshal(raw, &k); err != nil {
			t.Fatal(err)
		}
		return k.Key, k.Fallback
	}
	t.Fatalf("no key claimed for %s %s: %s", p.UserID, p.DeviceID, r.Raw)
	return "", false
}

// shareRoomKey sends the peer the Megolm session's key in an m.room_key, Olm-encrypted on a new
// session started from a claimed key, with /sendToDevice. It returns whether that key was the
// fallback key.
func (u *e2eUser) shareRoomKey(t *testing.T, p peerKeys, roomID string, group *session.MegolmOutboundSession) (fallback bool) {
	t.Helper()
	otk, fallback := u.claimKey(t, p)
	olmOut, err := u.acc.NewOutboundSession(p.Curve25519, otk)
	if err != nil {
		t.Fatal(err)
	}
	plaintext, err := json.Marshal(map[string]any{
		"type": "m.room_key", "sender": u.UserID, "recipient": p.UserID,
		"recipient_keys": map[string]string{"ed25519": string(p.Ed25519)},
		"keys":           map[string]string{"ed25519": string(u.ed25519)},
		"content": map[string]any{"algorithm": megolmAlgorithm, "room_id": roomID,
			"session_id": string(group.ID()), "session_key": group.Key()},
	})
	if err != nil {
		t.Fatal(err)
	}
	msgType, ciphertext, err := olmOut.Encrypt(plaintext)
	if err != nil {
		t.Fatal(err)
	}
	content := map[string]any{
		"algorithm": olmAlgorithm, "sender_key": string(u.curve),
		"ciphertext": map[string]any{string(p.Curve25519): map[string]any{"type": int(msgType), "body": string(ciphertext)}},
	}
	u.Must(t, 200, "PUT", v3+"/sendToDevice/m.room.encrypted/"+nextTxn("e2e"),
		map[string]any{"messages": map[string]any{p.UserID: map[string]any{p.DeviceID: content}}})
	return fallback
}

// sendEncrypted sends body as a Megolm-encrypted m.room.message and returns its event id.
func (u *e2eUser) sendEncrypted(t *testing.T, roomID string, group *session.MegolmOutboundSession, body string) string {
	t.Helper()
	plaintext, err := json.Marshal(map[string]any{"type": "m.room.message", "room_id": roomID,
		"content": map[string]any{"msgtype": "m.text", "body": body}})
	if err != nil {
		t.Fatal(err)
	}
	ciphertext, err := group.Encrypt(plaintext)
	if err != nil {
		t.Fatal(err)
	}
	r := u.Must(t, 200, "PUT", roomPath(roomID, "/send/m.room.encrypted/"+nextTxn("e2e")), map[string]any{
		"algorithm": megolmAlgorithm, "sender_key": string(u.curve), "device_id": u.DeviceID,
		"session_id": string(group.ID()), "ciphertext": string(ciphertext),
	})
	return r.Str("event_id")
}

// decryptEvent opens an m.room.encrypted room event (as the server served it) with a Megolm
// session this device holds and returns the plaintext body; it checks that the plaintext names
// the room the event is in.
func (u *e2eUser) decryptEvent(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var ev struct {
		Type    string `json:"type"`
		RoomID  string `json:"room_id"`
		Content struct {
			Algorithm  string `json:"algorithm"`
			SessionID  string `json:"session_id"`
			Ciphertext string `json:"ciphertext"`
		} `json:"content"`
	}
	if err := json.Unmarshal(raw, &ev); err != nil || ev.Type != "m.room.encrypted" || ev.Content.Algorithm != megolmAlgorithm {
		t.Fatalf("not a Megolm event: %s", raw)
	}
	group := u.inbound[ev.Content.SessionID]
	if group == nil {
		t.Fatalf("%s has no Megolm session %s", u.UserID, ev.Content.SessionID)
	}
	plain, _, err := group.Decrypt([]byte(ev.Content.Ciphertext))
	if err != nil {
		t.Fatalf("%s cannot decrypt a Megolm event: %v", u.UserID, err)
	}
	var p struct {
		Type    string `json:"type"`
		RoomID  string `json:"room_id"`
		Content struct {
			Body string `json:"body"`
		} `json:"content"`
	}
	if err := json.Unmarshal(plain, &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != "m.room.message" || (ev.RoomID != "" && p.RoomID != ev.RoomID) {
		t.Fatalf("decrypted payload of type %s for room %s in room %s", p.Type, p.RoomID, ev.RoomID)
	}
	return p.Content.Body
}

// messagesEvent finds an event in the room's history through /messages (newest first).
func (u *e2eUser) messagesEvent(t *testing.T, roomID, eventID string) json.RawMessage {
	t.Helper()
	r := u.Must(t, 200, "GET", roomPath(roomID, "/messages?dir=b&limit=100"), nil)
	var m struct {
		Chunk []json.RawMessage `json:"chunk"`
	}
	if err := json.Unmarshal(r.Raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, raw := range m.Chunk {
		var e struct {
			EventID string `json:"event_id"`
		}
		_ = json.Unmarshal(raw, &e)
		if e.EventID == eventID {
			return raw
		}
	}
	t.Fatalf("%s: event %s not in /messages of %s", u.UserID, eventID, roomID)
	return nil
}

// encryptedRoom creates a room with m.room.encryption in its initial state.
func encryptedRoom(t *testing.T, c *Client, extra map[string]any) string {
	t.Helper()
	body := map[string]any{"preset": "public_chat", "initial_state": []any{map[string]any{
		"type": "m.room.encryption", "state_key": "", "content": map[string]any{"algorithm": megolmAlgorithm},
	}}}
	for k, v := range extra {
		body[k] = v
	}
	return c.Must(t, 200, "POST", v3+"/createRoom", body).Str("room_id")
}
