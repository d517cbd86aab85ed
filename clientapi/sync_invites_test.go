package clientapi

import (
	"encoding/json"
	"testing"
)

func TestStrippedInviteState(t *testing.T) {
	const room = "!r:hs1.test"
	tests := []struct {
		name string
		raw  string
		want []string // type/state_key of what is kept
	}{
		{"full PDUs are stripped", `[{"type":"m.room.name","state_key":"","sender":"@a:hs1.test","content":{"name":"n"},"room_id":"!r:hs1.test","event_id":"$x","depth":3}]`, []string{"m.room.name/"}},
		{"already stripped", `[{"type":"m.room.join_rules","state_key":"","sender":"@a:hs1.test","content":{"join_rule":"invite"}}]`, []string{"m.room.join_rules/"}},
		{"not state, another room, bad content", `[{"type":"m.room.message","sender":"@a:hs1.test","content":{}},
			{"type":"m.room.name","state_key":"","sender":"@a:hs1.test","content":{},"room_id":"!other:hs1.test"},
			{"type":"m.room.topic","state_key":"","sender":"@a:hs1.test","content":"x"},
			{"state_key":"","content":{}}]`, nil},
		{"not a list", `{"type":"m.room.name"}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := strippedInviteState(json.RawMessage(tc.raw), room)
			if got == nil {
				t.Fatal("nil list: clients expect events to be a list")
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %v", got, tc.want)
			}
			for i, e := range got {
				if e.Type+"/"+e.StateKey != tc.want[i] {
					t.Errorf("event %d: %s/%s, want %s", i, e.Type, e.StateKey, tc.want[i])
				}
				raw, _ := json.Marshal(e)
				var fields map[string]any
				_ = json.Unmarshal(raw, &fields)
				if len(fields) != 4 {
					t.Errorf("event %d has fields beyond the stripped four: %s", i, raw)
				}
			}
		})
	}
}
