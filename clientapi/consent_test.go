package clientapi

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"myelin/clientapi/account"
	"myelin/storage"
	"myelin/storage/storagetest"
)

var testPolicies = []ConsentPolicy{
	{ID: "privacy_policy", Version: "1.2", Documents: map[string]PolicyDocument{
		"en": {Name: "Privacy Policy", URL: "https://example.org/privacy-1.2-en.html"},
		"fr": {Name: "Politique de confidentialité", URL: "https://example.org/privacy-1.2-fr.html"},
	}},
	{ID: "terms_of_service", Version: "3", Documents: map[string]PolicyDocument{
		"en": {Name: "Terms of Service", URL: "https://example.org/tos-3.html"},
	}},
}

// flowsOf returns the stages of each flow of a challenge.
func flowsOf(body map[string]any) [][]string {
	var out [][]string
	flows, _ := body["flows"].([]any)
	for _, f := range flows {
		var stages []string
		raw, _ := f.(map[string]any)["stages"].([]any)
		for _, s := range raw {
			stages = append(stages, s.(string))
		}
		out = append(out, stages)
	}
	return out
}

// TestTermsStage: with policies configured, registration asks for m.login.terms with the
// policies in params, in the spec's shape; only completing that stage registers, and the
// versions accepted are stored with the account.
func TestTermsStage(t *testing.T) {
	storagetest.ForEachBackend(t, func(t *testing.T, db *storage.DB) {
		ts := newTestServer(t, db, Config{ConsentPolicies: testPolicies})
		const reg = "/_matrix/client/v3/register"
		status, first := ts.call(t, "POST", reg, "", `{"username":"alice","password":"correct horse"}`)
		if status != 401 || first["errcode"] != nil {
			t.Fatalf("challenge: %d %v", status, first)
		}
		if got := flowsOf(first); !reflect.DeepEqual(got, [][]string{{"m.login.terms"}}) {
			t.Errorf("flows %v, want only m.login.terms", got)
		}
		var want map[string]any
		_ = json.Unmarshal([]byte(`{"m.login.terms":{"policies":{
			"privacy_policy":{"version":"1.2",
				"en":{"name":"Privacy Policy","url":"https://example.org/privacy-1.2-en.html"},
				"fr":{"name":"Politique de confidentialité","url":"https://example.org/privacy-1.2-fr.html"}},
			"terms_of_service":{"version":"3","en":{"name":"Terms of Service","url":"https://example.org/tos-3.html"}}}}}`), &want)
		if !reflect.DeepEqual(first["params"], want) {
			t.Errorf("params %v, want %v", first["params"], want)
		}
		session := first["session"].(string)

		// The dummy stage is not offered, and the session alone completes nothing.
		status, body := ts.call(t, "POST", reg, "", `{"username":"alice","password":"correct horse","auth":{"type":"m.login.dummy","session":"`+session+`"}}`)
		if status != 401 || body["errcode"] != "M_UNRECOGNIZED" {
			t.Errorf("dummy stage: %d %v", status, body)
		}
		status, body = ts.call(t, "POST", reg, "", `{"username":"alice","password":"correct horse","auth":{"session":"`+session+`"}}`)
		if status != 401 || body["completed"] != nil || body["session"] != session {
			t.Errorf("terms skipped: %d %v", status, body)
		}
		if _, err := storage.GetAccount(context.Background(), db, "alice"); err == nil {
			t.Fatal("an account exists before the policies were accepted")
		}

		// The operator publishes a new version while alice reads: what she accepted is the
		// version she was shown.
		ts.api.cfg.ConsentPolicies = []ConsentPolicy{testPolicies[0], {ID: "terms_of_service", Version: "4",
			Documents: map[string]PolicyDocument{"en": {Name: "Terms of Service", URL: "https://example.org/tos-4.html"}}}}
		status, body = ts.call(t, "POST", reg, "", `{"username":"alice","password":"correct horse","auth":{"type":"m.login.terms","session":"`+session+`"}}`)
		if status != 200 || body["user_id"] != "@alice:example.org" {
			t.Fatalf("register after accepting: %d %v", status, body)
		}
		got, err := storage.ConsentOf(context.Background(), db, "alice")
		wantConsent := []storage.Consent{
			{PolicyID: "privacy_policy", Version: "1.2", AcceptedTS: ts.now.UnixMilli()},
			{PolicyID: "terms_of_service", Version: "3", AcceptedTS: ts.now.UnixMilli()},
		}
		if err != nil || !reflect.DeepEqual(got, wantConsent) {
			t.Errorf("consent stored %+v, %v; want %+v", got, err, wantConsent)
		}

		// m.login.terms is a registration stage only.
		token := body["access_token"].(string)
		status, first = ts.call(t, "POST", "/_matrix/client/v3/delete_devices", token, `{"devices":[]}`)
		if status != 401 {
			t.Fatalf("delete_devices challenge: %d %v", status, first)
		}
		status, body = ts.call(t, "POST", "/_matrix/client/v3/delete_devices", token, `{"devices":[],"auth":{"type":"m.login.terms","session":"`+first["session"].(string)+`"}}`)
		if status != 401 || body["errcode"] != "M_UNRECOGNIZED" {
			t.Errorf("terms stage outside registration: %d %v", status, body)
		}
	})
}

