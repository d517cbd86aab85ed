package event

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"myelin/keys"
)

func ptr[T any](v T) *T { return &v }

func lookupFor(k keys.SigningKey, server string) KeyLookup {
	return func(s, id string, _ int64) (ed25519.PublicKey, error) {
		if s == server && id == k.ID {
			return k.Public(), nil
		}
		return nil, fmt.Errorf("unknown key %s %s", s, id)
	}
}

// roomOf returns a room id of the right shape for the version.
func roomOf(v RoomVersion) string {
	if v.RoomIDFromCreateEvent {
		return "!Nhcu5BS-UMnFX7hBVfVSoXiD7OgH6iRT-xyIuqDnpYQ"
	}
	return "!room:origin.test"
}

func prevOf(v RoomVersion) string {
	if v.EventIDs == IDServerMinted {
		return "$prev:origin.test"
	}
	return "$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg"
}

var (
	idV1     = regexp.MustCompile(`^\$[A-Za-z]{18}:origin\.test$`)
	idBase64 = regexp.MustCompile(`^\$[A-Za-z0-9+/]{43}$`)
	idURL    = regexp.MustCompile(`^\$[A-Za-z0-9_-]{43}$`)
)

func TestBuildParseVerifyEveryVersion(t *testing.T) {
	k := specKey(t)
	for _, vid := range Versions() {
		v := MustVersion(vid)
		t.Run("v"+vid, func(t *testing.T) {
			protos := []Proto{
				{Type: "m.room.message", Sender: "@alice:origin.test", RoomID: roomOf(v),
					Content: json.RawMessage(`{"body":"hi","msgtype":"m.text"}`), PrevEvents: []string{prevOf(v)},
					AuthEvents: []string{prevOf(v)}, Depth: 5, OriginServerTS: 1000, Unsigned: json.RawMessage(`{"transaction_id":"t"}`),
					PrevEventHashes: map[string]string{prevOf(v): "abase64encodedsha256hashshouldbe43byteslong"}},
				{Type: "m.room.member", StateKey: ptr("@alice:origin.test"), Sender: "@alice:origin.test", RoomID: roomOf(v),
					Content: json.RawMessage(`{"membership":"join"}`), PrevEvents: []string{prevOf(v)}, Depth: 2, OriginServerTS: 1000},
				{Type: "m.room.redaction", Sender: "@alice:origin.test", RoomID: roomOf(v), Redacts: prevOf(v),
					PrevEvents: []string{prevOf(v)}, Depth: 6, OriginServerTS: 1000},
			}
			for _, p := range protos {
				e, err := Build(p, v, "origin.test", k)
				if err != nil {
					t.Fatalf("Build %s: %v", p.Type, err)
				}
				switch v.EventIDs {
				case IDServerMinted:
					if !idV1.MatchString(e.ID()) {
						t.Errorf("%s: event id %s", p.Type, e.ID())
					}
				case IDBase64:
					if !idBase64.MatchString(e.ID()) {
						t.Errorf("%s: event id %s", p.Type, e.ID())
					}
				case IDURLSafeBase64:
					if !idURL.MatchString(e.ID()) {
						t.Errorf("%s: event id %s", p.Type, e.ID())
					}
				}
				if e.Type() != p.Type || e.Sender() != p.Sender || e.RoomID() != p.RoomID || e.Depth() != p.Depth ||
					e.OriginServerTS() != p.OriginServerTS || e.SenderDomain() != "origin.test" || e.Version().ID != vid {
					t.Errorf("%s: fields differ from the proto", p.Type)
				}
				if strings.Join(e.PrevEventIDs(), ",") != strings.Join(p.PrevEvents, ",") ||
					strings.Join(e.AuthEventIDs(), ",") != strings.Join(p.AuthEvents, ",") {
					t.Errorf("%s: prev %v auth %v", p.Type, e.PrevEventIDs(), e.AuthEventIDs())
				}
				if (p.StateKey != nil) != e.IsState() || (p.StateKey != nil && !e.StateKeyEquals(*p.StateKey)) {
					t.Errorf("%s: state key", p.Type)
				}
				if p.Type == "m.room.redaction" && e.Redacts() != p.Redacts {
					t.Errorf("redacts = %q", e.Redacts())
				}
				if p.Unsigned != nil && string(e.Unsigned()) != string(p.Unsigned) {
					t.Errorf("unsigned = %s", e.Unsigned())
				}
				if err := e.CheckContentHash(); err != nil {
					t.Errorf("%s: CheckContentHash: %v", p.Type, err)
				}
				if err := VerifySignatures(e, lookupFor(k, "origin.test")); err != nil {
					t.Errorf("%s: VerifySignatures: %v", p.Type, err)
				}
				again, err := Parse(e.JSON(), v)
				if err != nil || again.ID() != e.ID() || string(again.JSON()) != string(e.JSON()) {
					t.Errorf("%s: Parse(JSON()) = %v, %v", p.Type, again, err)
				}

				// The signature covers the redacted event; the content hash does not survive.
				r, err := e.Redacted()
				if err != nil {
					t.Fatalf("%s: Redacted: %v", p.Type, err)
				}
				if r.ID() != e.ID() {
					t.Errorf("%s: redacted id %s != %s", p.Type, r.ID(), e.ID())
				}
				if err := VerifySignatures(r, lookupFor(k, "origin.test")); err != nil {
					t.Errorf("%s: VerifySignatures(redacted): %v", p.Type, err)
				}
				if p.Type == "m.room.message" {
					if err := r.CheckContentHash(); !errors.Is(err, ErrContentHashMismatch) {
						t.Errorf("redacted CheckContentHash = %v", err)
					}
				}
			}
		})
	}
}

