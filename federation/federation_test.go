package federation

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"myelin/keys"
	"myelin/mxhttp"
	"myelin/storage"
	"myelin/storage/storagetest"
)

// mapResolver sends server names to fixed loopback addresses; unknown names fail.
type mapResolver struct {
	mu    sync.Mutex
	addrs map[string]string
}

func (m *mapResolver) Resolve(_ context.Context, name string) (Destination, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	addr, ok := m.addrs[name]
	if !ok {
		return Destination{}, fmt.Errorf("no route to %s", name)
	}
	host, _, _ := splitServerName(name)
	return Destination{Addrs: []string{addr}, Host: name, TLSName: host}, nil
}

type testHS struct {
	name   string
	key    keys.SigningKey
	db     *storage.DB
	ring   *KeyRing
	client *Client
	server *Server
	url    string
}

// startHS starts an in-process federation server with a certificate from ca.
func startHS(t *testing.T, ca *testCA, name string, res *mapResolver, notaries []string, old map[string]OldVerifyKey) *testHS {
	t.Helper()
	key, err := keys.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	client, err := NewClient(name, key, []string{ca.path}, WithResolver(res), WithTimeout(10*time.Second), WithPrivateAddresses(true))
	if err != nil {
		t.Fatal(err)
	}
	db := storagetest.OpenTestDB(t, storage.SQLite)
	ring := NewKeyRing(KeyRingConfig{ServerName: name, SigningKey: key, OldVerifyKeys: old, Notaries: notaries}, db, client)
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv := NewServer(Config{ServerName: name, SigningKey: key, MaxBodyBytes: 1 << 20, OldVerifyKeys: old, KeyRing: ring,
		Queries: map[string]mxhttp.HandlerFunc{"whoami": func(r *http.Request) (mxhttp.Response, error) {
			var body map[string]any
			if r.ContentLength > 0 {
				if err := mxhttp.ReadJSON(r, &body); err != nil {
					return mxhttp.Response{}, err
				}
			}
			return mxhttp.OK(map[string]any{"origin": OriginFromContext(r.Context())}), nil
		}}}, logrus.NewEntry(log))
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{ca.issue(t, name)}}
	hs.StartTLS()
	t.Cleanup(hs.Close)
	res.mu.Lock()
	res.addrs[name] = hs.Listener.Addr().String()
	res.mu.Unlock()
	return &testHS{name: name, key: key, db: db, ring: ring, client: client, server: srv, url: hs.URL}
}

// rawRequest sends a request to hs with the given Authorization headers, bypassing the Client.
func rawRequest(t *testing.T, ca *testCA, hs *testHS, method, uri string, body []byte, auth ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, hs.url+uri, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range auth {
		req.Header.Add("Authorization", a)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: hs.name}}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Code string `json:"errcode"`
	}
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &e)
	return resp.StatusCode, e.Code
}

