package clientapi

import (
	"errors"
	"fmt"
	"testing"

	"myelin/mxhttp"
	"myelin/roomserver"
	"myelin/roomserver/event"
)

func TestRoomError(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("%w: room !x", roomserver.ErrNotFound), 404, "M_NOT_FOUND"},
		{fmt.Errorf("%w: !x", roomserver.ErrRemoteJoinUnsupported), 404, "M_NOT_FOUND"},
		{fmt.Errorf("%w: hs: dial", roomserver.ErrRemoteFailed), 502, "M_UNKNOWN"},
		{fmt.Errorf("%w: @b is banned", roomserver.ErrNotAllowed), 403, "M_FORBIDDEN"},
		{fmt.Errorf("%w: bad user", roomserver.ErrInvalid), 400, "M_INVALID_PARAM"},
		{fmt.Errorf("%w: %w", roomserver.ErrInvalid, event.ErrTooLarge), 413, "M_TOO_LARGE"},
		{event.ErrUnsupportedRoomVersion("99"), 400, "M_UNSUPPORTED_ROOM_VERSION"},
		{mxhttp.Forbidden("as is"), 403, "M_FORBIDDEN"},
		{errors.New("disk on fire"), 500, "M_UNKNOWN"},
	} {
		e := mxhttp.AsError(roomError(tc.err))
		if e.Status != tc.status || e.Code != tc.code {
			t.Errorf("%v: got %d %s, want %d %s", tc.err, e.Status, e.Code, tc.status, tc.code)
		}
	}
	if e := mxhttp.AsError(roomError(fmt.Errorf("%w: @b is banned", roomserver.ErrNotAllowed))); e.Message != "@b is banned" {
		t.Errorf("message: %q", e.Message)
	}
	if e := mxhttp.AsError(createRoomError(fmt.Errorf("%w: name", roomserver.ErrNotAllowed))); e.Status != 400 || e.Code != "M_INVALID_ROOM_STATE" {
		t.Errorf("createRoomError: %d %s", e.Status, e.Code)
	}
}

func TestParseAlias(t *testing.T) {
	a := &API{cfg: Config{ServerName: "hs.example"}}
	for _, tc := range []struct {
		alias       string
		local, fine bool
	}{
		{"#room:hs.example", true, true},
		{"#room:other.example:8448", false, true},
		{"#room:hs.example:8448", false, true},
		{"room:hs.example", false, false},
		{"#:hs.example", false, false},
		{"#room", false, false},
		{"#ro om:hs.example", false, false},
		{"#room:bad host", false, false},
	} {
		local, err := a.parseAlias(tc.alias)
		if (err == nil) != tc.fine || local != tc.local {
			t.Errorf("%q: local %v err %v", tc.alias, local, err)
		}
	}
}

func TestParseRoomTokenForMessages(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"s12", 12, true},
		{"t3_12", 12, true},
		{"s12_4_5_6_0_0", 12, true},
		{"12", 0, false},
		{"s", 0, false},
		{"sx", 0, false},
	} {
		got, err := parseRoomToken(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%q: %d %v", tc.in, got, err)
		}
	}
}
