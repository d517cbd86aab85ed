package federation

import (
	"encoding/json"
	"testing"

	"myelin/mxhttp"
)

// The partial event of exchange_third_party_invite is refused unless it is an invite in the
// room of the path, from a user of this server, for a user of the requesting server whom the
// signed block names.
func TestCheckThirdPartyRequest(t *testing.T) {
	s := &Server{cfg: Config{ServerName: "here.test"}}
	good := func() thirdPartyRequest {
		var r thirdPartyRequest
		_ = json.Unmarshal([]byte(`{"type":"m.room.member","room_id":"!r:here.test","sender":"@alice:here.test",
			"state_key":"@bob:there.test","content":{"membership":"invite",
			"third_party_invite":{"signed":{"mxid":"@bob:there.test","token":"t"}}}}`), &r)
		return r
	}
	if err := s.checkThirdPartyRequest(good(), "!r:here.test", "there.test"); err != nil {
		t.Fatalf("good request refused: %v", err)
	}
	for name, tc := range map[string]struct {
		change func(*thirdPartyRequest)
		code   string
	}{
		"type":          {func(r *thirdPartyRequest) { r.Type = "m.room.message" }, "M_INVALID_PARAM"},
		"room":          {func(r *thirdPartyRequest) { r.RoomID = "!other:here.test" }, "M_INVALID_PARAM"},
		"membership":    {func(r *thirdPartyRequest) { r.Content.Membership = "join" }, "M_INVALID_PARAM"},
		"no invite":     {func(r *thirdPartyRequest) { r.Content.ThirdPartyInvite = nil }, "M_BAD_JSON"},
		"remote sender": {func(r *thirdPartyRequest) { r.Sender = "@mallory:there.test" }, "M_FORBIDDEN"},
		"other server":  {func(r *thirdPartyRequest) { r.StateKey = "@bob:third.test" }, "M_FORBIDDEN"},
		"bad target":    {func(r *thirdPartyRequest) { r.StateKey = "bob" }, "M_INVALID_PARAM"},
		"mxid mismatch": {func(r *thirdPartyRequest) {
			r.Content.ThirdPartyInvite = json.RawMessage(`{"signed":{"mxid":"@carol:there.test","token":"t"}}`)
		}, "M_INVALID_PARAM"},
	} {
		r := good()
		tc.change(&r)
		err := s.checkThirdPartyRequest(r, "!r:here.test", "there.test")
		if e := mxhttp.AsError(err); err == nil || e.Code != tc.code {
			t.Errorf("%s: got %v, want %s", name, err, tc.code)
		}
	}
}