func TestFederationRequestsAndKeys(t *testing.T) {
	ca := newTestCA(t)
	expired := time.Now().Add(-time.Hour).UnixMilli()
	oldKey, _ := keys.GenerateSigningKey()
	res := &mapResolver{addrs: map[string]string{}}
	hs1 := startHS(t, ca, "hs1.test", res, nil, map[string]OldVerifyKey{
		oldKey.ID: {Key: keys.EncodeBase64(oldKey.Public()), ExpiredTS: expired}})
	hs2 := startHS(t, ca, "hs2.test", res, nil, nil)
	// hs3 cannot reach hs1 and trusts hs2 as a notary.
	res3 := &mapResolver{addrs: map[string]string{}}
	hs3 := startHS(t, ca, "hs3.test", res3, []string{"hs2.test"}, nil)
	res3.addrs["hs2.test"] = res.addrs["hs2.test"]
	res.addrs["hs3.test"] = res3.addrs["hs3.test"]
	ctx := context.Background()
	whoami := "/_matrix/federation/v1/query/whoami?x=1"

	t.Run("signed request is verified with the origin's fetched key", func(t *testing.T) {
		var out struct{ Origin string }
		if err := hs1.client.Do(ctx, "hs2.test", "GET", whoami, nil, &out); err != nil {
			t.Fatal(err)
		}
		if out.Origin != "hs1.test" {
			t.Errorf("origin %q", out.Origin)
		}
		// With a body as well.
		if err := hs1.client.Do(ctx, "hs2.test", "GET", whoami, map[string]any{"a": 1}, &out); err != nil {
			t.Fatal(err)
		}
		stored, err := storage.GetServerKeys(ctx, hs2.db, "hs1.test")
		if err != nil || len(stored) != 2 {
			t.Fatalf("hs2 stored %+v, %v; want hs1's current and old key", stored, err)
		}
	})

	t.Run("remote errors are typed", func(t *testing.T) {
		err := hs1.client.Do(ctx, "hs2.test", "GET", "/_matrix/federation/v1/query/nonesuch", nil, nil)
		var re *RemoteError
		if !errors.As(err, &re) || re.Status != 404 || re.Code != "M_UNRECOGNIZED" || re.Destination != "hs2.test" {
			t.Fatalf("error %v, want RemoteError 404 M_UNRECOGNIZED", err)
		}
	})

	t.Run("bad requests are refused", func(t *testing.T) {
		good, _ := SignRequest("hs1.test", "hs2.test", hs1.key, "GET", whoami, nil)
		forged, _ := SignRequest("hs1.test", "hs2.test", keys.SigningKey{ID: hs1.key.ID, Private: hs3.key.Private}, "GET", whoami, nil)
		otherDest, _ := SignRequest("hs1.test", "hs3.test", hs1.key, "GET", whoami, nil)
		otherURI, _ := SignRequest("hs1.test", "hs2.test", hs1.key, "GET", "/_matrix/federation/v1/query/whoami", nil)
		withOld, _ := SignRequest("hs1.test", "hs2.test", oldKey, "GET", whoami, nil)
		unknownKey, _ := SignRequest("hs1.test", "hs2.test", keys.SigningKey{ID: "ed25519:nope", Private: hs1.key.Private}, "GET", whoami, nil)
		noDest := good
		noDest.Destination = ""
		cases := []struct {
			name   string
			auth   []string
			status int
		}{
			{"good", []string{good.String()}, 200},
			{"good without destination (older senders)", []string{noDest.String()}, 200},
			{"good among other schemes", []string{"Bearer abc", good.String()}, 200},
			{"no header", nil, 401},
			{"other scheme only", []string{"Bearer abc"}, 401},
			{"malformed", []string{`X-Matrix origin="hs1.test"`}, 401},
			{"forged signature", []string{forged.String()}, 401},
			{"for another destination", []string{otherDest.String()}, 401},
			{"signature over another uri", []string{otherURI.String()}, 401},
			{"old key may not sign requests", []string{withOld.String()}, 401},
			{"unknown key", []string{unknownKey.String()}, 401},
			{"one good, one forged", []string{good.String(), forged.String()}, 401},
			{"two origins", []string{good.String(), XMatrix{Origin: "hs3.test", KeyID: "ed25519:x", Signature: "y"}.String()}, 401},
			{"invalid origin", []string{XMatrix{Origin: "bad name", KeyID: "ed25519:x", Signature: "y"}.String()}, 401},
		}
		for _, c := range cases {
			status, code := rawRequest(t, ca, hs2, "GET", whoami, nil, c.auth...)
			if status != c.status || (status == 401 && code != "M_UNAUTHORIZED") {
				t.Errorf("%s: %d %s, want %d", c.name, status, code, c.status)
			}
		}
		// A body that differs from the signed one.
		signed, _ := SignRequest("hs1.test", "hs2.test", hs1.key, "GET", whoami, []byte(`{"a":1}`))
		if status, _ := rawRequest(t, ca, hs2, "GET", whoami, []byte(`{"a":2}`), signed.String()); status != 401 {
			t.Errorf("tampered body: %d", status)
		}
		if status, _ := rawRequest(t, ca, hs2, "GET", whoami, []byte(`{"a":1}`), signed.String()); status != 200 {
			t.Errorf("signed body: %d", status)
		}
	})

	t.Run("key validity", func(t *testing.T) {
		now := time.Now().UnixMilli()
		if _, err := hs2.ring.PublicKey(ctx, "hs1.test", oldKey.ID, expired-1); err != nil {
			t.Errorf("old key before it expired: %v", err)
		}
		if _, err := hs2.ring.PublicKey(ctx, "hs1.test", oldKey.ID, 0); err != nil {
			t.Errorf("old key where validity is not enforced: %v", err)
		}
		if _, err := hs2.ring.PublicKey(ctx, "hs1.test", oldKey.ID, expired+1); !errors.Is(err, ErrKeyExpired) {
			t.Errorf("old key after it expired: %v, want ErrKeyExpired", err)
		}
		if _, err := hs2.ring.PublicKey(ctx, "hs1.test", hs1.key.ID, now+8*24*3600*1000); !errors.Is(err, ErrKeyExpired) {
			t.Errorf("current key beyond 7 days: %v, want ErrKeyExpired", err)
		}
		pub, err := hs2.ring.PublicKey(ctx, "hs1.test", hs1.key.ID, now)
		if err != nil || !pub.Equal(hs1.key.Public()) {
			t.Errorf("current key: %v", err)
		}
		// Our own keys are answered locally.
		if pub, err := hs2.ring.PublicKey(ctx, "hs2.test", hs2.key.ID, now); err != nil || !pub.Equal(hs2.key.Public()) {
			t.Errorf("own key: %v", err)
		}
		if _, err := hs1.ring.PublicKey(ctx, "hs1.test", oldKey.ID, expired+1); !errors.Is(err, ErrKeyExpired) {
			t.Errorf("own old key after expiry: %v", err)
		}
		var lookup func(server, keyID string, atTS int64) (ed25519.PublicKey, error) = hs2.ring.Lookup(ctx)
		if _, err := lookup("hs1.test", hs1.key.ID, now); err != nil {
			t.Error(err)
		}
	})

	t.Run("keys through a notary", func(t *testing.T) {
		pub, err := hs3.ring.PublicKey(ctx, "hs1.test", hs1.key.ID, time.Now().UnixMilli())
		if err != nil || !pub.Equal(hs1.key.Public()) {
			t.Fatalf("hs1's key through hs2: %v", err)
		}
		// hs3 now verifies hs1's requests although it cannot reach hs1.
		var out struct{ Origin string }
		if err := hs1.client.Do(ctx, "hs3.test", "GET", whoami, nil, &out); err != nil || out.Origin != "hs1.test" {
			t.Fatalf("request to hs3: %v %q", err, out.Origin)
		}
		// hs3 stored hs1's document with hs1's signature only.
		stored, _ := storage.GetServerKeys(ctx, hs3.db, "hs1.test")
		o, _ := keys.ParseObject(stored[0].KeyJSON)
		if sigs, _ := keys.Signatures(o, "hs2.test"); len(sigs) != 0 {
			t.Errorf("the notary's signature was stored: %s", stored[0].KeyJSON)
		}
	})

	t.Run("notary endpoints", func(t *testing.T) {
		var resp struct {
			ServerKeys []json.RawMessage `json:"server_keys"`
		}
		body := map[string]any{"server_keys": map[string]any{
			"hs1.test":         map[string]any{hs1.key.ID: map[string]any{"minimum_valid_until_ts": time.Now().UnixMilli()}},
			"hs2.test":         map[string]any{},
			"unreachable.test": map[string]any{},
		}}
		if err := hs3.client.Do(ctx, "hs2.test", "POST", "/_matrix/key/v2/query", body, &resp); err != nil {
			t.Fatal(err)
		}
		if len(resp.ServerKeys) != 2 {
			t.Fatalf("got %d documents, want hs1's and hs2's", len(resp.ServerKeys))
		}
		for _, doc := range resp.ServerKeys {
			var d keyDocument
			_ = json.Unmarshal(doc, &d)
			owner := map[string]*testHS{"hs1.test": hs1, "hs2.test": hs2}[d.ServerName]
			if owner == nil {
				t.Fatalf("document of %q", d.ServerName)
			}
			if err := keys.VerifyJSON(owner.name, owner.key.ID, owner.key.Public(), doc); err != nil {
				t.Errorf("%s's own signature: %v", owner.name, err)
			}
			if err := keys.VerifyJSON("hs2.test", hs2.key.ID, hs2.key.Public(), doc); err != nil {
				t.Errorf("notary signature on %s's document: %v", owner.name, err)
			}
		}
		if err := hs3.client.Do(ctx, "hs2.test", "GET", "/_matrix/key/v2/query/hs1.test", nil, &resp); err != nil || len(resp.ServerKeys) != 1 {
			t.Fatalf("GET query: %v, %d documents", err, len(resp.ServerKeys))
		}
		if err := hs3.client.Do(ctx, "hs2.test", "GET", "/_matrix/key/v2/query/unreachable.test", nil, &resp); err != nil || resp.ServerKeys == nil || len(resp.ServerKeys) != 0 {
			t.Fatalf("GET query of an unreachable server: %v, %v", err, resp.ServerKeys)
		}
		err := hs3.client.Do(ctx, "hs2.test", "POST", "/_matrix/key/v2/query", map[string]any{}, &resp)
		var re *RemoteError
		if !errors.As(err, &re) || re.Code != "M_BAD_JSON" {
			t.Errorf("POST without server_keys: %v", err)
		}
	})
}

