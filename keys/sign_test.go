package keys

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The spec's "Cryptographic Test Vectors": seed, server name and key id.
func testKey(t testing.TB) SigningKey {
	t.Helper()
	seed, err := DecodeBase64("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1")
	if err != nil {
		t.Fatal(err)
	}
	return SigningKey{ID: "ed25519:1", Private: ed25519.NewKeyFromSeed(seed)}
}

func TestSignJSONSpecVectors(t *testing.T) {
	k := testKey(t)
	tests := []struct{ in, want string }{
		{`{}`, `{"signatures":{"domain":{"ed25519:1":"K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"}}}`},
		{`{"one": 1, "two": "Two"}`, `{"one":1,"signatures":{"domain":{"ed25519:1":"KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"}},"two":"Two"}`},
	}
	for _, tt := range tests {
		got, err := SignJSON("domain", k.ID, k.Private, []byte(tt.in))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tt.want {
			t.Errorf("SignJSON(%s)\n got %s\nwant %s", tt.in, got, tt.want)
		}
		if err := VerifyJSON("domain", k.ID, k.Public(), got); err != nil {
			t.Errorf("VerifyJSON: %v", err)
		}
	}
}

func TestSignJSONKeepsSignaturesAndUnsigned(t *testing.T) {
	k := testKey(t)
	in := `{"a":1,"unsigned":{"age_ts":5},"signatures":{"other":{"ed25519:x":"abc"},"domain":{"ed25519:0":"def"}}}`
	out, err := SignJSON("domain", k.ID, k.Private, []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	o, err := ParseObject(out)
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := o.Get("unsigned"); string(u) != `{"age_ts":5}` {
		t.Errorf("unsigned = %s", u)
	}
	other, _ := Signatures(o, "other")
	mine, _ := Signatures(o, "domain")
	if other["ed25519:x"] != "abc" || mine["ed25519:0"] != "def" || mine["ed25519:1"] == "" {
		t.Errorf("signatures = %s", out)
	}
	// The signature does not cover unsigned or other signatures.
	o = o.With("unsigned", []byte(`{"age_ts":6}`))
	if err := VerifyObject("domain", k.ID, k.Public(), o); err != nil {
		t.Errorf("VerifyObject after changing unsigned: %v", err)
	}
	if got := Ed25519KeyIDs(map[string]string{"ed25519:b": "", "curve:z": "", "ed25519:a": ""}); strings.Join(got, ",") != "ed25519:a,ed25519:b" {
		t.Errorf("Ed25519KeyIDs = %v", got)
	}
}

func TestVerifyJSONErrors(t *testing.T) {
	k := testKey(t)
	signed, err := SignJSON("domain", k.ID, k.Private, []byte(`{"one":1}`))
	if err != nil {
		t.Fatal(err)
	}
	other, _ := GenerateSigningKey()
	tampered := strings.Replace(string(signed), `"one":1`, `"one":2`, 1)
	tests := []struct {
		name   string
		server string
		keyID  string
		pub    ed25519.PublicKey
		obj    string
		want   error
	}{
		{"other server", "elsewhere", k.ID, k.Public(), string(signed), ErrMissingSignature},
		{"other key id", "domain", "ed25519:2", k.Public(), string(signed), ErrMissingSignature},
		{"no signatures", "domain", k.ID, k.Public(), `{"one":1}`, ErrMissingSignature},
		{"wrong key", "domain", k.ID, other.Public(), string(signed), ErrBadSignature},
		{"tampered", "domain", k.ID, k.Public(), tampered, ErrBadSignature},
		{"not base64", "domain", k.ID, k.Public(), `{"signatures":{"domain":{"ed25519:1":"!!"}}}`, ErrBadSignature},
		{"short", "domain", k.ID, k.Public(), `{"signatures":{"domain":{"ed25519:1":"AAAA"}}}`, ErrBadSignature},
		{"signatures not object", "domain", k.ID, k.Public(), `{"signatures":[]}`, ErrBadSignature},
		{"invalid JSON", "domain", k.ID, k.Public(), `{"signatures":`, ErrInvalidJSON},
	}
	for _, tt := range tests {
		if err := VerifyJSON(tt.server, tt.keyID, tt.pub, []byte(tt.obj)); !errors.Is(err, tt.want) {
			t.Errorf("%s: VerifyJSON = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestSigningKeyFile(t *testing.T) {
	dir := t.TempDir()
	k, err := GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k.ID, "ed25519:a_") || len(k.ID) != len("ed25519:a_XXXX") {
		t.Fatalf("key id %q", k.ID)
	}
	path := filepath.Join(dir, "signing.key")
	if err := WriteSigningKey(path, k); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
	if err := WriteSigningKey(path, k); !errors.Is(err, os.ErrExist) {
		t.Fatalf("overwrite: %v", err)
	}
	got, err := LoadSigningKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != k.ID || !got.Private.Equal(k.Private) || !got.Public().Equal(k.Public()) {
		t.Fatal("round trip changed the key")
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSigningKey(path); !errors.Is(err, ErrInsecureKeyFile) {
		t.Fatalf("group-readable: %v", err)
	}
}

func TestLoadSigningKeyFormats(t *testing.T) {
	spec := testKey(t)
	tests := []struct {
		name, file, id string
		ok             bool
	}{
		{"synapse", "ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1\n", "ed25519:1", true},
		{"synapse padded, later lines", "ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1=\ned25519 2 AAAA\n", "ed25519:1", true},
		{"dendrite pem", "-----BEGIN MATRIX PRIVATE KEY-----\nKey-ID: ed25519:1\n\nYJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA0=\n-----END MATRIX PRIVATE KEY-----\n", "ed25519:1", true},
		{"empty", "", "", false},
		{"short seed", "ed25519 1 AAAA\n", "", false},
		{"bad version", "ed25519 a:b YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1\n", "", false},
		{"other pem", "-----BEGIN PRIVATE KEY-----\n\nAAAA\n-----END PRIVATE KEY-----\n", "", false},
	}
	for _, tt := range tests {
		path := filepath.Join(t.TempDir(), "k")
		if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := LoadSigningKey(path)
		if tt.ok != (err == nil) {
			t.Errorf("%s: err = %v", tt.name, err)
			continue
		}
		if tt.ok && (k.ID != tt.id || !k.Private.Equal(spec.Private)) {
			t.Errorf("%s: got %s, different key", tt.name, k.ID)
		}
	}
}

// A typical ~1KB event as received over federation: unsorted keys, whitespace, escapes.
var benchEvent = []byte(`{
  "type": "m.room.message",
  "sender": "@alice:example.org",
  "room_id": "!jEsUZKDJdhlrceRyVU:example.org",
  "origin_server_ts": 1719833912345,
  "depth": 4821,
  "content": {
    "msgtype": "m.text",
    "body": "Hello \"world\" — this is a fairly ordinary message with some unicode: 日本語 and an emoji 😀\nsecond line",
    "format": "org.matrix.custom.html",
    "formatted_body": "<p>Hello &quot;world&quot; — this is a fairly ordinary message</p>",
    "m.relates_to": {"m.in_reply_to": {"event_id": "$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg"}}
  },
  "prev_events": ["$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg"],
  "auth_events": ["$oDq1Bk6Z2ycnAT8W1v8ZyCk0EFYn4qPX7Kj5PrFo1xw", "$Ixa4DgH1nxbwq0tMkl2iZ6CBNcNtsoASRh5AqA5pa5U", "$M0hUZMIETqTgH3OYX3jB5tFq8wXU3tFjd3rF9lBvQ5E"],
  "hashes": {"sha256": "ThvpT5UNdSHaGQ7zbm7pD07CvqtL9hjn06KD7W2dHUI"},
  "signatures": {"example.org": {"ed25519:a_ABCD": "f3oTt6w9xPjkXkYBM5bJOgD9Z5dTo0nDNS6u7D5VXc6o0L8tb5tHOTMgNM9oDbO0EBcyMjGLSjU7nr8SnDMiCA"}},
  "unsigned": {"age_ts": 1719833912345}
}`)

func BenchmarkCanonicalJSON(b *testing.B) {
	b.SetBytes(int64(len(benchEvent)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CanonicalJSON(benchEvent); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCanonicalJSONAlreadyCanonical(b *testing.B) {
	in, _ := CanonicalJSON(benchEvent)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CanonicalJSON(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignJSON(b *testing.B) {
	k := testKey(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SignJSON("domain", k.ID, k.Private, benchEvent); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyJSON(b *testing.B) {
	k := testKey(b)
	signed, err := SignJSON("domain", k.ID, k.Private, benchEvent)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := VerifyJSON("domain", k.ID, k.Public(), signed); err != nil {
			b.Fatal(err)
		}
	}
}
