package federation

import (
	"crypto/ed25519"
	"errors"
	"testing"

	"myelin/keys"
)

func TestParseXMatrix(t *testing.T) {
	full := XMatrix{Origin: "origin.hs.example.com", Destination: "destination.hs.example.com", KeyID: "ed25519:key1", Signature: "ABCDEF..."}
	cases := []struct {
		name   string
		header string
		want   XMatrix
		bad    bool
	}{
		{"spec example", `X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",key="ed25519:key1",sig="ABCDEF..."`, full, false},
		{"any order, case-insensitive names and scheme", `x-matrix SIG="ABCDEF...",Key="ed25519:key1",Destination="destination.hs.example.com",origin="origin.hs.example.com"`, full, false},
		{"whitespace around commas", "X-Matrix origin=\"origin.hs.example.com\" ,\tdestination=\"destination.hs.example.com\", key=\"ed25519:key1\" , sig=\"ABCDEF...\"", full, false},
		{"unquoted tokens and colons (older servers)", `X-Matrix origin=origin.hs.example.com,destination=destination.hs.example.com,key=ed25519:key1,sig=ABCDEF...`, full, false},
		{"unquoted base64 with / and +", `X-Matrix origin=a.example,key=ed25519:k,sig=ab/c+d`, XMatrix{Origin: "a.example", KeyID: "ed25519:k", Signature: "ab/c+d"}, false},
		{"without destination (before v1.3)", `X-Matrix origin="o.example",key="ed25519:k",sig="s"`, XMatrix{Origin: "o.example", KeyID: "ed25519:k", Signature: "s"}, false},
		{"escapes in quoted values", `X-Matrix origin="o\.example",key="ed25519:\"k\\",sig="s"`, XMatrix{Origin: "o.example", KeyID: `ed25519:"k\`, Signature: "s"}, false},
		{"comma inside quotes", `X-Matrix origin="o.example",key="ed25519:k",sig="a,b"`, XMatrix{Origin: "o.example", KeyID: "ed25519:k", Signature: "a,b"}, false},
		{"unknown parameters ignored", `X-Matrix origin="o.example",flavour=vanilla,key="ed25519:k",sig="s"`, XMatrix{Origin: "o.example", KeyID: "ed25519:k", Signature: "s"}, false},
		{"port in origin", `X-Matrix origin=o.example:8448,key=ed25519:k,sig=s`, XMatrix{Origin: "o.example:8448", KeyID: "ed25519:k", Signature: "s"}, false},
		{"other scheme", `Bearer abc`, XMatrix{}, true},
		{"no parameters", `X-Matrix`, XMatrix{}, true},
		{"missing origin", `X-Matrix key="ed25519:k",sig="s"`, XMatrix{}, true},
		{"missing key", `X-Matrix origin="o",sig="s"`, XMatrix{}, true},
		{"missing sig", `X-Matrix origin="o",key="ed25519:k"`, XMatrix{}, true},
		{"empty destination", `X-Matrix origin="o",destination="",key="ed25519:k",sig="s"`, XMatrix{}, true},
		{"duplicate parameter", `X-Matrix origin="o",origin="p",key="ed25519:k",sig="s"`, XMatrix{}, true},
		{"unterminated quote", `X-Matrix origin="o,key="ed25519:k",sig="s`, XMatrix{}, true},
		{"missing comma", `X-Matrix origin="o" key="ed25519:k",sig="s"`, XMatrix{}, true},
		{"no value", `X-Matrix origin=,key="ed25519:k",sig="s"`, XMatrix{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseXMatrix(c.header)
			if c.bad {
				if !errors.Is(err, ErrBadAuthHeader) {
					t.Fatalf("ParseXMatrix(%q) = %+v, %v; want ErrBadAuthHeader", c.header, got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("ParseXMatrix(%q) = %+v, %v; want %+v", c.header, got, err, c.want)
			}
		})
	}
}

func TestXMatrixStringRoundTrip(t *testing.T) {
	for _, x := range []XMatrix{
		{Origin: "origin.hs.example.com", Destination: "destination.hs.example.com", KeyID: "ed25519:key1", Signature: "ABCDEF..."},
		{Origin: "[::1]:8448", Destination: "1.2.3.4", KeyID: "ed25519:a_b", Signature: `quote" and \ backslash`},
	} {
		s := x.String()
		got, err := ParseXMatrix(s)
		if err != nil || got != x {
			t.Errorf("ParseXMatrix(%q) = %+v, %v; want %+v", s, got, err, x)
		}
	}
	spec := XMatrix{Origin: "origin.hs.example.com", Destination: "destination.hs.example.com", KeyID: "ed25519:key1", Signature: "ABCDEF..."}
	want := `X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",key="ed25519:key1",sig="ABCDEF..."`
	if spec.String() != want {
		t.Errorf("String() = %s\nwant the spec's form %s", spec.String(), want)
	}
}

func TestSignVerifyRequest(t *testing.T) {
	key, err := keys.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := keys.GenerateSigningKey()
	body := []byte(`{"b": 1, "a": [true, null]}`)
	x, err := SignRequest("origin.example", "dest.example", key, "PUT", "/_matrix/federation/v1/send/1?x=y", body)
	if err != nil {
		t.Fatal(err)
	}
	if x.Origin != "origin.example" || x.Destination != "dest.example" || x.KeyID != key.ID {
		t.Fatalf("header %+v", x)
	}
	// The signature is over canonical JSON, so whitespace and key order of the body do not matter.
	if err := VerifyRequest(x, "dest.example", key.Public(), "PUT", "/_matrix/federation/v1/send/1?x=y", []byte(`{"a":[true,null],"b":1}`)); err != nil {
		t.Fatalf("round trip: %v", err)
	}
	// It equals the spec's construction: sign_json over {method, uri, origin, destination, content}.
	signed, err := keys.SignJSON("origin.example", key.ID, key.Private,
		[]byte(`{"method":"PUT","uri":"/_matrix/federation/v1/send/1?x=y","origin":"origin.example","destination":"dest.example","content":{"a":[true,null],"b":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	o, _ := keys.ParseObject(signed)
	sigs, _ := keys.Signatures(o, "origin.example")
	if sigs[key.ID] != x.Signature {
		t.Errorf("signature %s differs from sign_json's %s", x.Signature, sigs[key.ID])
	}

	tampered := []struct {
		name              string
		dest, method, uri string
		body              []byte
		pub               ed25519.PublicKey
	}{
		{"other destination", "evil.example", "PUT", "/_matrix/federation/v1/send/1?x=y", body, key.Public()},
		{"other method", "dest.example", "POST", "/_matrix/federation/v1/send/1?x=y", body, key.Public()},
		{"other uri", "dest.example", "PUT", "/_matrix/federation/v1/send/2?x=y", body, key.Public()},
		{"other query", "dest.example", "PUT", "/_matrix/federation/v1/send/1", body, key.Public()},
		{"other body", "dest.example", "PUT", "/_matrix/federation/v1/send/1?x=y", []byte(`{"a":[true,null],"b":2}`), key.Public()},
		{"no body", "dest.example", "PUT", "/_matrix/federation/v1/send/1?x=y", nil, key.Public()},
		{"other key", "dest.example", "PUT", "/_matrix/federation/v1/send/1?x=y", body, other.Public()},
	}
	for _, c := range tampered {
		if err := VerifyRequest(x, c.dest, c.pub, c.method, c.uri, c.body); !errors.Is(err, keys.ErrBadSignature) {
			t.Errorf("%s: VerifyRequest = %v, want ErrBadSignature", c.name, err)
		}
	}

	// A GET has no content member at all.
	g, _ := SignRequest("origin.example", "dest.example", key, "GET", "/_matrix/key/v2/server", nil)
	if err := VerifyRequest(g, "dest.example", key.Public(), "GET", "/_matrix/key/v2/server", nil); err != nil {
		t.Errorf("GET round trip: %v", err)
	}
}
