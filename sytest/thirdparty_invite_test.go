package sytest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"myelin/keys"
)

// Third-party invites across two servers: alice (hs1.test) invites an e-mail address through
// an identity server (played by this test, with its own signing key); when the address is bound
// to bob (hs2.test), the identity server tells hs2 (PUT /3pid/onbind), hs2 asks hs1 to exchange
// the invite (PUT /exchange_third_party_invite), and bob is invited and can join. A signature
// by another key invites nobody.
func TestThirdPartyInvite(t *testing.T) {
	ForEachBackend(t, func(t *testing.T, dbURL string) {
		hs1, hs2, ca := roomFedPair(t, dbURL)
		alice := Register(t, hs1, "alice", "correct horse battery")
		bob := Register(t, hs2, "bob", "correct horse battery")
		carol := Register(t, hs2, "carol", "correct horse battery")

		idPub, idPriv, _ := ed25519.GenerateKey(rand.Reader)
		_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
		room := createRoom(t, alice, map[string]any{"preset": "private_chat"})
		for _, token := range []string{"tok-bob", "tok-carol"} {
			alice.Must(t, 200, "PUT", roomPath(room, "/state/m.room.third_party_invite/"+token), map[string]any{
				"display_name":     "b...@example.org",
				"key_validity_url": "https://id.test/_matrix/identity/v2/pubkey/isvalid",
				"public_key":       keys.EncodeBase64(idPub),
				"public_keys":      []map[string]any{{"public_key": keys.EncodeBase64(idPub)}},
			})
		}

		// signedBlock is what the identity server signs for an address bound to mxid.
		signedBlock := func(mxid, token string, priv ed25519.PrivateKey) json.RawMessage {
			b, _ := json.Marshal(map[string]string{"mxid": mxid, "token": token})
			signed, err := keys.SignJSON("id.test", "ed25519:0", priv, b)
			if err != nil {
				t.Fatal(err)
			}
			return signed
		}
		onBind := func(mxid, address, token string, priv ed25519.PrivateKey) {
			t.Helper()
			body, _ := json.Marshal(map[string]any{
				"medium": "email", "address": address, "mxid": mxid,
				"invites": []map[string]any{{
					"medium": "email", "address": address, "mxid": mxid, "room_id": room,
					"sender": alice.UserID, "signed": signedBlock(mxid, token, priv),
				}},
			})
			req, _ := http.NewRequest("PUT", hs2.FederationURL+"/_matrix/federation/v1/3pid/onbind", bytes.NewReader(body))
			if status, code := do(t, federationClientFor(ca, hs2.Name), req); status != 200 {
				t.Fatalf("onbind: %d %s", status, code)
			}
		}

		onBind(bob.UserID, "bob@example.org", "tok-bob", idPriv)
		eventually(t, 20*time.Second, "bob's invite", func() bool {
			_, ok := doSync(t, bob, "").Rooms.Invite[room]
			return ok
		})
		member := stateContent(t, alice, room, "m.room.member", bob.UserID)
		tpi, _ := member["third_party_invite"].(map[string]any)
		if member["membership"] != "invite" || tpi["display_name"] != "b...@example.org" || tpi["signed"] == nil {
			t.Fatalf("bob's membership: %v", member)
		}
		bob.Must(t, 200, "POST", "/_matrix/client/v3/join/"+esc(room)+"?server_name=hs1.test", map[string]any{})
		membershipIs(t, alice, room, bob.UserID, "join")

		// Signed by a key the room does not know: no invite (onbind returns once the exchange
		// has been answered).
		onBind(carol.UserID, "carol@example.org", "tok-carol", otherPriv)
		if r := alice.Do(t, "GET", roomPath(room, "/state/m.room.member/"+esc(carol.UserID)), nil); r.Status != 404 {
			t.Fatalf("a badly signed third-party invite gave carol a membership: %d %s", r.Status, r.Raw)
		}

		// Bad requests.
		for _, body := range []string{`{}`, `{"medium":"email","address":"a@b","mxid":"@x:elsewhere.test","invites":[]}`, `not json`} {
			req, _ := http.NewRequest("PUT", hs2.FederationURL+"/_matrix/federation/v1/3pid/onbind", bytes.NewReader([]byte(body)))
			if status, _ := do(t, federationClientFor(ca, hs2.Name), req); status != 400 {
				t.Fatalf("onbind %s: status %d, want 400", body, status)
			}
		}
	})
}