func TestParseKeyDocument(t *testing.T) {
	key, _ := keys.GenerateSigningKey()
	other, _ := keys.GenerateSigningKey()
	now := time.Now()
	doc := func(server string, validUntil int64, verify map[string]ed25519.PublicKey) []byte {
		vk := map[string]VerifyKey{}
		for id, pub := range verify {
			vk[id] = VerifyKey{Key: keys.EncodeBase64(pub)}
		}
		b, _ := json.Marshal(map[string]any{"server_name": server, "valid_until_ts": validUntil, "verify_keys": vk,
			"old_verify_keys": map[string]any{"ed25519:old": map[string]any{"key": keys.EncodeBase64(other.Public()), "expired_ts": 5}}})
		return b
	}
	sign := func(b []byte, k keys.SigningKey, server string) []byte {
		out, err := keys.SignJSON(server, k.ID, k.Private, b)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	valid := now.Add(time.Hour).UnixMilli()
	good := sign(doc("a.test", valid, map[string]ed25519.PublicKey{key.ID: key.Public()}), key, "a.test")
	got, err := parseKeyDocument("a.test", good, now)
	if err != nil || len(got) != 2 {
		t.Fatalf("good document: %+v, %v", got, err)
	}
	for _, k := range got {
		switch k.KeyID {
		case key.ID:
			if k.ValidUntilTS != valid || k.ExpiredTS != 0 {
				t.Errorf("current key %+v", k)
			}
		case "ed25519:old":
			if k.ExpiredTS != 5 {
				t.Errorf("old key %+v", k)
			}
		}
	}
	long := sign(doc("a.test", now.Add(30*24*time.Hour).UnixMilli(), map[string]ed25519.PublicKey{key.ID: key.Public()}), key, "a.test")
	if got, _ := parseKeyDocument("a.test", long, now); got[0].ValidUntilTS != now.Add(7*24*time.Hour).UnixMilli() {
		t.Errorf("validity not capped at 7 days: %d", got[0].ValidUntilTS)
	}
	bad := map[string][]byte{
		"other server":            good,
		"unsigned":                doc("a.test", valid, map[string]ed25519.PublicKey{key.ID: key.Public()}),
		"signed by another":       sign(doc("a.test", valid, map[string]ed25519.PublicKey{key.ID: key.Public()}), keys.SigningKey{ID: key.ID, Private: other.Private}, "a.test"),
		"no verify keys":          sign(doc("a.test", valid, nil), key, "a.test"),
		"not JSON":                []byte(`{`),
		"signed by a notary only": sign(doc("a.test", valid, map[string]ed25519.PublicKey{key.ID: key.Public()}), key, "b.test"),
	}
	for name, b := range bad {
		server := "a.test"
		if name == "other server" {
			server = "b.test"
		}
		if _, err := parseKeyDocument(server, b, now); !errors.Is(err, ErrBadKeyDocument) {
			t.Errorf("%s: %v, want ErrBadKeyDocument", name, err)
		}
	}
}
