package sytest

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"myelin/keys"
)

// fedAddr is the host:port of a server's federation listener.
func fedAddr(s *Server) string { return strings.TrimPrefix(s.FederationURL, "https://") }

// serverKey fetches a server's key document directly and returns its one current key.
func serverKey(t *testing.T, ca *CA, s *Server) (string, ed25519.PublicKey) {
	t.Helper()
	var doc struct {
		VerifyKeys map[string]struct {
			Key string `json:"key"`
		} `json:"verify_keys"`
	}
	getJSON(t, federationClientFor(ca, s.Name), s.FederationURL+"/_matrix/key/v2/server", 200, &doc)
	for id, k := range doc.VerifyKeys {
		pub, err := keys.DecodeBase64(k.Key)
		if err != nil {
			t.Fatal(err)
		}
		return id, pub
	}
	t.Fatalf("%s publishes no key", s.Name)
	return "", nil
}

func federationClientFor(ca *CA, name string) *http.Client {
	c := FederationClient(ca)
	c.Transport.(*http.Transport).TLSClientConfig.ServerName = name
	return c
}

// signedRequest sends a request to s as origin would, signing it independently of Myelin's own
// code: sign_json over {method, uri, origin, destination, content} as the spec's example does.
func signedRequest(t *testing.T, ca *CA, s *Server, origin string, key keys.SigningKey, method, uri string, content []byte) (int, string) {
	t.Helper()
	obj := map[string]any{"method": method, "uri": uri, "origin": origin, "destination": s.Name}
	if content != nil {
		obj["content"] = json.RawMessage(content)
	}
	b, _ := json.Marshal(obj)
	signed, err := keys.SignJSON(origin, key.ID, key.Private, b)
	if err != nil {
		t.Fatal(err)
	}
	var parsed struct {
		Signatures map[string]map[string]string `json:"signatures"`
	}
	_ = json.Unmarshal(signed, &parsed)
	auth := `X-Matrix origin="` + origin + `",destination="` + s.Name + `",key="` + key.ID + `",sig="` + parsed.Signatures[origin][key.ID] + `"`
	req, err := http.NewRequest(method, s.FederationURL+uri, bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", auth)
	return do(t, federationClientFor(ca, s.Name), req)
}

func do(t *testing.T, c *http.Client, req *http.Request) (int, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e struct {
		Code string `json:"errcode"`
	}
	_ = json.Unmarshal(body, &e)
	return resp.StatusCode, e.Code
}

// TestFederationKeysAndRequestAuth runs three servers with the test CA: hs1 acts as a notary for
// hs2's keys and verifies hs2's signed requests; hs3 cannot reach hs2 and gets its keys through
// hs1.
func TestFederationKeysAndRequestAuth(t *testing.T) {
	ca := NewCA(t)
	hs2 := Start(t, Options{ServerName: "hs2.test", CA: ca})
	hs1 := Start(t, Options{ServerName: "hs1.test", CA: ca, Config: map[string]any{
		"federation": map[string]any{"static_hosts": map[string]string{"hs2.test": fedAddr(hs2)}},
	}})
	hs2KeyID, hs2Pub := serverKey(t, ca, hs2)
	hs1KeyID, hs1Pub := serverKey(t, ca, hs1)
	hs1Client := federationClientFor(ca, "hs1.test")

	t.Run("notary POST query", func(t *testing.T) {
		body := `{"server_keys":{"hs2.test":{"` + hs2KeyID + `":{}}, "hs1.test":{}}}`
		resp, err := hs1Client.Post(hs1.FederationURL+"/_matrix/key/v2/query", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, raw)
		}
		var out struct {
			ServerKeys []json.RawMessage `json:"server_keys"`
		}
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, doc := range out.ServerKeys {
			var d struct {
				ServerName string `json:"server_name"`
			}
			_ = json.Unmarshal(doc, &d)
			seen[d.ServerName] = true
			switch d.ServerName {
			case "hs2.test":
				if err := keys.VerifyJSON("hs2.test", hs2KeyID, hs2Pub, doc); err != nil {
					t.Errorf("hs2's own signature through the notary: %v", err)
				}
			case "hs1.test":
			default:
				t.Errorf("unexpected document of %q", d.ServerName)
			}
			if err := keys.VerifyJSON("hs1.test", hs1KeyID, hs1Pub, doc); err != nil {
				t.Errorf("hs1's notary signature on %s's keys: %v", d.ServerName, err)
			}
		}
		if !seen["hs2.test"] || !seen["hs1.test"] {
			t.Errorf("documents of %v, want hs1.test and hs2.test", seen)
		}
	})

	t.Run("notary GET query", func(t *testing.T) {
		var out struct {
			ServerKeys []json.RawMessage `json:"server_keys"`
		}
		getJSON(t, hs1Client, hs1.FederationURL+"/_matrix/key/v2/query/"+url.PathEscape("hs2.test"), 200, &out)
		if len(out.ServerKeys) != 1 {
			t.Fatalf("%d documents", len(out.ServerKeys))
		}
		if err := keys.VerifyJSON("hs2.test", hs2KeyID, hs2Pub, out.ServerKeys[0]); err != nil {
			t.Error(err)
		}
		if err := keys.VerifyJSON("hs1.test", hs1KeyID, hs1Pub, out.ServerKeys[0]); err != nil {
			t.Error(err)
		}
	})

	hs2Key, err := keys.LoadSigningKey(filepath.Join(hs2.DataDir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	_, forgedPriv, _ := ed25519.GenerateKey(nil)
	forged := keys.SigningKey{ID: hs2Key.ID, Private: forgedPriv}
	// No query type is registered yet, so a request that passes authentication is answered
	// 404 M_UNRECOGNIZED, and one that does not, 401 M_UNAUTHORIZED.
	const uri = "/_matrix/federation/v1/query/nonesuch?x=1"

	t.Run("request authentication", func(t *testing.T) {
		if status, code := signedRequest(t, ca, hs1, "hs2.test", hs2Key, "GET", uri, nil); status != 404 || code != "M_UNRECOGNIZED" {
			t.Errorf("request signed by hs2: %d %s, want 404 M_UNRECOGNIZED (authenticated)", status, code)
		}
		if status, code := signedRequest(t, ca, hs1, "hs2.test", forged, "GET", uri, nil); status != 401 || code != "M_UNAUTHORIZED" {
			t.Errorf("forged signature: %d %s, want 401 M_UNAUTHORIZED", status, code)
		}
		req, _ := http.NewRequest("GET", hs1.FederationURL+uri, nil)
		if status, code := do(t, hs1Client, req); status != 401 || code != "M_UNAUTHORIZED" {
			t.Errorf("no Authorization header: %d %s, want 401 M_UNAUTHORIZED", status, code)
		}
	})

	t.Run("keys through a notary", func(t *testing.T) {
		// hs3 cannot reach hs2 (nothing listens at port 1) and asks hs1 instead.
		hs3 := Start(t, Options{ServerName: "hs3.test", CA: ca, Config: map[string]any{
			"federation": map[string]any{
				"key_notaries": []string{"hs1.test"},
				"static_hosts": map[string]string{"hs1.test": fedAddr(hs1), "hs2.test": "127.0.0.1:1"},
			},
		}})
		if status, code := signedRequest(t, ca, hs3, "hs2.test", hs2Key, "GET", uri, nil); status != 404 || code != "M_UNRECOGNIZED" {
			t.Errorf("request signed by hs2 to hs3: %d %s, want 404 M_UNRECOGNIZED (authenticated via the notary)", status, code)
		}
		if status, code := signedRequest(t, ca, hs3, "hs2.test", forged, "GET", uri, nil); status != 401 || code != "M_UNAUTHORIZED" {
			t.Errorf("forged signature to hs3: %d %s, want 401", status, code)
		}
	})
}