func TestBuildV12CreateDerivesRoomID(t *testing.T) {
	k := specKey(t)
	v := MustVersion("12")
	e, err := Build(Proto{Type: "m.room.create", StateKey: ptr(""), Sender: "@alice:origin.test",
		Content: json.RawMessage(`{"room_version":"12"}`), Depth: 1, OriginServerTS: 1000}, v, "origin.test", k)
	if err != nil {
		t.Fatal(err)
	}
	if e.RoomID() != "!"+strings.TrimPrefix(e.ID(), "$") || !idURL.MatchString(e.ID()) {
		t.Fatalf("room id %s, event id %s", e.RoomID(), e.ID())
	}
	if strings.Contains(string(e.JSON()), `"room_id"`) {
		t.Fatalf("create event carries room_id: %s", e.JSON())
	}
	if _, err := Build(Proto{Type: "m.room.create", StateKey: ptr(""), Sender: "@alice:origin.test", RoomID: "!x:y",
		Depth: 1}, v, "origin.test", k); !errors.Is(err, ErrMalformed) {
		t.Fatalf("create with room id: %v", err)
	}
	// In v11 the create event still names its room.
	if _, err := Build(Proto{Type: "m.room.create", StateKey: ptr(""), Sender: "@alice:origin.test",
		Depth: 1}, MustVersion("11"), "origin.test", k); err == nil {
		t.Fatal("v11 create without room id was accepted")
	}
}

func TestRedactsLocation(t *testing.T) {
	k := specKey(t)
	for _, vid := range []string{"10", "11"} {
		v := MustVersion(vid)
		e, err := Build(Proto{Type: "m.room.redaction", Sender: "@a:origin.test", RoomID: "!r:origin.test",
			Redacts: "$target", Depth: 3}, v, "origin.test", k)
		if err != nil {
			t.Fatal(err)
		}
		inContent := strings.Contains(string(e.Content()), `"redacts":"$target"`)
		if inContent != v.RedactsInContent || e.Redacts() != "$target" {
			t.Errorf("v%s: content %s, Redacts %q", vid, e.Content(), e.Redacts())
		}
	}
}

// base is a valid v-format PDU as a map, for the bad-input cases to spoil.
func base(v RoomVersion) map[string]any {
	m := map[string]any{
		"type": "m.room.message", "sender": "@u:origin.test", "room_id": "!r:origin.test",
		"origin_server_ts": 1, "depth": 1, "content": map[string]any{"body": "x"},
		"hashes": map[string]any{"sha256": "x"}, "signatures": map[string]any{},
		"prev_events": []any{}, "auth_events": []any{},
	}
	if v.Format == FormatV1 {
		m["event_id"] = "$e:origin.test"
	}
	return m
}

