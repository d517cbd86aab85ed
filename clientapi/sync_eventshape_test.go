package clientapi

import (
	"encoding/json"
	"fmt"
	"testing"
)

func TestParseFieldPaths(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{[]string{"content.body"}, "[[content body]]"},
		// The spec's examples: an escaped dot, and an escaped backslash.
		{[]string{`content.m\.relates_to`}, "[[content m.relates_to]]"},
		{[]string{`content.m\\foo`}, `[[content m\foo]]`},
		// Other escapes are literal.
		{[]string{`content.a\xb`}, `[[content a\xb]]`},
		{[]string{`content.trailing\`}, `[[content trailing\]]`},
		// A path under another one listed is covered by it.
		{[]string{"content.body", "type", "content"}, "[[type] [content]]"},
	} {
		if got := fmt.Sprint(parseFieldPaths(c.in)); got != c.want {
			t.Errorf("parseFieldPaths(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestSelectFields(t *testing.T) {
	ev := `{"type":"m.room.message","sender":"@a:x","content":{"body":"hi","msgtype":"m.text","m.relates_to":{"rel_type":"m.thread"}},"unsigned":{"age":5}}`
	for _, c := range []struct {
		fields []string
		want   string
	}{
		{[]string{"type", "content.body"}, `{"content":{"body":"hi"},"type":"m.room.message"}`},
		{[]string{`content.m\.relates_to.rel_type`}, `{"content":{"m.relates_to":{"rel_type":"m.thread"}}}`},
		{[]string{"content.missing", "type.not_an_object"}, `{}`},
		{[]string{}, `{}`},
		{[]string{"content", "content.body"}, `{"content":{"body":"hi","m.relates_to":{"rel_type":"m.thread"},"msgtype":"m.text"}}`},
	} {
		tree, err := decodeTree([]byte(ev))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(selectFields(tree.(map[string]any), parseFieldPaths(c.fields)))
		if string(got) != c.want {
			t.Errorf("selectFields(%q) = %s, want %s", c.fields, got, c.want)
		}
	}
}