// TestTermsAfterRegistrationToken: when a token is required too, the flow is the token, then
// the policies; the token alone does not register.
func TestTermsAfterRegistrationToken(t *testing.T) {
	db := storagetest.OpenTestDB(t, storage.SQLite)
	ts := newTestServer(t, db, Config{ConsentPolicies: testPolicies[:1], RegistrationRequiresToken: true})
	if err := db.WithTx(context.Background(), func(tx *storage.Tx) error {
		return tx.InsertRegistrationToken(context.Background(), storage.RegistrationToken{
			Hash: account.HashToken("tok-1"), UsesAllowed: 1, CreatedTS: ts.now.UnixMilli()})
	}); err != nil {
		t.Fatal(err)
	}
	const reg = "/_matrix/client/v3/register"
	_, first := ts.call(t, "POST", reg, "", `{"username":"bob","password":"correct horse"}`)
	if got := flowsOf(first); !reflect.DeepEqual(got, [][]string{{"m.login.registration_token", "m.login.terms"}}) {
		t.Fatalf("flows %v", got)
	}
	session := first["session"].(string)
	status, body := ts.call(t, "POST", reg, "", `{"username":"bob","password":"correct horse","auth":{"type":"m.login.registration_token","token":"tok-1","session":"`+session+`"}}`)
	if status != 401 || !reflect.DeepEqual(body["completed"], []any{"m.login.registration_token"}) || body["params"].(map[string]any)["m.login.terms"] == nil {
		t.Fatalf("after the token: %d %v", status, body)
	}
	status, body = ts.call(t, "POST", reg, "", `{"username":"bob","password":"correct horse","auth":{"type":"m.login.terms","session":"`+session+`"}}`)
	if status != 200 {
		t.Fatalf("after the terms: %d %v", status, body)
	}
	if got, err := storage.ConsentOf(context.Background(), db, "bob"); err != nil || len(got) != 1 || got[0].Version != "1.2" {
		t.Errorf("consent stored %+v, %v", got, err)
	}
}

// TestNoPoliciesNoTerms: without policies registration is the dummy stage, with empty params,
// and nothing is recorded.
func TestNoPoliciesNoTerms(t *testing.T) {
	db := storagetest.OpenTestDB(t, storage.SQLite)
	ts := newTestServer(t, db, Config{})
	_, first := ts.call(t, "POST", "/_matrix/client/v3/register", "", `{}`)
	if got := flowsOf(first); !reflect.DeepEqual(got, [][]string{{"m.login.dummy"}}) || len(first["params"].(map[string]any)) != 0 {
		t.Fatalf("challenge without policies: %v", first)
	}
	ts.register(t, "carol", false)
	if got, err := storage.ConsentOf(context.Background(), db, "carol"); err != nil || len(got) != 0 {
		t.Errorf("consent recorded without policies: %+v, %v", got, err)
	}
}
