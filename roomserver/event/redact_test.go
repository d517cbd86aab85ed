package event

import (
	"testing"
)

func TestRedact(t *testing.T) {
	// Top-level keys beyond the essentials, shared by every case.
	const extra = `"origin":"o","membership":"join","prev_state":[],"unsigned":{"age_ts":1},"age_ts":1,"foo":"bar",` +
		`"event_id":"$e:o","room_id":"!r:o","sender":"@u:o","depth":1,"origin_server_ts":2,"hashes":{"sha256":"x"},` +
		`"signatures":{"o":{"ed25519:1":"s"}},"prev_events":[],"auth_events":[]`
	const topV1 = `"auth_events":[],"depth":1,"event_id":"$e:o","hashes":{"sha256":"x"},"membership":"join","origin":"o",` +
		`"origin_server_ts":2,"prev_events":[],"prev_state":[],"room_id":"!r:o","sender":"@u:o","signatures":{"o":{"ed25519:1":"s"}}`
	const topV11 = `"auth_events":[],"depth":1,"event_id":"$e:o","hashes":{"sha256":"x"},` +
		`"origin_server_ts":2,"prev_events":[],"room_id":"!r:o","sender":"@u:o","signatures":{"o":{"ed25519:1":"s"}}`

	member := `{"membership":"join","displayname":"U","join_authorised_via_users_server":"@a:o",` +
		`"third_party_invite":{"display_name":"x","signed":{"mxid":"@u:o","token":"t"}}}`
	create := `{"creator":"@u:o","room_version":"1","m.federate":true}`
	joinRules := `{"join_rule":"restricted","allow":[{"type":"m.room_membership","room_id":"!a:o"}],"x":1}`
	power := `{"ban":50,"events":{},"events_default":0,"invite":0,"kick":50,"notifications":{"room":50},"redact":50,` +
		`"state_default":50,"users":{},"users_default":0}`
	powerV1 := `{"ban":50,"events":{},"events_default":0,"kick":50,"redact":50,"state_default":50,"users":{},"users_default":0}`
	aliases := `{"aliases":["#a:o"]}`
	history := `{"history_visibility":"shared","x":1}`
	redaction := `{"redacts":"$x:o","reason":"spam"}`
	message := `{"body":"hi","msgtype":"m.text"}`

	type want map[string]string // redaction algorithm → redacted content
	tests := []struct {
		typ, content string
		want         want
	}{
		{"m.room.member", member, want{
			"1": `{"membership":"join"}`, "6": `{"membership":"join"}`, "8": `{"membership":"join"}`,
			"9":  `{"join_authorised_via_users_server":"@a:o","membership":"join"}`,
			"11": `{"join_authorised_via_users_server":"@a:o","membership":"join","third_party_invite":{"signed":{"mxid":"@u:o","token":"t"}}}`,
		}},
		{"m.room.create", create, want{
			"1": `{"creator":"@u:o"}`, "6": `{"creator":"@u:o"}`, "8": `{"creator":"@u:o"}`, "9": `{"creator":"@u:o"}`,
			"11": canon(t, create),
		}},
		{"m.room.join_rules", joinRules, want{
			"1": `{"join_rule":"restricted"}`, "6": `{"join_rule":"restricted"}`,
			"8":  `{"allow":[{"room_id":"!a:o","type":"m.room_membership"}],"join_rule":"restricted"}`,
			"9":  `{"allow":[{"room_id":"!a:o","type":"m.room_membership"}],"join_rule":"restricted"}`,
			"11": `{"allow":[{"room_id":"!a:o","type":"m.room_membership"}],"join_rule":"restricted"}`,
		}},
		{"m.room.power_levels", power, want{
			"1": powerV1, "6": powerV1, "8": powerV1, "9": powerV1,
			"11": `{"ban":50,"events":{},"events_default":0,"invite":0,"kick":50,"redact":50,"state_default":50,"users":{},"users_default":0}`,
		}},
		{"m.room.aliases", aliases, want{"1": `{"aliases":["#a:o"]}`, "6": `{}`, "8": `{}`, "9": `{}`, "11": `{}`}},
		{"m.room.history_visibility", history, want{
			"1": `{"history_visibility":"shared"}`, "6": `{"history_visibility":"shared"}`, "8": `{"history_visibility":"shared"}`,
			"9": `{"history_visibility":"shared"}`, "11": `{"history_visibility":"shared"}`,
		}},
		{"m.room.redaction", redaction, want{"1": `{}`, "6": `{}`, "8": `{}`, "9": `{}`, "11": `{"redacts":"$x:o"}`}},
		{"m.room.message", message, want{"1": `{}`, "6": `{}`, "8": `{}`, "9": `{}`, "11": `{}`}},
		{"m.room.member", `"not an object"`, want{"1": `{}`, "11": `{}`}},
		{"m.room.member", `{"membership":"join","third_party_invite":"x"}`, want{"11": `{"membership":"join"}`}},
	}
	// Every room version, through the algorithm it uses.
	algorithmOf := map[string]string{
		"1": "1", "2": "1", "3": "1", "4": "1", "5": "1", "6": "6", "7": "6", "8": "8", "9": "9", "10": "9", "11": "11", "12": "11",
	}
	for _, tt := range tests {
		for _, vid := range Versions() {
			wantContent, ok := tt.want[algorithmOf[vid]]
			if !ok {
				continue
			}
			top := topV1
			if algorithmOf[vid] == "11" {
				top = topV11
			}
			in := `{"type":"` + tt.typ + `","content":` + tt.content + `,` + extra + `}`
			want := canon(t, `{`+top+`,"type":"`+tt.typ+`","content":`+wantContent+`}`)
			got, err := Redact([]byte(in), MustVersion(vid))
			if err != nil {
				t.Fatalf("v%s %s: %v", vid, tt.typ, err)
			}
			if string(got) != want {
				t.Errorf("v%s %s:\n got %s\nwant %s", vid, tt.typ, got, want)
			}
		}
	}
}
