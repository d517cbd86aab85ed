package clientapi

import (
	"errors"
	"testing"
)

func TestGlobMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, s string
		want       bool
	}{
		{"m.room.message", "m.room.message", true},
		{"m.room.message", "m.room.messages", false},
		{"m.room.*", "m.room.member", true},
		{"m.room.*", "m.roomx", false},
		{"*", "anything", true},
		{"*", "", true},
		{"m.*.member", "m.room.member", true},
		{"m.*.member", "m.room.name", false},
		{"*.member", "m.room.member", true},
		{"m.*", "m", false},
		{"a*b*c", "abc", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "acb", false},
		{"a**", "a", true},
	} {
		if got := globMatch(c.pattern, c.s); got != c.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}

func TestEventFilter(t *testing.T) {
	empty := []string{}
	for _, c := range []struct {
		name        string
		f           EventFilter
		typ, sender string
		want        bool
	}{
		{"no restriction", EventFilter{}, "m.room.message", "@a:x", true},
		{"types", EventFilter{Types: []string{"m.room.*"}}, "m.room.message", "@a:x", true},
		{"types miss", EventFilter{Types: []string{"m.room.member"}}, "m.room.message", "@a:x", false},
		{"empty types match nothing", EventFilter{Types: empty}, "m.room.message", "@a:x", false},
		{"not_types wins over types", EventFilter{Types: []string{"*"}, NotTypes: []string{"m.room.message"}}, "m.room.message", "@a:x", false},
		{"senders", EventFilter{Senders: []string{"@a:x"}}, "t", "@a:x", true},
		{"senders miss", EventFilter{Senders: []string{"@b:x"}}, "t", "@a:x", false},
		{"not_senders wins over senders", EventFilter{Senders: []string{"@a:x"}, NotSenders: []string{"@a:x"}}, "t", "@a:x", false},
	} {
		if got := c.f.AllowsEvent(c.typ, c.sender); got != c.want {
			t.Errorf("%s: AllowsEvent = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestParseFilter(t *testing.T) {
	// The spec's example filter (POST /user/{userId}/filter).
	spec := `{"room":{"state":{"types":["m.room.*"],"not_rooms":["!726s6s6q:example.com"]},
		"timeline":{"limit":10,"types":["m.room.message"],"not_rooms":["!726s6s6q:example.com"],"not_senders":["@spam:example.com"]},
		"ephemeral":{"types":["m.receipt","m.typing"],"not_rooms":["!726s6s6q:example.com"],"not_senders":["@spam:example.com"]}},
		"presence":{"types":["m.presence"],"not_senders":["@alice:example.com"]},
		"event_format":"client","event_fields":["type","content","sender"]}`
	f, err := ParseFilter([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	if f.Room.Timeline.LimitOr(DefaultTimelineLimit) != 10 || f.Room.Timeline.AllowsRoom("!726s6s6q:example.com") ||
		!f.Room.Timeline.AllowsRoom("!other:example.com") {
		t.Fatalf("parsed filter = %+v", f.Room.Timeline)
	}
	for _, bad := range []string{
		`{"room":{"timeline":{"limit":0}}}`,
		`{"event_format":"xml"}`,
		`{"room":{"rooms":["not-a-room"]}}`,
		`{"presence":{"senders":["nobody"]}}`,
		`{"room":{"timeline":{"types":"m.room.message"}}}`,
		`not json`,
	} {
		if _, err := ParseFilter([]byte(bad)); err == nil {
			t.Errorf("ParseFilter(%s) accepted", bad)
		}
	}
	big := 1 << 20
	if (EventFilter{Limit: &big}).LimitOr(1) != MaxTimelineLimit {
		t.Errorf("limit not capped")
	}
}

func TestTokens(t *testing.T) {
	st := SyncToken{Events: 12, AccountData: 3, ToDevice: 4, DeviceLists: 5}
	got, err := ParseSyncToken(st.String())
	if err != nil || got != st {
		t.Fatalf("sync token round trip: %v %+v", err, got)
	}
	// The presence position is the 8th field, left out when 0; a 7-field token reads as 0.
	withPresence := SyncToken{Events: 1, Notifications: 7, Presence: 9}
	if got, err := ParseSyncToken(withPresence.String()); err != nil || got != withPresence || withPresence.String() != "s1_0_0_0_0_0_7_9" {
		t.Fatalf("presence round trip: %q %+v %v", withPresence.String(), got, err)
	}
	if st.String() != "s12_3_4_5_0_0_0" {
		t.Fatalf("token without presence: %q", st.String())
	}
	// A room token is a valid since (events only), and a sync token a valid room token.
	if got, err := ParseSyncToken("s7"); err != nil || got != (SyncToken{Events: 7}) {
		t.Fatalf("ParseSyncToken(s7) = %+v %v", got, err)
	}
	if rt, err := ParseRoomToken(st.String()); err != nil || rt.Stream != 12 || rt.Topological {
		t.Fatalf("ParseRoomToken(sync token) = %+v %v", rt, err)
	}
	if rt, err := ParseRoomToken("t5_9"); err != nil || rt != (RoomToken{Topological: true, Depth: 5, Stream: 9}) || rt.String() != "t5_9" {
		t.Fatalf("ParseRoomToken(t5_9) = %+v %v", rt, err)
	}
	for _, bad := range []string{"", "s", "x1", "s-1", "sa", "t5", "t_1", "s1_2_3_4_5_6_7_8_9"} {
		_, err1 := ParseSyncToken(bad)
		_, err2 := ParseRoomToken(bad)
		if err1 == nil && err2 == nil {
			t.Errorf("%q accepted by both parsers", bad)
		}
		if err2 != nil && !errors.Is(err2, errBadToken) {
			t.Errorf("%q: error %v does not wrap errBadToken", bad, err2)
		}
	}
}