func TestParseBadInput(t *testing.T) {
	long := strings.Repeat("a", MaxIDBytes+1)
	tests := []struct {
		name     string
		versions []string
		spoil    func(m map[string]any)
		raw      string // instead of spoil
		want     error
	}{
		{name: "not JSON", raw: `{"type":`, want: ErrMalformed},
		{name: "not an object", raw: `[]`, want: ErrMalformed},
		{name: "duplicate key", raw: `{"type":"a","type":"b"}`, want: ErrMalformed},
		{name: "too large", spoil: func(m map[string]any) { m["content"] = map[string]any{"body": strings.Repeat("x", MaxEventBytes)} }, want: ErrTooLarge},
		{name: "huge raw input", raw: `{"a":"` + strings.Repeat(" ", 5*MaxEventBytes) + `"}`, want: ErrTooLarge},
		{name: "long type", spoil: func(m map[string]any) { m["type"] = long }, want: ErrTooLarge},
		{name: "long state_key", spoil: func(m map[string]any) { m["state_key"] = long }, want: ErrTooLarge},
		{name: "long sender", spoil: func(m map[string]any) { m["sender"] = "@" + long + ":origin.test" }, want: ErrTooLarge},
		{name: "long room_id", spoil: func(m map[string]any) { m["room_id"] = "!" + long }, want: ErrTooLarge},
		{name: "long event_id", versions: []string{"1"}, spoil: func(m map[string]any) { m["event_id"] = "$" + long }, want: ErrTooLarge},
		{name: "long prev event", versions: []string{"3", "12"}, spoil: func(m map[string]any) { m["prev_events"] = []any{"$" + long} }, want: ErrTooLarge},
		{name: "type not string", spoil: func(m map[string]any) { m["type"] = 5 }, want: ErrMalformed},
		{name: "state_key not string", spoil: func(m map[string]any) { m["state_key"] = nil }, want: ErrMalformed},
		{name: "sender not a user", spoil: func(m map[string]any) { m["sender"] = "alice" }, want: ErrMalformed},
		{name: "room_id not a room", spoil: func(m map[string]any) { m["room_id"] = "#a:b" }, want: ErrMalformed},
		{name: "no type", spoil: func(m map[string]any) { delete(m, "type") }, want: ErrMalformed},
		{name: "no sender", spoil: func(m map[string]any) { delete(m, "sender") }, want: ErrMalformed},
		{name: "no room_id", spoil: func(m map[string]any) { delete(m, "room_id") }, want: ErrMalformed},
		{name: "no origin_server_ts", spoil: func(m map[string]any) { delete(m, "origin_server_ts") }, want: ErrMalformed},
		{name: "no depth", spoil: func(m map[string]any) { delete(m, "depth") }, want: ErrMalformed},
		{name: "no content", spoil: func(m map[string]any) { delete(m, "content") }, want: ErrMalformed},
		{name: "no hashes", spoil: func(m map[string]any) { delete(m, "hashes") }, want: ErrMalformed},
		{name: "no signatures", spoil: func(m map[string]any) { delete(m, "signatures") }, want: ErrMalformed},
		{name: "no prev_events", spoil: func(m map[string]any) { delete(m, "prev_events") }, want: ErrMalformed},
		{name: "no auth_events", spoil: func(m map[string]any) { delete(m, "auth_events") }, want: ErrMalformed},
		{name: "content not object", spoil: func(m map[string]any) { m["content"] = []any{} }, want: ErrMalformed},
		{name: "depth not integer", spoil: func(m map[string]any) { m["depth"] = "1" }, want: ErrMalformed},
		{name: "depth fraction", spoil: func(m map[string]any) { m["depth"] = 1.5 }, want: ErrMalformed},
		{name: "no event_id", versions: []string{"1", "2"}, spoil: func(m map[string]any) { delete(m, "event_id") }, want: ErrMalformed},
		{name: "prev as strings in v1", versions: []string{"1", "2"}, spoil: func(m map[string]any) { m["prev_events"] = []any{"$a:b"} }, want: ErrMalformed},
		{name: "prev pair without hashes", versions: []string{"1"}, spoil: func(m map[string]any) { m["prev_events"] = []any{[]any{"$a:b"}} }, want: ErrMalformed},
		{name: "prev as pairs in v3", versions: []string{"3", "6", "12"}, spoil: func(m map[string]any) { m["prev_events"] = []any{[]any{"$a:b", map[string]any{}}} }, want: ErrMalformed},
		{name: "prev not event id", versions: []string{"3"}, spoil: func(m map[string]any) { m["prev_events"] = []any{"a"} }, want: ErrMalformed},
		{name: "21 prev events", versions: []string{"4"}, spoil: func(m map[string]any) {
			var p []any
			for i := 0; i < 21; i++ {
				p = append(p, fmt.Sprintf("$%d", i))
			}
			m["prev_events"] = p
		}, want: ErrMalformed},
		{name: "float in v6", versions: []string{"6", "12"}, spoil: func(m map[string]any) { m["content"] = map[string]any{"x": 1.5} }, want: keys.ErrNonStrictValue},
		{name: "big int in v6", versions: []string{"6"}, spoil: func(m map[string]any) { m["content"] = map[string]any{"x": 1 << 54} }, want: ErrMalformed},
		{name: "v12 create with room_id", versions: []string{"12"}, spoil: func(m map[string]any) { m["type"] = "m.room.create"; m["state_key"] = "" }, want: ErrMalformed},
		{name: "redacts not string", versions: []string{"5"}, spoil: func(m map[string]any) { m["type"] = "m.room.redaction"; m["redacts"] = 1 }, want: ErrMalformed},
		{name: "content.redacts not string", versions: []string{"11"}, spoil: func(m map[string]any) {
			m["type"] = "m.room.redaction"
			m["content"] = map[string]any{"redacts": 1}
		}, want: ErrMalformed},
	}
	for _, tt := range tests {
		versions := tt.versions
		if versions == nil {
			versions = Versions()
		}
		for _, vid := range versions {
			v := MustVersion(vid)
			raw := []byte(tt.raw)
			if tt.raw == "" {
				m := base(v)
				if _, err := Parse(mustJSON(t, m), v); err != nil {
					t.Fatalf("v%s: unspoilt base: %v", vid, err)
				}
				tt.spoil(m)
				raw = mustJSON(t, m)
			}
			if _, err := Parse(raw, v); !errors.Is(err, tt.want) {
				t.Errorf("%s, v%s: Parse = %v, want %v", tt.name, vid, err, tt.want)
			}
		}
	}
}

