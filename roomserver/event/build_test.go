package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"myelin/keys"
)

// TestBuildMatchesParse checks that the event Build assembles in place is the event Parse
// makes of its JSON: same canonical bytes, id, fields and a valid content hash.
func TestBuildMatchesParse(t *testing.T) {
	key := specKey(t)
	sk := "@bob:example.org"
	protos := map[string]Proto{
		"message": benchProto(),
		"state with unsigned": {
			Type: "m.room.member", StateKey: &sk, Sender: "@bob:example.org", RoomID: "!r:example.org",
			Content:  json.RawMessage(`{ "membership" : "join", "displayname": "Bob \u00e9" }`),
			Unsigned: json.RawMessage(`{"b": 1, "a": "x"}`), PrevEvents: []string{"$p"}, AuthEvents: []string{"$a1", "$a2"},
			Depth: 3, OriginServerTS: 1000, PrevEventHashes: map[string]string{"$p": "aGFzaA"},
		},
		"redaction": {
			Type: "m.room.redaction", Sender: "@bob:example.org", RoomID: "!r:example.org", Redacts: "$x",
			Content: json.RawMessage(`{"reason":"spam"}`), PrevEvents: []string{"$p"}, Depth: 9, OriginServerTS: 5,
		},
	}
	for _, vid := range Versions() {
		v := MustVersion(vid)
		for name, p := range protos {
			t.Run(vid+"/"+name, func(t *testing.T) {
				e, err := Build(p, v, "example.org", key)
				if err != nil {
					t.Fatal(err)
				}
				ref, err := Parse(e.JSON(), v)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(e.JSON(), ref.JSON()) || e.ID() != ref.ID() || e.RoomID() != ref.RoomID() ||
					e.Redacts() != ref.Redacts() || e.Depth() != ref.Depth() || !bytes.Equal(e.Unsigned(), ref.Unsigned()) {
					t.Fatalf("Build gave %s (id %s), Parse of it %s (id %s)", e.JSON(), e.ID(), ref.JSON(), ref.ID())
				}
				if err := e.CheckContentHash(); err != nil {
					t.Fatal(err)
				}
				if err := keys.VerifyObject("example.org", key.ID, key.Public(), mustRedactedObject(t, e)); err != nil {
					t.Fatalf("signature: %v", err)
				}
			})
		}
	}
}

func mustRedactedObject(t *testing.T, e *Event) keys.Object {
	t.Helper()
	r, err := redactObject(e.obj, e.version)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestBuildStrictValues: Build refuses what Parse would refuse of its output in room versions
// with strict canonical JSON, and accepts it in older ones.
func TestBuildStrictValues(t *testing.T) {
	key := specKey(t)
	bad := map[string]Proto{
		"float in content":   {Content: json.RawMessage(`{"n":1.5}`)},
		"float in unsigned":  {Unsigned: json.RawMessage(`{"n":1.5}`)},
		"depth out of range": {Depth: 1 << 53},
		"ts out of range":    {OriginServerTS: -(1 << 53)},
	}
	for name, p := range bad {
		p.Type, p.Sender, p.RoomID = "m.room.message", "@a:example.org", "!r:example.org"
		t.Run(name, func(t *testing.T) {
			if _, err := Build(p, MustVersion("6"), "example.org", key); !errors.Is(err, ErrMalformed) {
				t.Errorf("v6: err = %v, want ErrMalformed", err)
			}
			if _, err := Build(p, MustVersion("5"), "example.org", key); err != nil {
				t.Errorf("v5: %v", err)
			}
		})
	}
	p := Proto{Type: "m.room.message", Sender: "@a:example.org", RoomID: "!r:example.org\xff"}
	if _, err := Build(p, MustVersion("11"), "example.org", key); !errors.Is(err, ErrMalformed) {
		t.Errorf("invalid UTF-8: err = %v, want ErrMalformed", err)
	}
}
