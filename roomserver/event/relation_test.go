package event

import "testing"

// m.relates_to comes from any client or server: everything that is not the schema is no
// relation, and nothing panics.
func TestRelationOf(t *testing.T) {
	for _, tc := range []struct {
		content string
		want    Relation
		ok      bool
	}{
		{`{"m.relates_to":{"rel_type":"m.replace","event_id":"$p"}}`, Relation{RelType: "m.replace", EventID: "$p"}, true},
		{`{"m.relates_to":{"rel_type":"m.annotation","event_id":"$p","key":"👍"}}`, Relation{RelType: "m.annotation", EventID: "$p", Key: "👍"}, true},
		{`{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"x","m.relates_to":{"rel_type":"m.thread","event_id":"$p","is_falling_back":true}}`,
			Relation{RelType: "m.thread", EventID: "$p"}, true},
		{`{"m.relates_to":{"rel_type":"org.example.custom","event_id":"$p"}}`, Relation{RelType: "org.example.custom", EventID: "$p"}, true},
		{`{"m.relates_to":{"m.in_reply_to":{"event_id":"$p"}}}`, Relation{}, false}, // a reply: no rel_type
		{`{"m.relates_to":{"rel_type":"m.annotation","event_id":"$p"}}`, Relation{}, false},
		{`{"m.relates_to":{"rel_type":"m.replace","event_id":42}}`, Relation{}, false},
		{`{"m.relates_to":{"rel_type":["m.replace"],"event_id":"$p"}}`, Relation{}, false},
		{`{"m.relates_to":{"rel_type":"m.replace","event_id":"not an id"}}`, Relation{}, false},
		{`{"m.relates_to":{"rel_type":"m.replace","event_id":"$self"}}`, Relation{}, false},
		{`{"m.relates_to":{"rel_type":"","event_id":"$p"}}`, Relation{}, false},
		{`{"m.relates_to":"m.replace"}`, Relation{}, false},
		{`{"m.relates_to":null}`, Relation{}, false},
		{`{"m.relates_to":[1,2]}`, Relation{}, false},
		{`{"body":"m.relates_to"}`, Relation{}, false},
		{`"m.relates_to"`, Relation{}, false},
		{``, Relation{}, false},
		{`{"m.relates_to":{"rel_type":"m.replace","event_id":"$p"`, Relation{}, false},
	} {
		got, ok := RelationOf([]byte(tc.content), "$self")
		if ok != tc.ok || got != tc.want {
			t.Errorf("%s: %+v %v, want %+v %v", tc.content, got, ok, tc.want, tc.ok)
		}
	}
}