func TestParseLenientOldVersions(t *testing.T) {
	for _, vid := range []string{"1", "5"} {
		v := MustVersion(vid)
		m := base(v)
		m["content"] = map[string]any{"duration": 30466.666666666664, "big": json.Number("123456789012345678901234")}
		e, err := Parse(mustJSON(t, m), v)
		if err != nil {
			t.Fatalf("v%s: %v", vid, err)
		}
		if string(e.Content()) != `{"big":123456789012345678901234,"duration":30466.666666666664}` {
			t.Errorf("v%s: content %s", vid, e.Content())
		}
	}
	// A stray event_id is ignored from v3 on: the id is the hash, with or without it.
	v := MustVersion("4")
	m := base(v)
	a, err := Parse(mustJSON(t, m), v)
	if err != nil {
		t.Fatal(err)
	}
	m["event_id"] = "$forged"
	b, err := Parse(mustJSON(t, m), v)
	if err != nil || b.ID() != a.ID() || strings.Contains(string(b.JSON()), "forged") {
		t.Fatalf("stray event_id: %v, %s vs %s", err, b.ID(), a.ID())
	}
}

func TestEventIDEncodings(t *testing.T) {
	m := base(MustVersion("3"))
	raw := mustJSON(t, m)
	h, err := ReferenceHash(raw, MustVersion("3"))
	if err != nil {
		t.Fatal(err)
	}
	v3, _ := Parse(raw, MustVersion("3"))
	v4, _ := Parse(raw, MustVersion("4"))
	if v3.ID() != "$"+keys.EncodeBase64(h[:]) || v4.ID() != "$"+keys.EncodeBase64URL(h[:]) {
		t.Fatalf("ids %s %s for hash %x", v3.ID(), v4.ID(), h)
	}
	// Changing unsigned or signatures does not change the id; changing hashes does.
	m["unsigned"] = map[string]any{"age": 5}
	m["signatures"] = map[string]any{"x": map[string]any{"ed25519:1": "y"}}
	if e, _ := Parse(mustJSON(t, m), MustVersion("4")); e.ID() != v4.ID() {
		t.Fatal("unsigned or signatures changed the event id")
	}
	m["hashes"] = map[string]any{"sha256": "z"}
	if e, _ := Parse(mustJSON(t, m), MustVersion("4")); e.ID() == v4.ID() {
		t.Fatal("hashes did not change the event id")
	}
}

