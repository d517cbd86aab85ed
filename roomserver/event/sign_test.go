package event

import (
	"crypto/ed25519"
	"testing"

	"myelin/keys"
)

// specKey is the key of the spec's "Cryptographic Test Vectors" (server "domain", "ed25519:1").
func specKey(t testing.TB) keys.SigningKey {
	t.Helper()
	seed, err := keys.DecodeBase64("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1")
	if err != nil {
		t.Fatal(err)
	}
	return keys.SigningKey{ID: "ed25519:1", Private: ed25519.NewKeyFromSeed(seed)}
}

func canon(t testing.TB, s string) string {
	t.Helper()
	b, err := keys.CanonicalJSON([]byte(s))
	if err != nil {
		t.Fatalf("CanonicalJSON(%s): %v", s, err)
	}
	return string(b)
}

// The appendix "Event Signing" vectors (room version 1 rules: they predate the v11 redaction
// algorithm, which would drop "origin").
func TestHashAndSignSpecVectors(t *testing.T) {
	k := specKey(t)
	tests := []struct{ name, in, want string }{
		{"minimal", `{
    "room_id": "!x:domain",
    "sender": "@a:domain",
    "origin": "domain",
    "origin_server_ts": 1000000,
    "signatures": {},
    "hashes": {},
    "type": "X",
    "content": {},
    "prev_events": [],
    "auth_events": [],
    "depth": 3,
    "unsigned": {
        "age_ts": 1000000
    }
}`, `{
    "auth_events": [],
    "content": {},
    "depth": 3,
    "hashes": {
        "sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"
    },
    "origin": "domain",
    "origin_server_ts": 1000000,
    "prev_events": [],
    "room_id": "!x:domain",
    "sender": "@a:domain",
    "signatures": {
        "domain": {
            "ed25519:1": "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjAWbOoMszkwsQma+lYAg"
        }
    },
    "type": "X",
    "unsigned": {
        "age_ts": 1000000
    }
}`},
		{"redactable content", `{
    "content": {
        "body": "Here is the message content"
    },
    "event_id": "$0:domain",
    "origin": "domain",
    "origin_server_ts": 1000000,
    "type": "m.room.message",
    "room_id": "!r:domain",
    "sender": "@u:domain",
    "signatures": {},
    "unsigned": {
        "age_ts": 1000000
    }
}`, `{
    "content": {
        "body": "Here is the message content"
    },
    "event_id": "$0:domain",
    "hashes": {
        "sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"
    },
    "origin": "domain",
    "origin_server_ts": 1000000,
    "type": "m.room.message",
    "room_id": "!r:domain",
    "sender": "@u:domain",
    "signatures": {
        "domain": {
            "ed25519:1": "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA"
        }
    },
    "unsigned": {
        "age_ts": 1000000
    }
}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := HashAndSign([]byte(tt.in), MustVersion("1"), "domain", k)
			if err != nil {
				t.Fatal(err)
			}
			if want := canon(t, tt.want); string(got) != want {
				t.Fatalf("HashAndSign\n got %s\nwant %s", got, want)
			}
			if err := CheckContentHash(got); err != nil {
				t.Fatalf("CheckContentHash: %v", err)
			}
		})
	}
}
