package auth

import (
	"encoding/json"
	"errors"
	"testing"

	"myelin/roomserver/event"
)

func TestParseLevel(t *testing.T) {
	const bad = int64(-1 << 62) // marks "rejected"
	cases := []struct {
		raw                 string
		v1to5, v6to9, v10up int64
	}{
		{`50`, 50, 50, 50},
		{`-5`, -5, -5, -5},
		// v1-stringy-power-levels.md examples.
		{`"100"`, 100, 100, bad},
		{`"000100"`, 100, 100, bad},
		{`"+100"`, 100, 100, bad},
		{`"-100"`, -100, -100, bad},
		{`" 100 "`, 100, 100, bad},
		{`" 00100 "`, 100, 100, bad},
		{`" +100 "`, 100, 100, bad},
		{`" -100 "`, -100, -100, bad},
		{`"0"`, 0, 0, bad},
		{`"1.5"`, bad, bad, bad},
		{`"1e2"`, bad, bad, bad},
		{`"+-1"`, bad, bad, bad},
		{`"+"`, bad, bad, bad},
		{`""`, bad, bad, bad},
		{`"0x10"`, bad, bad, bad},
		{`"1_000"`, bad, bad, bad},
		{`"99999999999999999999"`, bad, bad, bad},
		// v1-floaty-power-levels.md examples: exponent applied, then truncated.
		{`5.114698E4`, 51146, bad, bad},
		{`50.57`, 50, bad, bad},
		{`-0.5`, 0, bad, bad},
		{`1e400`, bad, bad, bad},
		{`9007199254740992`, 9007199254740992, bad, bad},
		{`true`, bad, bad, bad},
		{`null`, bad, bad, bad},
		{`{}`, bad, bad, bad},
	}
	for _, tc := range cases {
		for vid, want := range map[string]int64{"1": tc.v1to5, "5": tc.v1to5, "6": tc.v6to9, "9": tc.v6to9, "10": tc.v10up, "12": tc.v10up} {
			got, err := parseLevel(json.RawMessage(tc.raw), event.MustVersion(vid))
			switch {
			case want == bad && err == nil:
				t.Errorf("v%s %s: got %d, want rejection", vid, tc.raw, got)
			case want != bad && (err != nil || got != want):
				t.Errorf("v%s %s: got %d, %v, want %d", vid, tc.raw, got, err, want)
			}
		}
	}
}

// The spec's example events from v1-stringy-power-levels.md and v1-floaty-power-levels.md.
func TestPowerLevelsSpecExamples(t *testing.T) {
	stringy := `{"ban":"50","events":{"m.room.power_levels":"100"},"events_default":"0","state_default":"50",
		"users":{"@example:localhost":"100"},"users_default":"0"}`
	floaty := `{"ban":50,"events":{"m.room.power_levels":100},"events_default":0,"state_default":50,
		"users":{"@example:example.org":100,"@alice:localhost":50,"@bob:localhost":50.57},"users_default":0}`

	for _, vid := range []string{"1", "5", "9"} {
		c, err := parsePowerLevels(json.RawMessage(stringy), event.MustVersion(vid))
		if err != nil {
			t.Fatalf("v%s stringy: %v", vid, err)
		}
		if c.users["@example:localhost"] != 100 || c.events[TypePowerLevels] != 100 || c.top[plBan].v != 50 {
			t.Errorf("v%s stringy: %+v", vid, c)
		}
	}
	if _, err := parsePowerLevels(json.RawMessage(stringy), event.MustVersion("10")); !errors.Is(err, ErrInvalidPowerLevels) {
		t.Errorf("v10 stringy: want ErrInvalidPowerLevels, got %v", err)
	}
	c, err := parsePowerLevels(json.RawMessage(floaty), event.MustVersion("3"))
	if err != nil {
		t.Fatal(err)
	}
	if c.users["@alice:localhost"] != 50 || c.users["@bob:localhost"] != 50 {
		t.Errorf("floaty: alice %d, bob %d, want 50 and 50", c.users["@alice:localhost"], c.users["@bob:localhost"])
	}
}

func TestPowerLevelsDefaults(t *testing.T) {
	for _, vid := range event.Versions() {
		r := newTestRoom(t, vid, map[string]any{"additional_creators": []string{zara}})
		v := r.v
		none, err := NewPowerLevels(nil, r.create)
		if err != nil {
			t.Fatal(err)
		}
		empty, err := NewPowerLevels(r.state(TypePowerLevels, alice, "", map[string]any{}), r.create)
		if err != nil {
			t.Fatal(err)
		}
		for name, p := range map[string]PowerLevels{"no event": none, "empty content": empty} {
			got := []int64{p.UserLevel(bob), p.EventLevel("m.room.message", false), p.EventLevel("m.room.name", true),
				p.BanLevel(), p.KickLevel(), p.RedactLevel(), p.InviteLevel(), p.NotificationLevel("room")}
			want := []int64{0, 0, 50, 50, 50, 50, 0, 50}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("v%s %s: levels %v, want %v", vid, name, got, want)
					break
				}
			}
		}
		switch {
		case v.PrivilegedCreators:
			for _, u := range []string{alice, zara} {
				if none.UserLevel(u) != CreatorLevel || empty.UserLevel(u) != CreatorLevel || !empty.IsCreator(u) {
					t.Errorf("v%s: creator %s is not infinite", vid, u)
				}
			}
		default:
			if none.UserLevel(alice) != 100 || empty.UserLevel(alice) != 0 || none.IsCreator(alice) {
				t.Errorf("v%s: creator without power levels %d (want 100), with %d (want 0)", vid, none.UserLevel(alice), empty.UserLevel(alice))
			}
			if none.UserLevel(zara) != 0 {
				t.Errorf("v%s: additional_creators counted before v12", vid)
			}
		}
	}
}

func TestNewPowerLevelsNeedsCreate(t *testing.T) {
	if _, err := NewPowerLevels(nil, nil); !errors.Is(err, ErrInvalidPowerLevels) {
		t.Fatalf("got %v", err)
	}
}

// event.Parse refuses a v12 create event with a room_id, so rule 1.2 of v12 never sees one.
func TestV12CreateWithRoomIDDoesNotParse(t *testing.T) {
	r := newTestRoom(t, "12", nil)
	p := createPDU(r, map[string]any{})
	p["room_id"] = "!room:a.example"
	if _, err := r.tryBuild(p); !errors.Is(err, event.ErrMalformed) {
		t.Fatalf("got %v, want event.ErrMalformed", err)
	}
}

// BenchmarkCheckMessage is one auth check of a message against realistic state: a room with
// create, power levels with a few dozen users and event types, join rules and the sender's
// membership.
func BenchmarkCheckMessage(b *testing.B) {
	for _, vid := range []string{"10", "12"} {
		b.Run("v"+vid, func(b *testing.B) {
			r := newTestRoom(b, vid, nil)
			s := r.defaultState()
			c := r.defaultPowerLevels()
			users := c["users"].(map[string]any)
			for i := 0; i < 40; i++ {
				users["@user"+string(rune('a'+i%26))+string(rune('a'+i/26))+":b.example"] = i % 60
			}
			events := c["events"].(map[string]any)
			for _, typ := range []string{"m.room.avatar", "m.room.canonical_alias", "m.room.encryption", "m.room.history_visibility",
				"m.room.power_levels", "m.room.server_acl", "m.room.tombstone", "m.room.pinned_events"} {
				events[typ] = 100
			}
			c["notifications"] = map[string]any{"room": 50}
			s.Add(r.state(TypePowerLevels, alice, "", c))
			e := r.build(msg(mallory)(r))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := Check(e, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