func TestVerifySignaturesRequiredServers(t *testing.T) {
	k := specKey(t)
	other, _ := keys.GenerateSigningKey()
	both := func(s, id string, _ int64) (ed25519.PublicKey, error) {
		switch {
		case s == "origin.test" && id == k.ID:
			return k.Public(), nil
		case s == "other.test" && id == other.ID:
			return other.Public(), nil
		}
		return nil, errors.New("unknown key")
	}
	// A restricted join authorised by a user of another server needs that server's signature.
	v := MustVersion("9")
	e, err := Build(Proto{Type: "m.room.member", StateKey: ptr("@u:origin.test"), Sender: "@u:origin.test",
		RoomID: "!r:other.test", Content: json.RawMessage(`{"membership":"join","join_authorised_via_users_server":"@admin:other.test"}`),
		Depth: 3}, v, "origin.test", k)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySignatures(e, both); !errors.Is(err, keys.ErrMissingSignature) {
		t.Fatalf("without the authorising server's signature: %v", err)
	}
	cosigned, err := HashAndSign(e.JSON(), v, "other.test", other)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := Parse(cosigned, v)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySignatures(e2, both); err != nil {
		t.Fatalf("with both signatures: %v", err)
	}
	// In v7 (no restricted joins) the field is ignored.
	e7, err := Build(Proto{Type: "m.room.member", StateKey: ptr("@u:origin.test"), Sender: "@u:origin.test",
		RoomID: "!r:other.test", Content: json.RawMessage(`{"membership":"join","join_authorised_via_users_server":"@admin:other.test"}`),
		Depth: 3}, MustVersion("7"), "origin.test", k)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySignatures(e7, both); err != nil {
		t.Fatalf("v7: %v", err)
	}

	// Room versions 1 and 2: the event id's server must sign too.
	m := base(MustVersion("1"))
	m["event_id"] = "$e:other.test"
	m["sender"] = "@u:origin.test"
	signed, err := HashAndSign(mustJSON(t, m), MustVersion("1"), "origin.test", k)
	if err != nil {
		t.Fatal(err)
	}
	e1, err := Parse(signed, MustVersion("1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySignatures(e1, both); !errors.Is(err, keys.ErrMissingSignature) {
		t.Fatalf("v1 without the event id server's signature: %v", err)
	}

	// Tampering with a signed field, and an unknown key.
	var tampered map[string]any
	_ = json.Unmarshal(e7.JSON(), &tampered)
	tampered["depth"] = 4
	et, err := Parse(mustJSON(t, tampered), MustVersion("7"))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySignatures(et, both); !errors.Is(err, keys.ErrBadSignature) {
		t.Fatalf("tampered: %v", err)
	}
	if err := VerifySignatures(e7, lookupFor(other, "origin.test")); !errors.Is(err, keys.ErrMissingSignature) {
		t.Fatalf("unknown key: %v", err)
	}
	// A third-party invite may be sent by any server: no sender signature is required.
	tpi, err := Build(Proto{Type: "m.room.member", StateKey: ptr("@v:else.test"), Sender: "@u:else.test",
		RoomID: "!r:other.test", Content: json.RawMessage(`{"membership":"invite","third_party_invite":{"signed":{}}}`),
		Depth: 3}, MustVersion("10"), "origin.test", k)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySignatures(tpi, both); err != nil {
		t.Fatalf("third-party invite: %v", err)
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
